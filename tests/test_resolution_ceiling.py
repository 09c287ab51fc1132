"""scripts/resolution_ceiling.py: the round trip of a drawn label through a coarse output grid."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "resolution_ceiling.py"
spec = importlib.util.spec_from_file_location("resolution_ceiling", SCRIPT)
ceiling = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ceiling)


def _pole_frame() -> torch.Tensor:
    """32x32: class 0 everywhere, a 2-pixel-wide pole (class 2) in columns 8-9, unlabelled bottom row."""
    label = torch.zeros(32, 32, dtype=torch.uint8)
    label[:, 8:10] = 2
    label[-1] = 255
    return label


def test_the_full_grid_keeps_the_label_and_a_coarse_one_loses_the_pole():
    label = _pole_frame()
    exact = ceiling.round_trip(ceiling.one_hot_label(label, 3), short_side=32, stride=1)
    assert torch.equal(exact.argmax(0)[:-1], label[:-1].long())
    assert exact[:, -1].sum() == 0  # unlabelled pixels belong to no class
    coarse = ceiling.round_trip(ceiling.one_hot_label(label, 3), short_side=32, stride=8)
    # a grid cell of 8 columns holds at most 2 pole columns: a share of 1/4, never the arg-max
    assert coarse[2].max() <= 0.25 + 1e-6 and not (coarse.argmax(0) == 2).any()
    # shares sum to 1 where no cell that holds the unlabelled row is interpolated from (rows 0-19)
    assert torch.allclose(coarse.sum(0)[:20], torch.ones(20, 32)) and coarse.sum(0)[-1].max() < 1


def test_favouring_a_class_finds_it_at_the_best_threshold():
    label = _pole_frame()
    shares = ceiling.round_trip(ceiling.one_hot_label(label, 3), short_side=32, stride=8)
    valid = label < 3
    counts = ceiling.threshold_counts(shares[2], label == 2, valid)
    intersection, union = counts[:, 0], counts[:, 1]
    assert torch.all(intersection <= (label == 2).sum()) and torch.all(union >= (label == 2).sum())
    # Thresholds above the largest share call nothing; the lowest calls a band around the pole.
    assert intersection[ceiling.THRESHOLDS > 0.25].sum() == 0
    assert intersection[0] == (label == 2).sum() and union[0] > intersection[0]
