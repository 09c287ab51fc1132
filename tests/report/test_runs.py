"""The numbers a report derives from a run: pixel shares, confusions, hardest classes, convergence."""

from __future__ import annotations

import numpy as np
import pytest

from sceneseg.report.qualitative import per_image_miou
from sceneseg.report.runs import Run, confused_with, converged_epoch, hardest_classes, pixel_share


def _run(confusion: list[list[int]], ious: list[float | None]) -> Run:
    names = ["road", "car", "pole"]
    metrics = {
        "classes": [{"name": n, "iou": iou, "acc": 0.0} for n, iou in zip(names, ious)],
        "confusion": confusion,
        "mIoU": 0.5,
        "epoch": 1,
    }
    return Run("r", None, "r", None, None, metrics, [])


def test_shares_confusions_and_ranking():
    run = _run([[90, 10, 0], [5, 10, 5], [6, 3, 1]], [0.8, 0.35, 0.07])
    assert pixel_share(run) == pytest.approx([100 / 130, 20 / 130, 10 / 130])
    assert confused_with(run, 2) == [("road", pytest.approx(0.6)), ("car", pytest.approx(0.3))]
    assert confused_with(run, 0) == [("car", pytest.approx(0.1))]  # classes never predicted are left out
    hardest = hardest_classes(run, count=2)
    assert [h["class"] for h in hardest] == ["pole", "car"] and hardest[0]["share"] == pytest.approx(10 / 130)


def test_classes_absent_from_val_are_not_ranked():
    run = _run([[5, 0, 0], [0, 5, 0], [0, 0, 0]], [1.0, 1.0, None])
    assert [h["class"] for h in hardest_classes(run)] == ["road", "car"]


def test_converged_epoch_is_the_first_within_one_percent_of_the_final_loss():
    history = [{"epoch": e, "train_loss": loss} for e, loss in enumerate([2.0, 1.0, 0.504, 0.7, 0.5], 1)]
    assert converged_epoch(history) == 3
    assert converged_epoch(history[:1]) == 1


def test_per_image_miou_counts_the_classes_in_truth_or_prediction():
    truth = np.array([[0, 0, 1, 255]], np.uint8)
    prediction = np.array([[0, 1, 1, 2]], np.uint8)
    # class 0: 1/2, class 1: 1/2, class 2 is neither labelled nor predicted on labelled pixels
    assert per_image_miou(truth, prediction, 3) == pytest.approx(0.5)
    assert per_image_miou(truth, truth, 3) == 1.0


def test_picked_frames_are_spread_over_the_video():
    from sceneseg.report.qualitative import _spread

    assert _spread([10, 11, 40, 12, 3, 41], 3) == [10, 40, 3]
    assert _spread([0, 1, 2], 2) == [0, 1]  # fewer frames than the gap asks for: rank order
