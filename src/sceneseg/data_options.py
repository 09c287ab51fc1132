"""The rules of the data section's augmentation and sampling switches, kept apart from sampling.py
and the data package (which need torch and OpenCV) so that config.py checks them at load time, as
loss_options does for the loss section."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import DataConfig

# Chances of the random training pipeline's steps (crops, colour, paste): without data.data_aug
# frames go through the val transform, which has none of them.
PROBABILITIES = ("rare_crop_prob", "photometric", "paste_prob")


def augmentation_checks(data: DataConfig) -> list[tuple[bool, str, Any, str]]:
    """validate's rows for the data section's augmentation (random scale included) and sampling switches."""
    threshold, most, aug = data.repeat_threshold, data.max_class_share, data.data_aug
    scales = (data.scale_min, data.scale_max)
    checks = [
        (0 < data.scale_min <= data.scale_max, "data.scale_min/scale_max", scales, "0 < scale_min <= scale_max"),
        (threshold is None or 0 < threshold <= 1, "data.repeat_threshold", threshold, "null or a fraction in (0, 1]"),
        (0 < data.rare_class_share < 1, "data.rare_class_share", data.rare_class_share, "a fraction in (0, 1)"),
        (0 < most <= 1, "data.max_class_share", most, "a fraction in (0, 1]"),
        (most == 1 or aug, "data.max_class_share", most, "1 with data.data_aug=false"),
    ]
    for key in PROBABILITIES:
        value = getattr(data, key)
        checks.append((0 <= value <= 1, f"data.{key}", value, "a probability in [0, 1]"))
        checks.append((value == 0 or aug, f"data.{key}", value, "0 with data.data_aug=false"))
    return checks
