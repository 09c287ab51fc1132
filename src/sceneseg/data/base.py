"""What every segmentation dataset shares: reading and checking files, caching, seeding.

A dataset is a list of (image, label) file pairs plus a way to turn a label file into class
indices (`read_label`). Everything a training run would trip over later (missing labels, size
mismatches, and with `cache=True` also corrupt files and stray label values) is checked in
`__init__`, so a bad dataset fails in seconds with a message naming the file instead of hours into
training.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from sceneseg.data.files import read_image, read_size
from sceneseg.data.paste import RarePaste
from sceneseg.data.resize import resize_pair
from sceneseg.errors import DataError
from sceneseg.labels import IGNORE_INDEX

_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
Transform = Callable[[np.ndarray, np.ndarray, int], tuple[torch.Tensor, torch.Tensor]]


def find_pairs(
    image_dir: Path, label_dir: Path, layout: str = "a folder of images and a folder of label PNGs named like them"
) -> list[tuple[Path, Path]]:
    """Pair every image in `image_dir` with the label PNG of the same stem in `label_dir`."""
    for folder in (image_dir, label_dir):
        if not folder.is_dir():
            raise DataError(f"folder {folder} does not exist; expected {layout}")
    labels = {p.stem: p for p in label_dir.iterdir() if p.suffix.lower() == ".png"}
    pairs: dict[str, tuple[Path, Path]] = {}
    for image in sorted(p for p in image_dir.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES):
        if image.stem in pairs:
            other = pairs[image.stem][0]
            raise DataError(f"images {other} and {image} share a stem; expected one per frame")
        if image.stem not in labels:
            raise DataError(f"image {image} has no label; expected {label_dir / (image.stem + '.png')}")
        pairs[image.stem] = (image, labels[image.stem])
    return list(pairs.values())


Splits = dict[str, list[tuple[Path, Path]]]


def held_out_split(pairs: list[tuple[Path, Path]], val: list[tuple[Path, Path]]) -> Splits:
    """{"train": pairs not in `val`, "val": those in it, "all": every pair}, each in the order of `pairs`."""
    held_out = set(val)
    return {
        "train": [p for p in pairs if p not in held_out],
        "val": [p for p in pairs if p in held_out],
        "all": list(pairs),
    }


def ratio_split(pairs: list[tuple[Path, Path]], val_ratio: float, seed: int) -> Splits:
    """A deterministic random split: `val_ratio` of the pairs (at least one), drawn with `seed`, are val."""
    if not 0 < val_ratio < 1:
        raise DataError(f"val_ratio = {val_ratio}: expected a fraction between 0 and 1 (both excluded)")
    shuffled = list(pairs)
    random.Random(seed).shuffle(shuffled)
    return held_out_split(pairs, shuffled[: max(1, round(len(pairs) * val_ratio))])


def _decode_all(decode: Callable[[int], Any], count: int) -> list[Any]:
    """decode(0..count-1) on a thread per core (OpenCV's decoders release the GIL); in order, and
    the first failing index raises, as a plain loop would."""
    with ThreadPoolExecutor(max_workers=min(os.cpu_count() or 1, 16)) as pool:
        return list(pool.map(decode, range(count)))


class SegmentationDataset(Dataset):
    """(image, label) pairs; subclasses set the class names and palette and implement read_label."""

    class_names: tuple[str, ...] = ()
    palette: tuple[tuple[int, int, int], ...] = ()
    ignore_index: int = IGNORE_INDEX

    def __init__(
        self,
        pairs: list[tuple[Path, Path]],
        source: str,
        transform: Transform | None = None,
        cache: bool = False,
        seed: int = 0,
        resize: tuple[int, int] | None = None,
    ) -> None:
        """`resize` (height, width), if given, is applied to every decoded pair: image bilinear
        (area when shrinking), label nearest, as datasets of mixed frame sizes often need."""
        if not pairs:
            raise DataError(f"{source} holds no image/label pairs; expected at least one")
        if resize is not None and (len(resize) != 2 or min(resize) < 1):
            raise DataError(f"resize = {list(resize)}: expected [height, width] in pixels")
        self.pairs = pairs
        self.transform = transform
        self.seed = seed
        self.epoch = 0
        self.resize = resize
        self.paste: RarePaste | None = None  # set by sampling.prepare_sampling for data.paste_prob
        self._check_sizes()
        self._cache: list[tuple[np.ndarray, np.ndarray]] | None = None
        self._prepared: list[tuple[np.ndarray, np.ndarray]] | None = None
        if cache:
            self._cache = _decode_all(self._decode, len(self.pairs))
            # The transform's deterministic first step (the short-side resize) done once here, not
            # in every epoch; load_raw keeps the frames as they are, which label counts need.
            prepare = getattr(transform, "prepare", None)
            self._prepared = [prepare(*pair) for pair in self._cache] if prepare else None
            # Every epoch reuses these arrays: make accidental in-place edits fail loudly.
            for image, label in self._cache + (self._prepared or []):
                image.flags.writeable = label.flags.writeable = False

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def read_label(self, path: Path) -> np.ndarray:
        """uint8 HxW class indices (ignore_index for unlabelled pixels) of a label file."""
        raise NotImplementedError

    def _check_sizes(self) -> None:
        # Header reads only (a few bytes per PNG), so this stays cheap even without the cache.
        self.sizes: list[tuple[int, int]] = []  # (H, W) of each pair, for batching whole frames
        for image_path, label_path in self.pairs:
            image_size, label_size = read_size(image_path), read_size(label_path)
            if image_size != label_size:
                raise DataError(
                    f"image {image_path} is {image_size[0]}x{image_size[1]} (HxW) but its label "
                    f"{label_path} is {label_size[0]}x{label_size[1]}; expected the same size"
                )
            self.sizes.append(tuple(self.resize) if self.resize else label_size)

    def _decode(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        image_path, label_path = self.pairs[index]
        image = read_image(image_path)
        label = self.read_label(label_path)
        if image.shape[:2] != label.shape:
            raise DataError(
                f"image {image_path} decodes to {image.shape[:2]} but label {label_path} to "
                f"{label.shape}; expected the same size"
            )
        if self.resize is not None:
            image, label = resize_pair(image, label, *self.resize)
        return image, label

    def __len__(self) -> int:
        return len(self.pairs)

    def load_raw(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The untransformed pair: uint8 HxWx3 RGB image and uint8 HxW canonical label."""
        if self._cache is not None:
            return self._cache[index]
        return self._decode(index)

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation draw of the samples asked for without an epoch (call before iterating
        each epoch). Workers started earlier keep their own copy: training passes the epoch in each key."""
        self.epoch = epoch

    def sample_seed(self, index: int, copy: int = 0, epoch: int | None = None) -> int:
        """The augmentation seed of one sample: a fixed function of (seed, epoch, index), and of `copy`
        for the further copies of a frame that repeat-factor sampling draws in one epoch (sampling.py),
        so that each copy is augmented differently. Copy 0 has the seed it had before copies existed.
        `epoch` defaults to the one set_epoch chose.

        Depending on nothing else (no worker id, no global RNG state) makes an epoch's augmentations
        the same for any number of DataLoader workers and after resuming from a checkpoint.
        """
        epoch = self.epoch if epoch is None else epoch
        entropy = [self.seed % 2**64, epoch % 2**64, index % 2**64] + ([copy] if copy else [])
        return int(np.random.SeedSequence(entropy).generate_state(1)[0])

    def __getitem__(self, index: int | tuple[int, int] | tuple[int, int, int]) -> tuple[Any, Any]:
        """(image, label) tensors after the transform, or the raw arrays when it is None. `index` may
        be (index, copy), as the repeat-factor sampler yields it, or (index, copy, epoch), as the
        training loader's sampler does (loading.py): the epoch then comes with the key, not from
        set_epoch, which DataLoader workers that outlive an epoch would not see. See sample_seed."""
        key = index if isinstance(index, tuple) else (index,)
        index, copy, epoch = key[0], key[1] if len(key) > 1 else 0, key[2] if len(key) > 2 else None
        index = range(len(self.pairs))[index]  # negative indices get the same seed as positive
        if self.transform is None:
            return self.load_raw(index)
        image, label = self._frame(index)
        seed = self.sample_seed(index, copy, epoch)
        if self.paste is not None:
            image, label = self.paste.apply(index, seed, image, label, self._frame)
        return self.transform(image, label, seed)

    def _frame(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The pair the transform starts from, after its short-side resize (SegTransform.prepare),
        done once in the cache if there is one: a paste then sees the same pixels with or without it."""
        if self._prepared is not None:
            return self._prepared[index]
        prepare = getattr(self.transform, "prepare", None)
        return prepare(*self.load_raw(index)) if prepare else self.load_raw(index)
