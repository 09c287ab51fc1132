"""The limits of whole-frame inference options, shared by a config's eval section and InferenceSettings.

Kept apart from inference.py (which needs torch) so that config.py can check its eval section at
load time with exactly the rules `sceneseg predict` and `sceneseg.predict` apply.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from .errors import ConfigError

# The reference protocol's sliding-window stride as a fraction of the window. Exactly 2/3: the
# 0.6667 older configs write makes a window of 201 step 135 pixels instead of 134.
STRIDE_RATE = 2 / 3
MIN_SIZE = 32  # pixels: the smallest short side and sliding window accepted
INFERENCE_MODES = ("whole", "slide")  # how a whole frame is turned into probabilities
# The final evaluation may also use the per-epoch protocol: centre crops at data.short_side.
EVAL_MODES = (*INFERENCE_MODES, "crop")


def check_inference_options(
    options: Any, prefix: str, modes: Sequence[str] = INFERENCE_MODES, num_classes: int | None = None
) -> None:
    """Raise a ConfigError naming the first value of `options` that inference cannot work with.

    `options` is an EvalConfig or an InferenceSettings (mode, short_side, crop_size, stride_rate,
    scales, class_bias); a key is named `prefix` + field, e.g. "eval.crop_size". With `num_classes`
    (a config knows it; settings learn it from the model at predict time) class_bias's length is
    checked too, so that a wrong length fails before training rather than at its final evaluation.
    """
    bias = list(options.class_bias)
    checks = [
        (options.mode in modes, "mode", options.mode, " or ".join(repr(mode) for mode in modes)),
        (
            options.short_side is None or options.short_side >= MIN_SIZE,
            "short_side",
            options.short_side,
            f"at least {MIN_SIZE} pixels, or null for the frame's own size",
        ),
        (options.crop_size >= MIN_SIZE, "crop_size", options.crop_size, f"at least {MIN_SIZE} pixels"),
        (0 < options.stride_rate <= 1, "stride_rate", options.stride_rate, "in (0, 1]"),
        (
            len(options.scales) > 0 and min(options.scales) > 0,
            "scales",
            list(options.scales),
            "a non-empty list of positive factors",
        ),
        (all(math.isfinite(b) for b in bias), "class_bias", bias, "finite numbers"),
        (num_classes is None or len(bias) in (0, num_classes), "class_bias", bias, f"none or {num_classes} values"),
    ]
    for ok, key, value, expected in checks:
        if not ok:
            raise ConfigError(f"{prefix}{key} = {value!r}: expected {expected}")
