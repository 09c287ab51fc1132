"""Class-aware training crops: centred on a rare class's pixel, or redrawn while one class fills them.

Split from transforms.py, whose pipelines end in one of these crops when rare-class sampling is on
(README, "Sampling").
"""

from __future__ import annotations

import albumentations as A  # imported through transforms.py, which first turns off its update check
import numpy as np

from sceneseg.labels import IGNORE_INDEX


class ClassAwareCrop(A.RandomCrop):
    """RandomCrop that, with probability `rare_prob`, centres the crop on a pixel of a rare class
    instead, drawn uniformly among the rare pixels of the (already scaled, rotated, flipped) label.
    Otherwise a random crop where one class covers more than `max_class_share` of the labelled
    pixels is redrawn, up to CROP_RETRIES times; the last one drawn is kept.

    `rare_classes` (class indices) is set by sampling.prepare_sampling once the train split's labels
    are counted. A frame without a rare pixel gets the usual random crop. Near the border the crop is
    shifted back inside the (padded) frame, so the pixel is still in the crop but off its centre.
    Both draws come from the transform's generators, which SegTransform reseeds from the sample's
    seed: the crop stays a function of (seed, epoch, index).
    """

    # Attributes, not constructor arguments: albumentations validates the constructor's against RandomCrop's.
    rare_prob: float = 0.0
    rare_classes: tuple[int, ...] = ()
    max_class_share: float = 1.0
    CROP_RETRIES = 10

    def get_params_dependent_on_data(self, params: dict, data: dict) -> dict:
        out = super().get_params_dependent_on_data(params, data)
        mask = data["mask"]
        pad = out["pad_params"] or {"pad_top": 0, "pad_bottom": 0, "pad_left": 0, "pad_right": 0}
        if self.py_random.random() < self.rare_prob and self.rare_classes:
            rows, cols = np.nonzero(np.isin(mask, self.rare_classes))
            if len(rows):
                pick = int(self.random_generator.integers(len(rows)))
                height = mask.shape[0] + pad["pad_top"] + pad["pad_bottom"]
                width = mask.shape[1] + pad["pad_left"] + pad["pad_right"]
                top = min(max(rows[pick] + pad["pad_top"] - self.height // 2, 0), height - self.height)
                left = min(max(cols[pick] + pad["pad_left"] - self.width // 2, 0), width - self.width)
                return {**out, "crop_coords": (int(left), int(top), int(left) + self.width, int(top) + self.height)}
        for _ in range(self.CROP_RETRIES if self.max_class_share < 1 else 0):
            if largest_class_share(mask, out["crop_coords"], pad) <= self.max_class_share:
                break
            out = super().get_params_dependent_on_data(params, data)
        return out


def largest_class_share(mask: np.ndarray, crop_coords: tuple[int, int, int, int], pad: dict) -> float:
    """The largest class's share of the labelled pixels in a crop (coordinates in the padded frame,
    whose padding is ignore); 0 for a crop without labelled pixels."""
    left, top, right, bottom = (c - pad[k] for c, k in zip(crop_coords, ("pad_left", "pad_top") * 2))
    region = mask[max(top, 0) : max(bottom, 0), max(left, 0) : max(right, 0)]
    counts = np.bincount(region.ravel(), minlength=256)[:IGNORE_INDEX]
    return float(counts.max() / counts.sum()) if counts.sum() else 0.0
