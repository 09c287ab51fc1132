"""Dataset check: pixel counts against hand counts and against the CamVid README."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from sceneseg.data import CamVid, format_summary, summarize
from sceneseg.errors import DataError
from tests.paths import CAMVID_ROOT

# The README's val row (percent of all pixels), by canonical name; Unlabelled is the ignored share.
README_VAL_SHARES = {
    "Building": 25.96, "Tree": 16.34, "Sky": 9.18, "Car": 1.75, "SignSymbol": 0.89, "Road": 28.95,
    "Pedestrian": 0.65, "Fence": 3.08, "Column_Pole": 0.56, "Sidewalk": 8.72, "Bicyclist": 2.22,
}  # fmt: skip
README_VAL_IGNORED = 1.70


def write_segnet(root: Path, stem: str, label: np.ndarray) -> None:
    for folder in ("val", "valannot"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(root / "val" / f"{stem}.png"), np.zeros((*label.shape, 3), np.uint8))
    cv2.imwrite(str(root / "valannot" / f"{stem}.png"), label.astype(np.uint8))


def tiny_dataset(root: Path) -> CamVid:
    # a (4x6 = 24 px): 12 Road (SegNet 3), 6 Building (SegNet 1), 6 Unlabelled (SegNet 11).
    a = np.full((4, 6), 3)
    a[2, :], a[3, :] = 1, 11
    # b (2x3 = 6 px): 3 Sky (SegNet 0), 3 Unlabelled.
    b = np.array([[0, 0, 0], [11, 11, 11]])
    write_segnet(root, "a", a)
    write_segnet(root, "b", b)
    return CamVid(root, "val")


def test_summarize_matches_hand_counts(tmp_path):
    summary = summarize(tiny_dataset(tmp_path))
    # 30 pixels in all: Building 6, Sky 3, Road 12, ignored 9.
    assert summary["num_pairs"] == 2
    assert summary["sizes"] == {"2x3": 1, "4x6": 1}
    assert summary["total_pixels"] == 30
    assert summary["class_pixels"] == [6, 0, 3, 0, 0, 12, 0, 0, 0, 0, 0]
    assert summary["class_share"] == pytest.approx([20, 0, 10, 0, 0, 40, 0, 0, 0, 0, 0])
    assert (summary["ignored_pixels"], summary["ignored_share"]) == (9, pytest.approx(30.0))


def test_format_summary_has_a_line_per_class(tmp_path):
    ds = tiny_dataset(tmp_path)
    text = format_summary(summarize(ds), ds.class_names)
    lines = text.splitlines()
    assert any(line.split()[:2] == ["Road", "40.00"] for line in lines)
    assert any(line.split()[:2] == ["(ignored)", "30.00"] for line in lines)
    assert all(any(line.startswith(name) for line in lines) for name in ds.class_names)


def test_summarize_raises_on_bad_label(tmp_path):
    ds = tiny_dataset(tmp_path)
    write_segnet(tmp_path, "b", np.full((2, 3), 99))  # same size, so __init__ accepts it
    with pytest.raises(DataError, match=r"b\.png.*\[99\]"):
        summarize(ds)


@pytest.mark.skipif(not CAMVID_ROOT.is_dir(), reason="CamVid not present beside the repo")
def test_real_val_shares_match_readme():
    ds = CamVid(CAMVID_ROOT, "val")
    summary = summarize(ds)
    assert summary["num_pairs"] == 101 and summary["sizes"] == {"360x480": 101}
    for name, share in zip(ds.class_names, summary["class_share"]):
        assert share == pytest.approx(README_VAL_SHARES[name], abs=0.05), name
    assert summary["ignored_share"] == pytest.approx(README_VAL_IGNORED, abs=0.05)
