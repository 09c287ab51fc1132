"""Where a model's errors are: by object size and near class boundaries, counted frame by frame.

Each function takes the ground-truth and predicted label maps of one frame (at the labels' own
resolution, as the final evaluation scores them) and returns counts, never rates, so that frames add
up exactly; rates are taken once at the end. Pixels labelled IGNORE_INDEX are never scored.

Object size. An object is a connected component (8-connectivity) of one class's ground-truth mask,
put in a bin by its area in pixels (SIZE_EDGES: <64, 64-255, 256-1023, 1024-4095, >=4096). Per class
and bin:
- recall: the share of the bin's object pixels predicted as their class, pooled over the bin's
  objects (pixel-pooled: a 60-pixel object weighs six times a 10-pixel one);
- IoU: hits / (object pixels + false positives of the bin). A labelled pixel predicted as class c
  but labelled otherwise is charged to the bin of the nearest object of class c in its frame (by
  OpenCV's 5x5 distance approximation); in a frame with no object of class c it counts in no bin.

Boundaries. A boundary pixel is a labelled pixel whose 4-neighbour has another label; an unlabelled
(ignore) neighbour makes no boundary, since where that boundary lies is unknown. The band of width d
is the labelled pixels less than d pixels (Euclidean, measured across unlabelled pixels too) from a
boundary pixel, so a straight boundary gets d pixels on each side; the interior is every other
labelled pixel. Accuracy is the share of pixels predicted as their label.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from ..labels import IGNORE_INDEX

SIZE_EDGES = (64, 256, 1024, 4096)  # object areas in pixels at which a new bin starts
BOUNDARY_WIDTHS = (1, 3, 5, 10)  # band widths d in pixels


def size_bin_names(edges: Sequence[int] = SIZE_EDGES) -> list[str]:
    """Readable bins: "<64", "64-255", ..., ">=4096"."""
    inner = [f"{low}-{high - 1}" for low, high in zip(edges[:-1], edges[1:])]
    return [f"<{edges[0]}", *inner, f">={edges[-1]}"]


@dataclass
class SizeCounts:
    """Per class (rows) and size bin (columns), summed over frames."""

    objects: np.ndarray  # connected components of the ground truth
    pixels: np.ndarray  # their pixels
    hits: np.ndarray  # their pixels predicted as their class
    false: np.ndarray  # pixels wrongly predicted as the class, charged to the nearest object's bin

    @classmethod
    def zeros(cls, num_classes: int, bins: int) -> SizeCounts:
        return cls(*(np.zeros((num_classes, bins), np.int64) for _ in range(4)))

    def __add__(self, other: SizeCounts) -> SizeCounts:
        return SizeCounts(*(a + b for a, b in zip(self._arrays(), other._arrays())))

    def _arrays(self) -> tuple[np.ndarray, ...]:
        return self.objects, self.pixels, self.hits, self.false

    def pooled(self) -> SizeCounts:
        """All classes together, as one row."""
        return SizeCounts(*(a.sum(0, keepdims=True) for a in self._arrays()))

    def of_class(self, cls: int) -> SizeCounts:
        """Class `cls` alone, as one row."""
        return SizeCounts(*(a[cls : cls + 1] for a in self._arrays()))

    def recall(self) -> np.ndarray:
        return _ratio(self.hits, self.pixels)

    def iou(self) -> np.ndarray:
        return _ratio(self.hits, self.pixels + self.false)


@dataclass
class BoundaryCounts:
    """Per ground-truth class (rows) and band width (columns), summed over frames."""

    band: np.ndarray  # labelled pixels in the band
    band_hits: np.ndarray  # of those, predicted as their label
    interior: np.ndarray
    interior_hits: np.ndarray

    @classmethod
    def zeros(cls, num_classes: int, widths: int) -> BoundaryCounts:
        return cls(*(np.zeros((num_classes, widths), np.int64) for _ in range(4)))

    def __add__(self, other: BoundaryCounts) -> BoundaryCounts:
        mine = (self.band, self.band_hits, self.interior, self.interior_hits)
        theirs = (other.band, other.band_hits, other.interior, other.interior_hits)
        return BoundaryCounts(*(a + b for a, b in zip(mine, theirs)))

    def band_accuracy(self) -> np.ndarray:
        """Pixel accuracy in the band, all classes pooled, per width."""
        return _ratio(self.band_hits.sum(0), self.band.sum(0))

    def interior_accuracy(self) -> np.ndarray:
        return _ratio(self.interior_hits.sum(0), self.interior.sum(0))

    def band_share(self) -> np.ndarray:
        """The share of labelled pixels that lie in the band, per width."""
        return _ratio(self.band.sum(0), self.band.sum(0) + self.interior.sum(0))


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, NaN where nothing was counted."""
    out = np.full(np.shape(numerator), np.nan)
    np.divide(numerator, denominator, out=out, where=np.asarray(denominator) > 0)
    return out


@dataclass
class Objects:
    """The ground-truth objects of one frame, shared by the predictions of every run."""

    truth: np.ndarray
    size_bin: np.ndarray  # per pixel: the bin of the object it belongs to; -1 where unlabelled
    counts: np.ndarray  # (classes, bins): number of objects
    nearest_bin: dict[int, np.ndarray] = field(default_factory=dict)  # class -> bin of its nearest object


