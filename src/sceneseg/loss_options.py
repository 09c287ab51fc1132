"""The rules of a config's loss section, kept apart from losses.py (which needs torch) so that
config.py checks them at load time without importing the training code."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import LossConfig

CLASS_WEIGHT_SCHEMES = ("enet", "median_frequency")  # class_weights.class_weights computes these


def loss_checks(loss: LossConfig, num_classes: int) -> list[tuple[bool, str, Any, str]]:
    """validate's rows for the loss section: ranges, and the combinations that mean nothing."""
    weights, listed, lovasz = loss.class_weights, isinstance(loss.class_weights, tuple), loss.name == "lovasz"
    mult = loss.class_weight_mult
    schemes = "null, 'enet', 'median_frequency' or a list of one weight per class"
    alone = "with loss.name=lovasz (Lovász-softmax alone; use loss.name=ce loss.lovasz_weight=W to add it to CE)"
    return [
        (loss.name in ("ce", "ohem", "lovasz"), "loss.name", loss.name, "'ce', 'ohem' or 'lovasz'"),
        (listed or weights in (None, *CLASS_WEIGHT_SCHEMES), "loss.class_weights", weights, schemes),
        (not listed or len(weights) == num_classes, "loss.class_weights", weights, f"{num_classes} weights"),
        # min/max defaults: an empty list fails the count above, which is reported first.
        (
            not listed or min(weights, default=0) >= 0 < max(weights, default=0),
            "loss.class_weights",
            weights,
            "weights >= 0, not all 0",
        ),
        (weights is None or not lovasz, "loss.class_weights", weights, f"null {alone}"),
        # Their class names need the dataset: class_weights.check_class_weight_mult, before any frame is read.
        (all(0 < f < math.inf for f in mult.values()), "loss.class_weight_mult", mult, "finite factors > 0"),
        (not mult or weights is not None, "loss.class_weight_mult", mult, "{} when loss.class_weights is null"),
        (loss.enet_c > 1, "loss.enet_c", loss.enet_c, "> 1, so that ln(enet_c + p_c) > 0"),
        (0 < loss.ohem_thresh <= 1, "loss.ohem_thresh", loss.ohem_thresh, "a probability in (0, 1]"),
        (loss.ohem_min_kept >= 0, "loss.ohem_min_kept", loss.ohem_min_kept, ">= 0"),
        (loss.lovasz_weight >= 0, "loss.lovasz_weight", loss.lovasz_weight, ">= 0"),
        (loss.lovasz_weight == 0 or not lovasz, "loss.lovasz_weight", loss.lovasz_weight, f"0 {alone}"),
        (loss.lovasz_from_epoch >= 1, "loss.lovasz_from_epoch", loss.lovasz_from_epoch, "at least 1"),
        (loss.lovasz_bins >= 0, "loss.lovasz_bins", loss.lovasz_bins, "0 (exact sort) or a number of error levels"),
    ]
