"""`sceneseg predict` on inputs that yield no frame: a clear error and no output folder left behind,
while a folder that existed before is never removed."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from sceneseg.checkpoint import save_checkpoint
from sceneseg.cli import main
from sceneseg.config import load_config, to_dict
from sceneseg.errors import DataError
from sceneseg.inference import InferenceSettings
from sceneseg.models import MODELS
from sceneseg.predict_files import predict_paths

NO_FRAME = "no input yielded a frame"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """An untrained SimpleSegmentationNet-R18 in the format `sceneseg train` writes."""
    config = load_config(None, ["eval.short_side=32"])
    options = {k: v for k, v in dataclasses.asdict(config.model).items() if k != "name" and v is not None}
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "best.pt"
    save_checkpoint(path, config=to_dict(config), model=MODELS[config.model.name](**options).state_dict(), epoch=1)
    return path


def _frameless_inputs(folder: Path) -> list[Path]:
    """An empty folder, a folder of non-images, a PNG that does not decode and a video with no frames."""
    (folder / "empty").mkdir(parents=True)
    (folder / "notes").mkdir()
    (folder / "notes" / "readme.txt").write_text("no pictures here")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    (folder / "broken.mp4").write_bytes(b"no video here" * 20)
    return [folder / "empty", folder / "notes", folder / "broken.png", folder / "broken.mp4"]


def _predict(checkpoint: Path, inputs: list[Path], out: Path) -> int:
    return main(["predict", str(checkpoint), *map(str, inputs), "--out", str(out), "--no-progress"])


def test_an_empty_folder_leaves_no_output_folder(checkpoint, tmp_path, capsys):
    (tmp_path / "in").mkdir()
    out = tmp_path / "results" / "run1"  # two levels made by the call: both must go again
    assert _predict(checkpoint, [tmp_path / "in"], out) == 2
    errors = capsys.readouterr().err
    assert NO_FRAME in errors and str(tmp_path / "in") in errors and "holds no images" in errors
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]


def test_every_kind_of_frameless_input_is_named(checkpoint, tmp_path, capsys):
    inputs = _frameless_inputs(tmp_path / "in")
    out = tmp_path / "out"
    assert _predict(checkpoint, inputs, out) == 2
    errors = capsys.readouterr().err
    final = next(line for line in errors.splitlines() if NO_FRAME in line)
    assert all(str(path) in final for path in inputs)
    assert f"{len(inputs)} failure(s)" in final
    assert not out.exists()


def test_an_existing_output_folder_is_kept(checkpoint, tmp_path, capsys):
    (tmp_path / "in").mkdir()
    kept, empty = tmp_path / "kept", tmp_path / "empty_before"
    kept.mkdir()
    (kept / "old_label.png").write_bytes(b"earlier output")
    empty.mkdir()
    for out in (kept, empty):
        assert _predict(checkpoint, [tmp_path / "in"], out) == 2 and NO_FRAME in capsys.readouterr().err
    assert [p.name for p in kept.iterdir()] == ["old_label.png"] and (kept / "old_label.png").read_bytes() == (
        b"earlier output"
    )
    assert empty.is_dir() and not any(empty.iterdir())


def test_the_library_call_raises_and_cleans_up_too(checkpoint, tmp_path):
    import sceneseg

    model = sceneseg.load_model(checkpoint)
    inputs = _frameless_inputs(tmp_path / "in")
    messages: list[str] = []
    with pytest.raises(DataError, match=NO_FRAME) as info:
        predict_paths(
            model,
            inputs,
            tmp_path / "out",
            InferenceSettings(short_side=32),
            show_progress=False,
            on_failure=messages.append,
        )
    assert str(inputs[0]) in str(info.value) and len(messages) == len(inputs)
    assert not (tmp_path / "out").exists()

    # One good frame among them: it is written, the folder stays, the failures are reported.
    cv2.imwrite(str(tmp_path / "in" / "empty" / "street.png"), np.zeros((24, 32, 3), np.uint8))
    report = predict_paths(
        model,
        inputs,
        tmp_path / "out",
        InferenceSettings(short_side=32),
        show_progress=False,
        on_failure=messages.append,
    )
    assert sorted(p.name for p in report.written) == ["street_color.png", "street_label.png", "street_overlay.png"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(p.name for p in report.written)
    assert len(report.failures) == len(inputs) - 1  # the folder that now holds a frame is no failure


def test_an_output_path_that_is_a_file_is_an_error(checkpoint, tmp_path, capsys):
    cv2.imwrite(str(tmp_path / "street.png"), np.zeros((24, 32, 3), np.uint8))
    (tmp_path / "taken").write_text("a file, not a folder")
    assert _predict(checkpoint, [tmp_path / "street.png"], tmp_path / "taken") == 2
    assert f"output folder {tmp_path / 'taken'} is a file; expected a folder" in capsys.readouterr().err
    assert (tmp_path / "taken").read_text() == "a file, not a folder"
