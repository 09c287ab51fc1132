"""scripts/thin_errors.py: near and far errors of a class against drawn masks, and the script's command."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from sceneseg.builders import build_dataset
from sceneseg.config import load_config
from tests.test_predict import write_checkpoint

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "thin_errors.py"
spec = importlib.util.spec_from_file_location("thin_errors", SCRIPT)
script = importlib.util.module_from_spec(spec)
sys.modules["thin_errors"] = script  # its dataclass looks its module up there
spec.loader.exec_module(script)

POLE = 1


def _frame() -> tuple[np.ndarray, np.ndarray]:
    """Two poles in the truth (one found a pixel to the right, one missed) and a 4-px one too small
    to count as an object; the prediction adds a far 2x2 blob and calls an unlabelled pixel a pole."""
    truth = np.zeros((40, 40), np.uint8)
    truth[5:35, 10:13] = POLE  # 90 px
    truth[5:25, 30:32] = POLE  # 40 px
    truth[0:2, 38:40] = POLE  # 4 px
    truth[39, 39] = 255
    pred = np.zeros_like(truth)
    pred[5:35, 11:14] = POLE
    pred[36:38, 0:2] = POLE
    pred[39, 39] = POLE
    return pred, truth


def test_errors_a_pixel_off_and_far_away_are_told_apart():
    counts = script.ClassErrors()
    counts.add(*_frame(), POLE)
    s = counts.summary()
    # hits: columns 11-12 of the first pole; false positives: its column 13 (1 px off) and the blob;
    # misses: its column 10 (1 px off), the second pole and the small one (both far).
    hits, fp, fn = 60, 30 + 4, 30 + 40 + 4
    assert s["iou"] == pytest.approx(hits / (hits + fp + fn))
    assert s["far_false_positive"] == pytest.approx({1.5: 4 / fp, 2.5: 4 / fp, 4.5: 4 / fp})
    assert s["far_missed"] == pytest.approx({1.5: 44 / fn, 2.5: 44 / fn, 4.5: 44 / fn})
    # forgiven: the 30 near misses become hits, the 30 near false positives leave the union
    assert s["iou_forgiving_near"] == pytest.approx((hits + 30) / (hits + fp + fn - 30))
    assert (s["objects"], s["found"]) == (2, 1)


def test_a_frame_without_the_class_makes_its_false_positives_far():
    counts = script.ClassErrors()
    pred, truth = _frame()
    counts.add(pred, np.zeros_like(truth), POLE)
    s = counts.summary()
    assert s["far_false_positive"][4.5] == 1.0 and s["objects"] == 0 and s["iou"] == 0.0


def test_command_counts_the_objects_of_the_split(tmp_path, capsys):
    checkpoint = write_checkpoint(tmp_path / "best.pt")
    assert script.main([str(checkpoint), "--split", "val"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    assert [row.split(" | ")[0] for row in rows] == ["| class", "| Column_Pole", "| SignSymbol"]
    dataset = build_dataset(load_config(None).data, "val", "whole", split="val")
    pole = list(dataset.class_names).index("Column_Pole")
    objects = 0
    for index in range(len(dataset)):
        _, _, stats, _ = cv2.connectedComponentsWithStats(
            (dataset.load_raw(index)[1] == pole).astype(np.uint8), connectivity=8
        )
        objects += int((stats[1:, cv2.CC_STAT_AREA] >= script.MIN_AREA).sum())
    assert objects and rows[1].endswith(f"/ {objects} |")


def test_command_names_an_unknown_class(tmp_path, capsys):
    checkpoint = write_checkpoint(tmp_path / "best.pt")
    assert script.main([str(checkpoint), "--classes", "Lamppost"]) == 2
    assert "'Lamppost': not a class of" in capsys.readouterr().err
