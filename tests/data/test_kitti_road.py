"""KITTI road: both label policies pixel for pixel, the split, any frame size, the real frames."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from sceneseg.data import KittiRoad
from sceneseg.data.kitti_road import road_labels, split_pairs
from sceneseg.errors import DataError
from tests.paths import KITTI_ROOT

MAGENTA, RED, BLACK, BLUE = (255, 0, 255), (255, 0, 0), (0, 0, 0), (0, 0, 255)


def ground_truth() -> np.ndarray:
    """A 4x5 colour ground truth with known counts: 8 road, 6 not road, 4 black, 2 blue-only."""
    gt = np.zeros((4, 5, 3), np.uint8)
    colours = [MAGENTA] * 8 + [RED] * 6 + [BLACK] * 4 + [BLUE] * 2
    gt.reshape(-1, 3)[:] = colours
    return gt


def write_kitti(root: Path, counts=(12, 11, 13), size=(20, 30)) -> None:
    (root / "training/image_2").mkdir(parents=True)
    (root / "training/gt_image_2").mkdir(parents=True)
    gt = cv2.resize(ground_truth(), size[::-1], interpolation=cv2.INTER_NEAREST)
    for category, count in zip(("um", "umm", "uu"), counts):
        for i in range(count):
            cv2.imwrite(str(root / f"training/image_2/{category}_{i:06d}.png"), np.full((*size, 3), i, np.uint8))
            cv2.imwrite(str(root / f"training/gt_image_2/{category}_road_{i:06d}.png"), gt[..., ::-1])


def test_label_policies_pixel_for_pixel():
    kitti = road_labels(ground_truth(), "kitti")
    cs6476 = road_labels(ground_truth(), "cs6476")
    assert [(kitti == v).sum() for v in (0, 1, 255)] == [8, 6, 6]  # black and blue-only ignored
    assert [(cs6476 == v).sum() for v in (0, 1, 255)] == [10, 10, 0]  # blue is road, black not road
    assert (kitti.reshape(-1)[:8] == 0).all() and (cs6476.reshape(-1)[18:] == 0).all()


def test_dataset_reads_policies_and_split(tmp_path):
    write_kitti(tmp_path)
    train = KittiRoad(tmp_path, "train", policy="cs6476")
    val = KittiRoad(tmp_path, "val", policy="kitti")
    assert (len(train), len(val)) == (36 - 30, 30)
    # the CS 6476 split: the last 10 frames of each category are val
    names = sorted(p[0].stem for p in val.pairs)
    assert names == sorted(
        [f"um_{i:06d}" for i in range(2, 12)]
        + [f"umm_{i:06d}" for i in range(1, 11)]
        + [f"uu_{i:06d}" for i in range(3, 13)]
    )
    image, label = val.load_raw(0)
    assert image.shape == (20, 30, 3) and set(np.unique(label)) <= {0, 1, 255}
    assert KittiRoad(tmp_path, "all", resize=(16, 48)).load_raw(5)[1].shape == (16, 48)


def test_ratio_split_is_seeded_and_disjoint(tmp_path):
    write_kitti(tmp_path)
    pairs = KittiRoad(tmp_path, "all").pairs
    a = split_pairs(pairs, "ratio", 0.25, seed=3)
    assert split_pairs(pairs, "ratio", 0.25, seed=3) == a
    assert split_pairs(pairs, "ratio", 0.25, seed=4)["val"] != a["val"]
    assert len(a["val"]) == 9 and not set(a["val"]) & set(a["train"])
    assert sorted(a["val"] + a["train"]) == sorted(pairs)


def test_bad_layouts_name_the_file(tmp_path):
    write_kitti(tmp_path)
    (tmp_path / "training/gt_image_2/uu_road_000004.png").unlink()
    with pytest.raises(DataError, match="uu_000004.png has no ground truth"):
        KittiRoad(tmp_path, "train")
    with pytest.raises(DataError, match="label policy 'blue'"):
        KittiRoad(tmp_path, "train", policy="blue")
    with pytest.raises(DataError, match="does not exist"):
        KittiRoad(tmp_path / "nowhere")


@pytest.mark.skipif(not KITTI_ROOT.is_dir(), reason="../shared/datasets/kitti_road not present")
def test_real_frames_split_259_30_and_full_resolution():
    train, val = KittiRoad(KITTI_ROOT, "train"), KittiRoad(KITTI_ROOT, "val")
    assert (len(train), len(val)) == (259, 30)
    assert {p[0].stem for p in val.pairs} >= {"um_000094", "umm_000095", "uu_000088", "uu_000097"}
    full = KittiRoad(KITTI_ROOT / "full_resolution", "all", policy="cs6476")
    image, label = full.load_raw(0)
    assert image.shape[:2] == label.shape and image.shape[1] > 1000
    road = (label == 0).mean()
    assert 0.02 < road < 0.6