def ground_truth_objects(
    truth: np.ndarray, num_classes: int, edges: Sequence[int] = SIZE_EDGES, ignore: int = IGNORE_INDEX
) -> Objects:
    """The objects of each class in `truth` (H, W), with their size bins."""
    objects = Objects(truth, np.full(truth.shape, -1, np.int64), np.zeros((num_classes, len(edges) + 1), np.int64))
    for cls in np.unique(truth).tolist():
        if cls == ignore:
            continue
        if cls >= num_classes:
            raise ValueError(f"label value {cls} is outside 0..{num_classes - 1} and not ignored")
        mask = (truth == cls).astype(np.uint8)
        _, components, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        bins = np.searchsorted(np.asarray(edges), stats[1:, cv2.CC_STAT_AREA], side="right")
        objects.counts[cls] += np.bincount(bins, minlength=len(edges) + 1)
        inside = mask.astype(bool)
        objects.size_bin[inside] = bins[components[inside] - 1]
        # Every pixel gets the label of its nearest object pixel, whose bin it then looks up.
        _, nearest = cv2.distanceTransformWithLabels(1 - mask, cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL)
        lookup = np.zeros(int(nearest.max()) + 1, np.int64)
        lookup[nearest[inside]] = objects.size_bin[inside]
        objects.nearest_bin[cls] = lookup[nearest]
    return objects


def size_counts(objects: Objects, prediction: np.ndarray) -> SizeCounts:
    """Counts of one frame's prediction against its ground-truth `objects`."""
    num_classes, bins = objects.counts.shape
    labelled = objects.size_bin >= 0
    key = objects.truth.astype(np.int64) * bins + objects.size_bin
    hit = labelled & (prediction == objects.truth)
    wrong = labelled & ~hit
    false = np.zeros((num_classes, bins), np.int64)
    for cls, nearest in objects.nearest_bin.items():
        false[cls] = np.bincount(nearest[wrong & (prediction == cls)], minlength=bins)
    return SizeCounts(
        objects.counts.copy(),
        np.bincount(key[labelled], minlength=num_classes * bins).reshape(num_classes, bins),
        np.bincount(key[hit], minlength=num_classes * bins).reshape(num_classes, bins),
        false,
    )


def boundary_distance(truth: np.ndarray, ignore: int = IGNORE_INDEX) -> np.ndarray:
    """Per pixel, the Euclidean distance to the nearest boundary pixel (inf: the frame has none)."""
    labelled = truth != ignore
    boundary = np.zeros(truth.shape, bool)
    for axis in (0, 1):
        ahead = [slice(None)] * 2
        behind = [slice(None)] * 2
        ahead[axis], behind[axis] = slice(1, None), slice(None, -1)
        ahead, behind = tuple(ahead), tuple(behind)
        differ = (truth[ahead] != truth[behind]) & labelled[ahead] & labelled[behind]
        boundary[ahead] |= differ
        boundary[behind] |= differ
    if not boundary.any():
        return np.full(truth.shape, np.inf, np.float32)
    return cv2.distanceTransform((~boundary).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)


def boundary_counts(
    truth: np.ndarray,
    prediction: np.ndarray,
    num_classes: int,
    widths: Sequence[int] = BOUNDARY_WIDTHS,
    distance: np.ndarray | None = None,
    ignore: int = IGNORE_INDEX,
) -> BoundaryCounts:
    """Counts of one frame in the band of each width and in the interior; `distance` (from
    boundary_distance) may be passed to share it between runs."""
    distance = boundary_distance(truth, ignore) if distance is None else distance
    labelled = truth != ignore
    correct = labelled & (prediction == truth)
    counts = BoundaryCounts.zeros(num_classes, len(widths))
    for k, width in enumerate(widths):
        near = distance < width
        for total, hits, where in (
            (counts.band, counts.band_hits, labelled & near),
            (counts.interior, counts.interior_hits, labelled & ~near),
        ):
            total[:, k] = np.bincount(truth[where], minlength=num_classes)[:num_classes]
            hits[:, k] = np.bincount(truth[where & correct], minlength=num_classes)[:num_classes]
    return counts


class FrameAnalysis:
    """Size and boundary counts of several runs' predictions, accumulated over frames."""

    def __init__(
        self, num_classes: int, runs: int, edges: Sequence[int] = SIZE_EDGES, widths: Sequence[int] = BOUNDARY_WIDTHS
    ) -> None:
        self.num_classes, self.edges, self.widths = num_classes, tuple(edges), tuple(widths)
        self.sizes = [SizeCounts.zeros(num_classes, len(edges) + 1) for _ in range(runs)]
        self.boundaries = [BoundaryCounts.zeros(num_classes, len(widths)) for _ in range(runs)]

    def add(self, truth: np.ndarray, predictions: Sequence[np.ndarray]) -> None:
        """Count one frame: its ground truth and each run's prediction, in the runs' order."""
        objects = ground_truth_objects(truth, self.num_classes, self.edges)
        distance = boundary_distance(truth)
        for k, prediction in enumerate(predictions):
            self.sizes[k] += size_counts(objects, prediction)
            self.boundaries[k] += boundary_counts(truth, prediction, self.num_classes, self.widths, distance)
