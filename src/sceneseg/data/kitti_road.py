"""KITTI road (data_road layout): road / not-road segmentation of 289 training frames.

Layout: `training/image_2/{um,umm,uu}_NNNNNN.png` with colour ground truth
`training/gt_image_2/{um,umm,uu}_road_NNNNNN.png`. In KITTI's encoding the blue channel marks road
and the red channel marks the pixels that are evaluated. Two label policies:

- `kitti`: KITTI's own rule. Evaluated (red 255) pixels are road where blue is 255, else not road;
  pixels that are not evaluated (black, and blue-only "road, not evaluated") are ignored (255).
- `cs6476`: the CS 6476 project's rule. Road where blue is 255, everything else not road, nothing
  ignored.

Splits: `cs6476` (default) holds out the last 10 frames of each category (um, umm, uu) as val,
259/30, as the project did; `ratio` draws `val_ratio` of the frames at random with `split_seed`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sceneseg.data.base import (
    IGNORE_INDEX,
    SegmentationDataset,
    Splits,
    Transform,
    held_out_split,
    ratio_split,
)
from sceneseg.data.files import read_image
from sceneseg.errors import DataError

KITTI_CLASSES: tuple[str, ...] = ("Road", "Not_Road")
KITTI_PALETTE: tuple[tuple[int, int, int], ...] = ((255, 0, 255), (255, 0, 0))
CATEGORIES = ("um", "umm", "uu")
POLICIES = ("kitti", "cs6476")
SPLIT_MODES = ("cs6476", "ratio")
VAL_PER_CATEGORY = 10


def kitti_pairs(root: Path) -> list[tuple[Path, Path]]:
    """Every (image, ground truth) pair under root/training, sorted by category and number."""
    image_dir, gt_dir = root / "training" / "image_2", root / "training" / "gt_image_2"
    for folder in (image_dir, gt_dir):
        if not folder.is_dir():
            raise DataError(
                f"folder {folder} does not exist; expected the KITTI data_road layout "
                "<root>/training/image_2 and <root>/training/gt_image_2"
            )
    pairs = []
    for image in sorted(image_dir.glob("*.png")):
        category, _, number = image.stem.partition("_")
        if category not in CATEGORIES or not number.isdigit():
            raise DataError(f"image {image}: expected a name like um_000000.png (categories {CATEGORIES})")
        gt = gt_dir / f"{category}_road_{number}.png"
        if not gt.is_file():
            raise DataError(f"image {image} has no ground truth; expected {gt}")
        pairs.append((image, gt))
    return pairs


def split_pairs(pairs: list[tuple[Path, Path]], mode: str = "cs6476", val_ratio: float = 0.1, seed: int = 0) -> Splits:
    """Deterministic train/val split of KITTI pairs (see the module docstring)."""
    if mode == "ratio":
        return ratio_split(pairs, val_ratio, seed)
    if mode != "cs6476":
        raise DataError(f"split mode {mode!r} is unknown; expected one of {', '.join(SPLIT_MODES)}")
    val = []
    for category in CATEGORIES:
        frames = [p for p in pairs if p[0].stem.split("_")[0] == category]
        val += frames[-VAL_PER_CATEGORY:]
    return held_out_split(pairs, val)


def road_labels(rgb: np.ndarray, policy: str) -> np.ndarray:
    """Class indices (0 road, 1 not road, 255 ignored) of a KITTI colour ground truth."""
    road = rgb[..., 2] == 255
    label = np.where(road, 0, 1).astype(np.uint8)
    if policy == "kitti":
        label[rgb[..., 0] != 255] = IGNORE_INDEX
    return label


class KittiRoad(SegmentationDataset):
    class_names = KITTI_CLASSES
    palette = KITTI_PALETTE

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        transform: Transform | None = None,
        policy: str = "kitti",
        split_mode: str = "cs6476",
        val_ratio: float = 0.1,
        split_seed: int = 0,
        resize: tuple[int, int] | None = None,
        cache: bool = False,
        seed: int = 0,
    ) -> None:
        if policy not in POLICIES:
            raise DataError(f"label policy {policy!r} is unknown; expected one of {', '.join(POLICIES)}")
        if split not in ("train", "val", "all"):
            raise DataError(f"split {split!r} is unknown; expected train, val or all")
        self.root, self.split, self.policy = Path(root), split, policy
        if not self.root.is_dir():
            raise DataError(f"dataset root {self.root} does not exist; expected a folder")
        pairs = split_pairs(kitti_pairs(self.root), split_mode, val_ratio, split_seed)[split]
        super().__init__(pairs, f"{self.root} ({split} split)", transform, cache, seed, resize)

    def read_label(self, path: Path) -> np.ndarray:
        return road_labels(read_image(path), self.policy)

    def __repr__(self) -> str:
        return (
            f"KittiRoad(root={str(self.root)!r}, split={self.split!r}, policy={self.policy!r}, pairs={len(self.pairs)})"
        )
