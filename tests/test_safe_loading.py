"""Nothing a user hands sceneseg runs code or ends in a traceback.

A checkpoint whose unpickling would create a file is refused by every entry point that reads
weights, and the file is never created; bad values and arguments stop with one line naming them
(docs/errors.md lists these messages).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import sceneseg
from sceneseg.cli import main
from sceneseg.config import load_config
from sceneseg.distributed import Distributed, init_from_env
from sceneseg.errors import ConfigError, SceneSegError, WeightsError
from sceneseg.training_run import split_batch
from tests.test_cli import TINY


class _CreatesFile:
    """Unpickling this calls open(path, "w"): arbitrary code, reduced to a visible side effect."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.fixture
def evil(tmp_path) -> tuple[Path, Path]:
    marker = tmp_path / "created-by-unpickling"
    path = tmp_path / "evil.pt"
    torch.save({"format": "sceneseg-checkpoint", "config": {}, "epoch": 1, "model": _CreatesFile(marker)}, path)
    return path, marker


def _train(tmp_path: Path, *overrides: str) -> list[str]:
    return ["train", *TINY, "train.epochs=1", f"train.out_dir={tmp_path / 'run'}", *overrides, "--no-progress"]


ENTRY_POINTS = {
    "train --resume": lambda tmp, evil: _train(tmp, "--resume"),
    "train.init_from": lambda tmp, evil: _train(tmp, f"train.init_from={evil}"),
    "model.pretrained": lambda tmp, evil: _train(tmp, f"model.pretrained={evil}"),
    "evaluate": lambda tmp, evil: ["evaluate", str(evil), "--no-progress"],
    "predict": lambda tmp, evil: ["predict", str(evil), str(tmp / "street.png"), "--out", str(tmp / "out")],
    "export": lambda tmp, evil: ["export", str(evil), "--out", str(tmp / "out" / "model.onnx")],
}


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_every_cli_entry_point_refuses_code_in_a_checkpoint(tmp_path, evil, capsys, entry):
    path, marker = evil
    cv2.imwrite(str(tmp_path / "street.png"), np.zeros((64, 96, 3), np.uint8))  # predict's input
    if entry == "train --resume":
        (tmp_path / "run").mkdir()
        shutil.copy(path, tmp_path / "run" / "last.pt")
    assert main(ENTRY_POINTS[entry](tmp_path, path)) == 2
    err = capsys.readouterr().err
    assert err.startswith("sceneseg: error: refusing to load ") and ("evil.pt" in err or "last.pt" in err)
    assert err.count("\n") == 1
    assert not marker.exists()
    # Nothing half-written: no outputs, and no run folder beyond what the test put there.
    assert not (tmp_path / "out").exists()
    assert sorted(p.name for p in (tmp_path / "run").glob("*")) == (["last.pt"] if "resume" in entry else [])


def test_python_entry_points_refuse_code_in_a_checkpoint(evil):
    from sceneseg.models import build_model
    from sceneseg.models.resnet import RESNETS
    from sceneseg.models.weights import load_backbone_weights
    from sceneseg.transfer import init_from

    path, marker = evil
    model = build_model(load_config(None).model)
    for load in (
        lambda: sceneseg.load_model(path),
        lambda: init_from(model, path, log=lambda m: None),
        lambda: load_backbone_weights(RESNETS["resnet18"](), path, "resnet18"),
    ):
        with pytest.raises(WeightsError, match="refusing to load"):
            load()
    assert not marker.exists()


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["evaluate"], "sceneseg evaluate: error: the following arguments are required: checkpoint"),
        (["evaluate", "x.pt", "--mode", "sideways"], "argument --mode: invalid choice: 'sideways'"),
        (["train", "missing.yaml"], "cannot read config file missing.yaml: No such file or directory"),
        (["train", "no_such_experiment"], "config 'no_such_experiment' is neither a file nor a built-in config"),
        (["train", "train.epochs=0"], "train.epochs = 0: expected at least 1"),
        (["train", "seed=-1"], "seed = -1: expected >= 0"),
        (["train", *TINY, "model.num_classes=5"], "model.num_classes = 5, but dataset 'camvid' has 11 classes"),
        (
            ["train", *TINY, "model.name=pspnet", "data.crop_size=32"],
            "data.crop_size = 32: PSPNet's pyramid pooling needs a layer4 map of at least 6x6",
        ),
        (["train", *TINY, "model.name=pspnet", "model.zoom_factor=4"], "model.zoom_factor = 4: training needs 8"),
        (
            ["train", *TINY, "model.name=pspnet", "train.batch_size=1"],
            "train.batch_size = 1: BatchNorm would normalise over 1 frame(s) of a 1x1 map",
        ),
    ],
)
def test_bad_input_is_one_line_naming_it(tmp_path, capsys, monkeypatch, argv, expected):
    monkeypatch.chdir(tmp_path)
    assert main([*argv, "--no-progress"] if argv[0] == "train" else argv) == 2
    err = capsys.readouterr().err
    assert expected in err and err.count("\n") == 1, err
    assert not any(tmp_path.iterdir())  # no run folder, no partial output


def test_a_directory_or_a_missing_file_as_checkpoint(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path)]) == 2
    assert f"checkpoint {tmp_path} is a directory; expected a weights file" in capsys.readouterr().err
    assert main(["predict", str(tmp_path / "gone.pt"), str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    assert "gone.pt does not exist" in capsys.readouterr().err


def test_distributed_settings_are_checked():
    two = Distributed(rank=0, world_size=2)
    with pytest.raises(
        ConfigError,
        match="train.batch_size = 9: it is the global batch, split evenly over the 2 "
        "processes; expected a multiple of 2",
    ):
        split_batch(load_config(None, ["train.batch_size=9"]).train, 24, two)
    assert split_batch(load_config(None, ["train.batch_size=8"]).train, 7, two) == (6, 3)
    with pytest.raises(
        SceneSegError, match="MASTER_ADDR and MASTER_PORT not set; start distributed training with torchrun"
    ):
        init_from_env("cpu", {"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1"})
    with pytest.raises(SceneSegError, match="environment variable RANK='one'"):
        init_from_env("cpu", {"WORLD_SIZE": "2", "RANK": "one"})
    assert init_from_env("cpu", {}) == Distributed()


def test_invalid_yaml_is_one_line_with_its_place(tmp_path, capsys):
    broken = tmp_path / "broken.yaml"
    broken.write_text("train: [1, 2\n")
    assert main(["train", str(broken)]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"sceneseg: error: config file {broken} is not valid YAML: expected ',' or ']', "
        "but got '<stream end>' (line 2, column 1)\n"
    )
