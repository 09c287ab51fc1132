"""`sceneseg evaluate --split test --root ROOT`: the checkpoint is scored on ROOT's test frames (not
val, not the root it was trained on), and the confusion matrix counts exactly their labelled pixels."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import cv2
import numpy as np
import torch

from sceneseg.checkpoint import save_checkpoint
from sceneseg.cli import main
from sceneseg.config import load_config, to_dict
from sceneseg.models import MODELS

# SegNet's files number the classes in this order, 11 = unlabelled (SegNet's CamVid README); the
# checkpoint's metrics name them in sceneseg's own order, so counting by name checks the remapping.
SEGNET_ORDER = (
    "Sky",
    "Building",
    "Column_Pole",
    "Road",
    "Sidewalk",
    "Tree",
    "SignSymbol",
    "Fence",
    "Car",
    "Pedestrian",
    "Bicyclist",
)
UNLABELLED = 11
FRAMES = {"train": 2, "val": 3, "test": 2}  # test and val differ in count: the summary tells them apart
SIZE = (40, 56)


def _write_camvid(root: Path) -> dict[str, list[np.ndarray]]:
    """A CamVid tree in SegNet's layout; test labels use SegNet indices 0-5 and 11, the others 6-11."""
    rng = np.random.default_rng(0)
    labels: dict[str, list[np.ndarray]] = {}
    for split, count in FRAMES.items():
        (root / split).mkdir(parents=True)
        (root / f"{split}annot").mkdir()
        low, high = (0, 6) if split == "test" else (6, 11)
        labels[split] = []
        for i in range(count):
            label = rng.integers(low, high, SIZE, dtype=np.uint8)
            label[:4] = UNLABELLED  # an unlabelled strip, which no count may include
            cv2.imwrite(str(root / split / f"{split}_{i}.png"), rng.integers(0, 256, (*SIZE, 3), dtype=np.uint8))
            cv2.imwrite(str(root / f"{split}annot" / f"{split}_{i}.png"), label)
            labels[split].append(label)
    return labels


def _untrained_checkpoint(path: Path) -> Path:
    """An untrained SimpleSegmentationNet-R18 saved as `sceneseg train` saves it; its config names the
    built-in sample as data root, which has no test split."""
    config = load_config(None, ["eval.short_side=32", "eval.mode=whole", "data.cache=false", "train.bf16=false"])
    options = {k: v for k, v in dataclasses.asdict(config.model).items() if k != "name" and v is not None}
    torch.manual_seed(0)
    model = MODELS[config.model.name](**options)
    save_checkpoint(path, config=to_dict(config), model=model.state_dict(), epoch=1)
    return path


def test_evaluate_scores_the_test_split_of_the_given_root(tmp_path, capsys):
    labels = _write_camvid(tmp_path / "camvid")
    checkpoint = _untrained_checkpoint(tmp_path / "run" / "best.pt")
    args = ["evaluate", str(checkpoint), "--root", str(tmp_path / "camvid"), "--no-progress"]

    assert main([*args, "--split", "test"]) == 0
    written = tmp_path / "run" / "eval_test.json"  # the default: beside the checkpoint, named by split
    assert str(written) in capsys.readouterr().out
    summary = json.loads(written.read_text())
    assert summary["split"] == "test" and summary["frames"] == FRAMES["test"] and summary["mode"] == "whole"

    names = [c["name"] for c in summary["classes"]]
    confusion = np.asarray(summary["confusion"], dtype=np.int64)
    truth = np.concatenate([label.ravel() for label in labels["test"]])
    expected = [int((truth == SEGNET_ORDER.index(name)).sum()) for name in names]
    assert confusion.sum(1).tolist() == expected  # rows: ground truth, at the labels' full size
    assert confusion.sum() == int((truth != UNLABELLED).sum())
    # Every pixel was predicted as some class, and the accuracy is read off the same matrix.
    assert summary["allAcc"] == np.trace(confusion) / confusion.sum()

    # The val split of the same root is another set of frames and classes.
    assert main([*args, "--split", "val", "--out", str(tmp_path / "val.json")]) == 0
    val = json.loads((tmp_path / "val.json").read_text())
    assert val["split"] == "val" and val["frames"] == FRAMES["val"]
    val_truth = np.concatenate([label.ravel() for label in labels["val"]])
    val_rows = np.asarray(val["confusion"]).sum(1).tolist()
    assert val_rows == [int((val_truth == SEGNET_ORDER.index(name)).sum()) for name in names] != expected


def test_evaluate_names_a_missing_split(tmp_path, capsys):
    _write_camvid(tmp_path / "camvid")
    for folder in ("test", "testannot"):
        for path in (tmp_path / "camvid" / folder).iterdir():
            path.unlink()
        (tmp_path / "camvid" / folder).rmdir()
    checkpoint = _untrained_checkpoint(tmp_path / "best.pt")
    code = main(["evaluate", str(checkpoint), "--split", "test", "--root", str(tmp_path / "camvid"), "--no-progress"])
    assert code == 2
    assert str(tmp_path / "camvid" / "test") in capsys.readouterr().err
    assert not (tmp_path / "eval_test.json").exists()


def test_evaluate_defaults_to_the_split_the_run_validated_on(tmp_path, capsys):
    _write_camvid(tmp_path / "camvid")
    checkpoint = _untrained_checkpoint(tmp_path / "run" / "best.pt")
    # A run that validated on "test": without --split, evaluate scores test, not a split named val.
    args = ["evaluate", str(checkpoint), "data.val_split=test", "--root", str(tmp_path / "camvid"), "--no-progress"]
    assert main(args) == 0
    summary = json.loads((tmp_path / "run" / "eval_test.json").read_text())
    assert summary["split"] == "test" and summary["frames"] == FRAMES["test"]


def test_evaluate_in_crop_mode_says_which_eval_settings_it_leaves_out(tmp_path, capsys):
    # Mode crop is the per-epoch protocol: a class bias or flip in the config would silently not count.
    _write_camvid(tmp_path / "camvid")
    checkpoint = _untrained_checkpoint(tmp_path / "run" / "best.pt")
    args = ["evaluate", str(checkpoint), "--root", str(tmp_path / "camvid"), "--no-progress", "--mode", "crop"]
    bias = "eval.class_bias=[" + ",".join(["0.1"] * len(SEGNET_ORDER)) + "]"
    assert main([*args, "eval.flip=true", bias]) == 0
    out = capsys.readouterr().out
    assert "eval.flip, eval.class_bias do not apply" in out
    assert json.loads((tmp_path / "run" / "eval_val.json").read_text())["mode"] == "crop"
    assert main([*args, "eval.flip=false"]) == 0  # nothing left out, nothing said
    assert "do not apply" not in capsys.readouterr().out
