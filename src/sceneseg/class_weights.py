"""Class weights of the cross-entropy losses: computed from the train split's label histogram
(`class_weights`, `train_class_weights`, with loss.class_weight_mult's factors), printed for the
training log, and recorded in the run folder (class_weights.json), so that a resumed run can check
it still trains with the weights it started with.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from .data.check import LabelCounts, count_labels
from .errors import ConfigError, DataError
from .typecheck import did_you_mean

if TYPE_CHECKING:
    from .config import LossConfig
    from .data import SegmentationDataset

CLASS_WEIGHTS_FILE = "class_weights.json"  # in the run folder


def class_weights(
    scheme: str | tuple[float, ...] | None, counts: LabelCounts | None, enet_c: float = 1.02
) -> np.ndarray | None:
    """Per-class cross-entropy weights (a float64 array; None without weights) from the train split's
    label `counts` (needed by the computed ones only), `scheme` being loss.class_weights:

      enet              w_c = 1 / ln(enet_c + p_c)  (Paszke et al. 2016), p_c = class c's share of
                        the labelled pixels
      median_frequency  w_c = median_k(freq_k) / freq_c  (Eigen and Fergus 2015, as SegNet uses it),
                        freq_c = pixels of class c / all pixels (ignored ones included) of the
                        images in which c occurs, the median over the classes that occur
      a list            the weights as given, not rescaled

    The two computed ones are scaled so that sum_c p_c w_c = 1: the mean weight per labelled pixel
    is 1, and the learning rates tuned for plain cross-entropy still fit. A class absent from the
    train split gets 0: no training pixel has it, so its weight never enters the loss, and 0 says
    so in the log instead of an arbitrary number.
    """
    if scheme is None or isinstance(scheme, tuple):
        return None if scheme is None else np.asarray(scheme, dtype=np.float64)
    pixels = counts.class_pixels.astype(np.float64)
    if pixels.sum() == 0:
        raise DataError(f"loss.class_weights = {scheme!r}: the train split has no labelled pixel to count")
    share, present = pixels / pixels.sum(), pixels > 0
    if scheme == "enet":
        raw = 1.0 / np.log(enet_c + share)
    elif scheme == "median_frequency":
        freq = np.divide(pixels, counts.image_pixels, out=np.zeros_like(pixels), where=present)
        raw = np.divide(np.median(freq[present]), freq, out=np.zeros_like(pixels), where=present)
    else:  # config.validate accepts only the schemes above
        raise ValueError(f"unknown class weight scheme {scheme!r}")
    raw = np.where(present, raw, 0.0)
    return raw / (share @ raw)


def train_class_weights(
    config: LossConfig, train_set: SegmentationDataset, counts: LabelCounts | None = None
) -> torch.Tensor | None:
    """loss.class_weights for the train split as a float32 tensor; `counts`: its labels' count_labels as
    training sees them, if already counted (sampling counts them, after rare-class paste when that is
    on), else the raw labels, counted here when the scheme needs them. loss.class_weight_mult then
    multiplies the named classes' weights (the others, and the scaling, stay as they are)."""
    if config.class_weights is None:
        return None
    if not isinstance(config.class_weights, tuple):
        counts = counts or count_labels(train_set)
    weights = class_weights(config.class_weights, counts, config.enet_c)
    check_class_weight_mult(config, train_set.class_names)
    for name, factor in config.class_weight_mult.items():
        weights[train_set.class_names.index(name)] *= factor
    return torch.tensor(weights, dtype=torch.float32)


def check_class_weight_mult(config: LossConfig, class_names: tuple[str, ...]) -> None:
    """loss.class_weight_mult names classes of the dataset only (training checks it before reading any frame)."""
    for name in config.class_weight_mult:
        if name not in class_names:
            raise ConfigError(
                f"loss.class_weight_mult: {name!r} is not a class of this dataset ({', '.join(class_names)})"
                + did_you_mean(name, class_names)
            )


def format_class_weights(names: tuple[str, ...] | list[str], weights: torch.Tensor) -> str:
    """One line for the training log: class name=weight for every class."""
    return "class weights: " + " ".join(f"{name}={w:.4g}" for name, w in zip(names, weights.tolist()))


def weights_record(config: LossConfig, names: tuple[str, ...], weights: torch.Tensor) -> str:
    """class_weights.json: loss.class_weights (and class_weight_mult) and each class's weight in the run."""
    scheme = config.class_weights
    record = {"class_weights": list(scheme) if isinstance(scheme, tuple) else scheme}
    if config.class_weight_mult:  # only then, so that records written before it still compare equal
        record["class_weight_mult"] = dict(config.class_weight_mult)
    record["weights"] = dict(zip(names, weights.tolist()))
    return json.dumps(record, indent=1) + "\n"


def check_recorded_weights(
    run_dir: Path, config: LossConfig, names: tuple[str, ...], weights: torch.Tensor | None
) -> None:
    """A resumed run must train with the weights it started with; the train labels changing would change them."""
    path = run_dir / CLASS_WEIGHTS_FILE
    if weights is None or not path.is_file():
        return
    if json.loads(path.read_text()) != json.loads(weights_record(config, names, weights)):
        raise DataError(
            f"{path}: the run started with other class weights than the train split gives now "
            f"({format_class_weights(names, weights)}); expected the same train labels "
            "(and, with data.paste_prob, a run started since class weights count pasted labels, 2026-12-06)"
        )
