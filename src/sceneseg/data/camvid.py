"""The CamVid dataset (11 classes) in SegNet's folder layout or as a CS 6476 / mseg list file.

Labels are returned in the canonical class order (Building, Tree, Sky, ...) with 255 = ignore,
whatever order the files on disk use. SegNet's label files number the classes differently from the
canonical list files; `label_order` says which a dataset reads (see CamVid).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sceneseg.data.base import (
    IGNORE_INDEX,
    SegmentationDataset,
    Transform,
    find_pairs,
)
from sceneseg.data.files import INVALID, read_index_label
from sceneseg.data.lists import read_list_file
from sceneseg.errors import DataError

CAMVID_CLASSES: tuple[str, ...] = (
    "Building", "Tree", "Sky", "Car", "SignSymbol", "Road",
    "Pedestrian", "Fence", "Column_Pole", "Sidewalk", "Bicyclist",
)  # fmt: skip
# Colours SegNet draws the classes with, listed in canonical order.
CAMVID_PALETTE: tuple[tuple[int, int, int], ...] = (
    (128, 0, 0), (128, 128, 0), (128, 128, 128), (64, 0, 128), (192, 128, 128), (128, 64, 128),
    (64, 64, 0), (64, 64, 128), (192, 192, 128), (60, 40, 222), (0, 128, 192),
)  # fmt: skip
# SegNet's files number the classes Sky=0, Building=1, ... Unlabelled=11; remap with one lookup.
SEGNET_TO_CANONICAL = np.full(256, INVALID, dtype=np.uint8)
SEGNET_TO_CANONICAL[:12] = (2, 0, 8, 5, 9, 1, 4, 7, 3, 6, 10, IGNORE_INDEX)
# List-format labels are canonical already: keep 0-10 and 255, flag the rest.
_CANONICAL_CHECK = np.full(256, INVALID, dtype=np.uint8)
_CANONICAL_CHECK[: len(CAMVID_CLASSES)] = np.arange(len(CAMVID_CLASSES))
_CANONICAL_CHECK[IGNORE_INDEX] = IGNORE_INDEX

# The small built-in sample (SegNet layout, 180x240) that ships inside the package.
SAMPLE_ROOT: Path = Path(__file__).resolve().parent / "sample"

_SPLITS = ("train", "val", "test")
LABEL_ORDERS = ("auto", "segnet", "canonical")


class CamVid(SegmentationDataset):
    """CamVid frames and canonical labels; see the module docstring for the two layouts.

    `label_order`: "segnet" (indices 0-11, Unlabelled = 11) or "canonical" (0-10, 255 = ignore).
    "auto" reads the SegNet folder layout as segnet and a list file as canonical (the CS 6476 / mseg
    lists); lists of SegNet label files (`sceneseg data split` writes them) need "segnet".
    """

    class_names = CAMVID_CLASSES
    palette = CAMVID_PALETTE

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        transform: Transform | None = None,
        list_file: str | Path | None = None,
        cache: bool = False,
        seed: int = 0,
        label_order: str = "auto",
    ) -> None:
        self.root = Path(root)
        self.split = split
        if label_order not in LABEL_ORDERS:
            raise DataError(f"label_order {label_order!r} is unknown; expected one of {', '.join(LABEL_ORDERS)}")
        if not self.root.is_dir():
            raise DataError(f"dataset root {self.root} does not exist; expected a folder")
        if list_file is None:
            if split not in _SPLITS:
                raise DataError(f"split {split!r} is unknown; expected one of {', '.join(_SPLITS)}")
            pairs = find_pairs(
                self.root / split, self.root / f"{split}annot", "SegNet layout <root>/<split>/ and <root>/<split>annot/"
            )
            source = f"{self.root / split}"
        else:
            pairs = read_list_file(Path(list_file), self.root)
            source = f"list file {list_file}"
        if label_order == "auto":
            label_order = "segnet" if list_file is None else "canonical"
        self.label_order = label_order
        if label_order == "segnet":
            self._lut, self._valid = SEGNET_TO_CANONICAL, "SegNet indices 0-11"
        else:
            self._lut, self._valid = _CANONICAL_CHECK, "canonical indices 0-10 and 255"
        super().__init__(pairs, source, transform, cache, seed)

    def read_label(self, path: Path) -> np.ndarray:
        return read_index_label(path, self._lut, self._valid)

    def __repr__(self) -> str:
        return f"CamVid(root={str(self.root)!r}, split={self.split!r}, pairs={len(self.pairs)})"
