"""Sampling that sees rare classes more often: repeat-factor sampling of frames, rare-class crops
(data/crops.ClassAwareCrop) and rare-class paste (data/paste.py); this module sets them up.

Repeat-factor sampling (Gupta, Dollár and Girshick, LVIS, CVPR 2019): with f_c the fraction of
train frames whose label holds class c and t = data.repeat_threshold, class c's repeat factor is
r_c = max(1, sqrt(t / f_c)) and frame i's is r_i = max of r_c over the classes in its label. An
epoch shows frame i floor(r_i) times, plus once more with probability frac(r_i).

The epoch has a fixed length, L = round(sum r_i) frames, so that iterations per epoch and the poly
schedule's max_iter are the same every epoch (and a resumed run's iteration counts stay valid): the
Bernoulli extras are trimmed (a random subset kept) or topped up (more frames drawn with
probability proportional to frac(r_i)) to exactly L - sum floor(r_i). The floor(r_i) copies are
never touched, and the expected count of frame i stays close to r_i.

Everything is drawn from a generator seeded by (seed, epoch) alone, so the epoch's order is the
same for any number of DataLoader workers, after resuming, and for any number of processes, which
then deal it out as distributed.Distributed.train_sampler does the plain shuffle. The k-th copy of a
frame is yielded as (frame, k): the dataset gives each copy its own augmentation seed.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from torch.utils.data import Sampler

from .config import DataConfig
from .data import LabelCounts, SegmentationDataset, count_labels
from .data.paste import RarePaste


def repeat_factors(frame_classes: np.ndarray, threshold: float) -> np.ndarray:
    """r_i for each frame from its (frames, classes) presence matrix; frames without a class get 1."""
    frame_share = frame_classes.mean(axis=0)  # f_c
    with np.errstate(divide="ignore"):
        # A class in no frame gets inf here but never enters a frame's maximum.
        class_factor = np.maximum(1.0, np.sqrt(threshold / frame_share))
    return np.where(frame_classes, class_factor, 1.0).max(axis=1, initial=1.0)


def epoch_length(factors: np.ndarray) -> int:
    """Frames per epoch: the expected number, round(sum r_i), drawn exactly (see the module's text)."""
    return int(round(float(factors.sum())))


def epoch_frames(factors: np.ndarray, seed: int, epoch: int) -> list[tuple[int, int]]:
    """The epoch's (frame, copy) list in training order, a function of (factors, seed, epoch) only."""
    rng = np.random.default_rng(np.random.SeedSequence([seed % 2**64, epoch % 2**64]))
    whole = np.floor(factors).astype(np.int64)
    frac = factors - whole
    wanted = epoch_length(factors) - int(whole.sum())  # round(sum frac) extras, >= 0
    hit = rng.random(len(factors)) < frac
    extras = np.flatnonzero(hit)
    if len(extras) > wanted:
        extras = rng.choice(extras, wanted, replace=False)
    elif len(extras) < wanted:  # enough spares: fewer than round(sum frac) frames can't have frac > 0
        spare = np.flatnonzero(~hit & (frac > 0))
        more = rng.choice(spare, wanted - len(extras), replace=False, p=frac[spare] / frac[spare].sum())
        extras = np.concatenate([extras, more])
    copies = whole.copy()
    copies[extras] += 1
    order = rng.permutation(np.repeat(np.arange(len(factors)), copies))
    seen = np.zeros(len(factors), dtype=np.int64)
    frames = []
    for frame in order.tolist():
        frames.append((frame, int(seen[frame])))
        seen[frame] += 1
    return frames


class RepeatFactorSampler(Sampler[tuple[int, int]]):
    """One rank's share of an epoch's (frame, copy) list: every world_size-th from its rank on, the
    tail that does not fill a round over all ranks dropped (as DistributedSampler's drop_last)."""

    def __init__(self, factors: np.ndarray, seed: int, epoch: int, rank: int = 0, world_size: int = 1) -> None:
        self.factors, self.seed, self.epoch, self.rank, self.world_size = factors, seed, epoch, rank, world_size

    def __iter__(self) -> Iterator[tuple[int, int]]:
        frames = epoch_frames(self.factors, self.seed, self.epoch)
        return iter(frames[self.rank : len(self) * self.world_size : self.world_size])

    def __len__(self) -> int:
        return epoch_length(self.factors) // self.world_size


@dataclass(frozen=True)
class Sampling:
    """What a run samples with: repeat factors (None: each frame once per epoch) and rare classes."""

    factors: np.ndarray | None = None
    rare_classes: tuple[int, ...] = ()
    counts: LabelCounts | None = None  # the train split's label counts, when sampling needed them
    # The labels as training sees them (after rare-class paste; else `counts`): what class weights count.
    seen_counts: LabelCounts | None = None
    paste_donors: int = 0  # train frames that hold a rare class: what rare-class paste copies from

    def epoch_length(self, frames: int) -> int:
        return frames if self.factors is None else epoch_length(self.factors)


def rare_classes(counts: LabelCounts, share: float) -> tuple[int, ...]:
    """Classes present in the train split with less than `share` of its labelled pixels."""
    pixels = counts.class_pixels.astype(np.float64)
    fraction = pixels / max(pixels.sum(), 1.0)
    return tuple(int(c) for c in np.flatnonzero((pixels > 0) & (fraction < share)))


def prepare_sampling(config: DataConfig, train_set: SegmentationDataset) -> Sampling:
    """Count the train split's raw labels once (only when a switch is on) and set up the switches:
    the rare classes are handed to the train transform's ClassAwareCrop and to the dataset's RarePaste,
    whose donors are the frames that hold one; with paste on, count them again as pasted (seen_counts)."""
    needs_rare = config.rare_crop_prob > 0 or config.paste_prob > 0
    if config.repeat_threshold is None and not needs_rare:
        return Sampling()
    counts = count_labels(train_set)
    factors = None if config.repeat_threshold is None else repeat_factors(counts.frame_classes, config.repeat_threshold)
    rare = rare_classes(counts, config.rare_class_share) if needs_rare else ()
    if rare and config.rare_crop_prob > 0:
        train_set.transform.set_rare_classes(rare)
    donors: tuple[int, ...] = ()
    if rare and config.paste_prob > 0:
        donors = tuple(int(d) for d in np.flatnonzero(counts.frame_classes[:, list(rare)].any(axis=1)))
        train_set.paste = RarePaste(rare, donors, config.paste_prob)
    seen = count_labels(train_set, pasted=True) if train_set.paste else counts
    return Sampling(factors, rare, counts, seen, len(donors))


def describe_sampling(config: DataConfig, sampling: Sampling, names: Sequence[str]) -> str | None:
    """A log line on what the sampling switches do to this train split (None: all off)."""
    parts = []
    rare = ", ".join(names[c] for c in sampling.rare_classes) or "none"
    if sampling.factors is not None:
        factors = sampling.factors
        parts.append(
            f"repeat factors (t={config.repeat_threshold}): {int((factors > 1).sum())} of {len(factors)} "
            f"frames oversampled (max r={factors.max():.2f}), {epoch_length(factors)} frames per epoch"
        )
    if config.rare_crop_prob > 0:
        parts.append(
            f"rare-class crops (p={config.rare_crop_prob}) on classes under "
            f"{config.rare_class_share:.1%} of the pixels: {rare}"
        )
    if config.paste_prob > 0:
        parts.append(f"rare-class paste (p={config.paste_prob}) of {rare} from {sampling.paste_donors} frames")
    if config.max_class_share < 1:
        parts.append(f"crops redrawn while one class covers over {config.max_class_share:.0%} of them")
    return "sampling: " + "; ".join(parts) if parts else None
