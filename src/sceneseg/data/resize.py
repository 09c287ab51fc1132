"""How a frame and its label change size, where the dataset and rare-class paste resize both.

The transforms' resizes (data/transforms.py) take the label rule from here; their images shrink
bilinearly, as every recipe was tuned with, so they keep that.

A label is resized by its nearest pixel, never blended: a blend of class 3 and class 5 is not
class 4. cv2.INTER_NEAREST samples at floor(x * scale), which shifts a label by up to a pixel
against the bilinear image; INTER_NEAREST_EXACT samples at pixel centres as INTER_LINEAR does, so
class edges stay on the image's edges. The image is averaged over its area when it shrinks (no
aliasing of thin poles into dashes) and interpolated bilinearly when it grows.
"""

from __future__ import annotations

import cv2
import numpy as np

LABEL_INTERPOLATION = cv2.INTER_NEAREST_EXACT


def image_interpolation(shrink: bool) -> int:
    """The cv2 flag for an image that shrinks (`shrink`) or grows to its new size."""
    return cv2.INTER_AREA if shrink else cv2.INTER_LINEAR


def resize_pair(image: np.ndarray, label: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(`image`, `label`) resized to `height` x `width`; the inputs are returned as they are if
    they already have that size."""
    if label.shape[:2] == (height, width):
        return image, label
    shrink = height * width < label.shape[0] * label.shape[1]
    image = cv2.resize(image, (width, height), interpolation=image_interpolation(shrink))
    label = cv2.resize(label, (width, height), interpolation=LABEL_INTERPOLATION)
    return image, label
