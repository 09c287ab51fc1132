"""Dataset health check: decode every pair and count what is in it.

`summarize` is what `sceneseg data check` runs before anyone spends hours training: it decodes every
image and label (so a corrupt file or a stray label value raises DataError naming the file) and
reports the class balance, which is worth a look because the rare classes (poles, signs,
pedestrians, cyclists) are where segmentation models fail first. Its counts come from `count_labels`,
which the class-weighted losses (class_weights.class_weights) count the train split with too.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sceneseg.data.base import SegmentationDataset


@dataclass(frozen=True)
class LabelCounts:
    """Label pixels of a dataset, counted by `count_labels` for the data check and the class weights."""

    class_pixels: np.ndarray  # (num_classes,) int64: pixels of each class over all frames
    image_pixels: np.ndarray  # (num_classes,) int64: all pixels of the frames where the class occurs
    ignored_pixels: int
    sizes: dict[str, int]  # {"HxW": number of frames of that size}
    # (frames, num_classes) bool: which classes each frame's label holds (repeat-factor sampling)
    frame_classes: np.ndarray | None = None


def count_labels(dataset: SegmentationDataset, pasted: bool = False) -> LabelCounts:
    """Decode every pair of `dataset` (raw, untransformed) and count its label pixels; `pasted`: as
    the first epoch's rare-class paste (dataset.paste) leaves each frame, which is what the class
    weights must count, since the model learns from the pasted frames (one draw per frame: the
    weights hardly move with the pasted share's sampling noise, 1 / ln(c + p) being flat in p)."""
    sizes: Counter[str] = Counter()
    num_classes = dataset.num_classes
    class_pixels = np.zeros(num_classes, dtype=np.int64)
    image_pixels = np.zeros(num_classes, dtype=np.int64)
    ignored = 0
    frame_classes = np.zeros((len(dataset), num_classes), dtype=bool)
    for index in range(len(dataset)):
        image, label = dataset.load_raw(index)
        if pasted and dataset.paste is not None:
            seed = dataset.sample_seed(index, epoch=1)
            image, label = dataset.paste.apply(index, seed, image, label, dataset.load_raw)
        height, width = image.shape[:2]
        sizes[f"{height}x{width}"] += 1
        # bincount over all 256 byte values: one pass per label, and ignore (255) lands in its own bin.
        counts = np.bincount(label.ravel(), minlength=256)
        class_pixels += counts[:num_classes]
        frame_classes[index] = counts[:num_classes] > 0
        image_pixels += np.where(frame_classes[index], label.size, 0)
        ignored += int(counts[dataset.ignore_index])
    return LabelCounts(class_pixels, image_pixels, ignored, dict(sorted(sizes.items())), frame_classes)


def summarize(dataset: SegmentationDataset) -> dict[str, Any]:
    """Decode every pair of `dataset` and count sizes and class pixels.

    Returns a JSON-friendly dict:
      num_pairs       number of image/label pairs
      sizes           {"HxW": number of images of that size}
      total_pixels    label pixels counted (every pixel is a class or ignored)
      class_pixels    pixels per class, in the dataset's class order
      class_share     the same as percent of total_pixels
      ignored_pixels  pixels labelled ignore_index
      ignored_share   the same as percent of total_pixels
    """
    counts = count_labels(dataset)
    # load_raw rejects any other value, so classes + ignored is every pixel.
    total = int(counts.class_pixels.sum()) + counts.ignored_pixels
    scale = 100.0 / total if total else 0.0
    return {
        "num_pairs": len(dataset),
        "sizes": counts.sizes,
        "total_pixels": total,
        "class_pixels": [int(c) for c in counts.class_pixels],
        "class_share": [float(c) * scale for c in counts.class_pixels],
        "ignored_pixels": counts.ignored_pixels,
        "ignored_share": counts.ignored_pixels * scale,
    }


def format_summary(summary: dict[str, Any], class_names: Sequence[str]) -> str:
    """A plain-text report of `summarize`'s result, one line per class."""
    sizes = ", ".join(f"{size} ({count})" for size, count in summary["sizes"].items())
    width = max(len(name) for name in [*class_names, "(ignored)"])
    lines = [
        f"pairs: {summary['num_pairs']}",
        f"image sizes (HxW): {sizes}",
        f"pixels: {summary['total_pixels']}",
        f"{'class':<{width}}  {'share %':>8}  {'pixels':>12}",
    ]
    rows = zip(class_names, summary["class_share"], summary["class_pixels"])
    for name, share, pixels in rows:
        lines.append(f"{name:<{width}}  {share:>8.2f}  {pixels:>12d}")
    lines.append(f"{'(ignored)':<{width}}  {summary['ignored_share']:>8.2f}  {summary['ignored_pixels']:>12d}")
    return "\n".join(lines)
