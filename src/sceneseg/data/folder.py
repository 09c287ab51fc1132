"""A user's own data: a folder of images and a folder of masks, paired by file name.

Masks are either index PNGs (one class index per pixel, `ignore_index` for unlabelled) or colour
PNGs, mapped to classes through a palette: one RGB colour per class, in class order.

Splits (`split`: train, val, or all frames): `split_mode` "list" reads the split's frames from a list
file (`<image> <mask>` per line, relative to the root); "ratio" draws `val_ratio` of the frames for
val with `split_seed`, the same way KittiRoad's ratio split does (base.ratio_split).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from sceneseg.data.base import (
    IGNORE_INDEX,
    SegmentationDataset,
    Transform,
    find_pairs,
    ratio_split,
)
from sceneseg.data.files import INVALID, read_image, read_index_label
from sceneseg.data.lists import read_list_file
from sceneseg.errors import DataError

SPLITS = ("train", "val", "all")
SPLIT_MODES = ("list", "ratio")


class FolderDataset(SegmentationDataset):
    def __init__(
        self,
        root: str | Path,
        class_names: Sequence[str],
        images: str = "images",
        masks: str = "masks",
        palette: Sequence[Sequence[int]] | None = None,
        list_file: str | Path | None = None,
        transform: Transform | None = None,
        cache: bool = False,
        seed: int = 0,
        resize: tuple[int, int] | None = None,
        split: str = "all",
        split_mode: str = "list",
        val_ratio: float = 0.1,
        split_seed: int = 0,
    ) -> None:
        """`palette` given: masks are colour PNGs; colours outside it are an error, except black
        when the palette lacks it, which is read as unlabelled (ignored). `list_file` is a path (not
        relative to root); the frames it names are the split, whatever `split` says."""
        self.root = Path(root)
        self.class_names = tuple(class_names)
        if not 2 <= len(self.class_names) < INVALID:
            raise DataError(f"{len(self.class_names)} class names given; expected 2 to {INVALID - 1}")
        if palette is not None:
            self.palette = tuple(tuple(int(c) for c in colour) for colour in palette)
            if len(self.palette) != len(self.class_names) or any(len(c) != 3 for c in self.palette):
                raise DataError(
                    f"palette {list(palette)}: expected one RGB triple per class ({len(self.class_names)} classes)"
                )
        self.colour_masks = palette is not None
        self.split = split
        # With a list file the file names the frames, so any split name (test, say) is fine.
        if (list_file is None and split not in SPLITS) or split_mode not in SPLIT_MODES:
            raise DataError(
                f"split {split!r} with split_mode {split_mode!r}: expected a split among "
                f"{', '.join(SPLITS)} (any name with a list file) and a split_mode among {', '.join(SPLIT_MODES)}"
            )
        if list_file is not None:
            if split_mode == "ratio":
                raise DataError(
                    f"list file {list_file} given with split_mode 'ratio'; expected one of the two "
                    "(list files choose the frames of each split, a ratio draws them)"
                )
            pairs, source = read_list_file(Path(list_file), self.root), f"list file {list_file}"
        elif split_mode == "ratio":
            pairs = ratio_split(find_pairs(self.root / images, self.root / masks), val_ratio, split_seed)[split]
            source = f"{self.root / images} ({split} split)"
        elif split == "all":
            pairs, source = find_pairs(self.root / images, self.root / masks), str(self.root / images)
        else:
            raise DataError(
                f"the {split} split of {self.root} has no list file; expected one (data.{split}_list "
                "in a config) or split_mode 'ratio'"
            )
        self._lut = np.full(256, INVALID, dtype=np.uint8)
        self._lut[: len(self.class_names)] = np.arange(len(self.class_names))
        self._lut[IGNORE_INDEX] = IGNORE_INDEX
        super().__init__(pairs, source, transform, cache, seed, resize)

    def read_label(self, path: Path) -> np.ndarray:
        if not self.colour_masks:
            return read_index_label(path, self._lut, f"class indices 0-{len(self.class_names) - 1} and 255")
        rgb = read_image(path).astype(np.int32)
        codes = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
        label = np.full(codes.shape, INVALID, dtype=np.uint8)
        for index, (r, g, b) in enumerate(self.palette):
            label[codes == (r << 16 | g << 8 | b)] = index
        if (0, 0, 0) not in self.palette:
            label[codes == 0] = IGNORE_INDEX
        if (label == INVALID).any():
            stray = [f"({c >> 16}, {c >> 8 & 255}, {c & 255})" for c in np.unique(codes[label == INVALID])[:5]]
            raise DataError(
                f"mask {path} has colours {', '.join(stray)} that are not in the palette; "
                f"expected one of {list(self.palette)}"
            )
        return label

    def __repr__(self) -> str:
        return f"FolderDataset(root={str(self.root)!r}, split={self.split!r}, pairs={len(self.pairs)})"
