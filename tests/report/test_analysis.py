"""Object-size and boundary metrics (sceneseg.report.analysis) on masks drawn by hand, whose answers
are worked out here by counting pixels."""

from __future__ import annotations

import numpy as np
import pytest

from sceneseg.report.analysis import (
    BoundaryCounts,
    FrameAnalysis,
    boundary_counts,
    boundary_distance,
    ground_truth_objects,
    size_bin_names,
    size_counts,
)

IGNORE = 255


def _two_squares() -> np.ndarray:
    """Class 0 everywhere, a 3x3 square (9 px, bin <64) and a 40x40 square (1600 px, bin 1024-4095)
    of class 1, and a 10x10 ignored patch."""
    truth = np.zeros((60, 80), np.uint8)
    truth[2:5, 2:5] = 1
    truth[10:50, 30:70] = 1
    truth[50:60, 0:10] = IGNORE
    return truth


def test_bins_are_named_by_their_pixel_areas():
    assert size_bin_names() == ["<64", "64-255", "256-1023", "1024-4095", ">=4096"]


def test_a_prediction_that_finds_the_big_square_and_misses_the_small_one():
    truth = _two_squares()
    prediction = np.zeros_like(truth)
    prediction[10:50, 30:70] = 1  # exactly the big square; the small one is predicted as class 0
    counts = size_counts(ground_truth_objects(truth, 2), prediction)
    assert counts.objects[1].tolist() == [1, 0, 0, 1, 0]
    assert counts.pixels[1].tolist() == [9, 0, 0, 1600, 0]
    assert counts.hits[1].tolist() == [0, 0, 0, 1600, 0]
    assert counts.recall()[1, [0, 3]].tolist() == [0.0, 1.0]
    assert np.isnan(counts.recall()[1, 1])  # no objects of that size: undefined, not 0
    assert counts.iou()[1, [0, 3]].tolist() == [0.0, 1.0]
    # Class 0 is one object of 60*80 - 9 - 1600 - 100 = 3091 px (the squares are holes in it).
    assert counts.objects[0].tolist() == [0, 0, 0, 1, 0] and counts.pixels[0, 3] == 3091
    assert counts.hits[0, 3] == 3091 and counts.false[0, 3] == 9  # the small square, predicted as 0
    assert counts.iou()[0, 3] == pytest.approx(3091 / (3091 + 9))
    pooled = counts.pooled()
    assert pooled.pixels.tolist() == [[9, 0, 0, 1600 + 3091, 0]] and pooled.recall()[0, 0] == 0.0


def test_false_positives_are_charged_to_the_nearest_objects_bin():
    truth = _two_squares()
    prediction = truth.copy()
    prediction[prediction == IGNORE] = 0
    prediction[2:5, 2:4] = 0  # 6 of the small square's 9 pixels missed
    prediction[6:8, 2:4] = 1  # 4 px of class 0 predicted as 1, nearest to the small square
    prediction[10:12, 72:75] = 1  # 6 px next to the big square
    prediction[52:56, 2:6] = 1  # on ignored pixels: not scored at all
    counts = size_counts(ground_truth_objects(truth, 2), prediction)
    assert counts.hits[1, 0] == 3 and counts.false[1].tolist() == [4, 0, 0, 6, 0]
    assert counts.recall()[1, 0] == pytest.approx(3 / 9)
    assert counts.iou()[1, 0] == pytest.approx(3 / (9 + 4))  # 9 object pixels + 4 false ones
    assert counts.iou()[1, 3] == pytest.approx(1600 / (1600 + 6))
    assert counts.false[0].tolist() == [0, 0, 0, 6, 0]  # the missed pixels, charged to class 0's object


def test_objects_touching_at_a_corner_are_one_object():
    truth = np.zeros((20, 20), np.uint8)
    truth[0:5, 0:5] = 1
    truth[5:10, 5:10] = 1  # meets the first square only diagonally: 8-connected, 50 px
    objects = ground_truth_objects(truth, 2)
    assert objects.counts[1].tolist() == [1, 0, 0, 0, 0]
    with pytest.raises(ValueError, match="label value 3"):
        ground_truth_objects(np.full((4, 4), 3, np.uint8), 2)


def _split(width: int = 20, at: int = 10) -> np.ndarray:
    """A 10-row frame, class 0 left of column `at`, class 1 from it on."""
    truth = np.zeros((10, width), np.uint8)
    truth[:, at:] = 1
    return truth


def test_the_band_has_d_pixels_on_each_side_of_a_straight_boundary():
    truth = _split()
    distance = boundary_distance(truth)
    assert distance[0, 9] == 0 and distance[0, 10] == 0 and distance[0, 7] == 2 and distance[0, 13] == 3
    prediction = truth.copy()
    prediction[:, 10:12] = 0  # the predicted boundary 2 px right of the true one: 20 wrong pixels
    counts = boundary_counts(truth, prediction, 2, widths=(1, 3, 20))
    # d=1: columns 9 and 10 (20 px, column 10 wrong); interior: 180 px, column 11 wrong.
    # d=3: columns 7..12 (60 px, 20 wrong); interior 140 px, none wrong. d=20: all in the band.
    assert counts.band.sum(0).tolist() == [20, 60, 200] and counts.interior.sum(0).tolist() == [180, 140, 0]
    assert counts.band_accuracy()[:2].tolist() == [10 / 20, 40 / 60] and counts.band_accuracy()[2] == 0.9
    assert counts.interior_accuracy()[:2].tolist() == [170 / 180, 1.0] and np.isnan(counts.interior_accuracy()[2])
    assert counts.band_share().tolist() == [0.1, 0.3, 1.0]
    assert counts.band[:, 1].tolist() == [30, 30]  # per ground-truth class: three columns each side


def test_unlabelled_pixels_neither_make_boundaries_nor_count():
    truth = _split(width=24)
    truth[:, 20:22] = IGNORE  # class 1 | ignore | class 1: no boundary at columns 19 or 22
    distance = boundary_distance(truth)
    assert distance[0, 19] == 9 and distance[0, 22] == 12  # measured across the ignored columns
    counts = boundary_counts(truth, truth, 2, widths=(1,))
    assert counts.band.sum() + counts.interior.sum() == 10 * 22 and counts.band.sum() == 20
    # No labelled neighbours of another class anywhere: everything is interior.
    plain = np.zeros((5, 5), np.uint8)
    plain[2, 2] = IGNORE
    assert np.isinf(boundary_distance(plain)).all()
    assert boundary_counts(plain, plain, 2, widths=(3,)).interior.sum() == 24


def test_counts_add_up_over_frames_and_runs():
    truth = _split()
    wrong = truth.copy()
    wrong[:, 10:12] = 0
    analysis = FrameAnalysis(2, runs=2, widths=(1, 3))
    analysis.add(truth, [truth, wrong])
    analysis.add(truth, [wrong, wrong])
    both = boundary_counts(truth, truth, 2, (1, 3)) + boundary_counts(truth, wrong, 2, (1, 3))
    assert isinstance(both, BoundaryCounts)
    assert np.array_equal(analysis.boundaries[0].band_hits, both.band_hits)
    assert analysis.boundaries[1].band_accuracy().tolist() == [0.5, 40 / 60]
    # class 1 is one 100-px object per frame: found whole by the exact prediction, 80 of 100 by the shifted one
    assert analysis.sizes[0].objects[1].tolist() == [0, 2, 0, 0, 0]
    assert analysis.sizes[0].hits[1, 1] == 100 + 80 and analysis.sizes[1].hits[1, 1] == 160
