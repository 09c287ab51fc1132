"""Drawing label maps: colour masks, overlays on the frame, a legend of class colours.

Images here are RGB uint8 arrays of shape (H, W, 3), labels integer arrays of shape (H, W). Label
values without a palette entry (255 = ignore, or anything out of range) are drawn black in colour
masks and leave the frame untouched in overlays.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from .errors import DataError

Palette = Sequence[Sequence[int]]


def generated_palette(num_classes: int) -> tuple[tuple[int, int, int], ...]:
    """Distinct, reproducible colours for datasets that come without a palette.

    The bits of (index + 1) are dealt out to the high bits of R, G and B in turn (the scheme of the
    PASCAL VOC colour map), so neighbouring indices get very different colours; starting at 1
    keeps black free for "no class".
    """
    colours = []
    for index in range(num_classes):
        value, rgb = index + 1, [0, 0, 0]
        for bit in range(7, -1, -1):
            for channel in range(3):
                rgb[channel] |= ((value >> channel) & 1) << bit
            value >>= 3
        colours.append((rgb[0], rgb[1], rgb[2]))
    return tuple(colours)


def _palette_array(palette: Palette) -> np.ndarray:
    table = np.asarray(palette)
    if table.ndim != 2 or table.shape[1] != 3 or len(table) == 0 or table.min() < 0 or table.max() > 255:
        raise DataError(f"palette of shape {table.shape}: expected one (R, G, B) triple of 0-255 per class")
    return table.astype(np.uint8)


def _check_label(label: np.ndarray) -> np.ndarray:
    label = np.asarray(label)
    if label.ndim != 2 or not np.issubdtype(label.dtype, np.integer):
        raise DataError(f"label of shape {label.shape} and type {label.dtype}: expected an (H, W) integer array")
    return label


def _check_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise DataError(f"image of shape {image.shape} and type {image.dtype}: expected an RGB uint8 (H, W, 3) array")
    return image


def colorize(label: np.ndarray, palette: Palette) -> np.ndarray:
    """The colour mask (H, W, 3) uint8 of `label`: class i painted palette[i], other values black."""
    label = _check_label(label)
    table = _palette_array(palette)
    # One table lookup instead of a mask per class; the extra black row takes every other value.
    lookup = np.concatenate([table, np.zeros((1, 3), dtype=np.uint8)])
    return lookup[np.where((label >= 0) & (label < len(table)), label, len(table))]


def overlay(
    image: np.ndarray,
    label: np.ndarray,
    palette: Palette,
    alpha: float = 0.5,
    class_names: Sequence[str] | None = None,
) -> np.ndarray:
    """`image` blended with the colour mask of `label` (weight `alpha`), with a legend when
    `class_names` is given. Returns a new RGB uint8 array of the image's size."""
    image, label = _check_image(image), _check_label(label)
    if image.shape[:2] != label.shape:
        raise DataError(f"image size {image.shape[:2]} and label size {label.shape} differ; expected equal sizes")
    if not 0.0 <= alpha <= 1.0:
        raise DataError(f"alpha = {alpha}: expected a blending weight between 0 and 1")
    colours = colorize(label, palette).astype(np.float32)
    blended = image.astype(np.float32) * (1 - alpha) + colours * alpha
    known = (label >= 0) & (label < len(palette))
    result = np.where(known[..., None], np.rint(blended), image).astype(np.uint8)
    if class_names is not None:
        present = [int(v) for v in np.unique(label) if 0 <= v < min(len(palette), len(class_names))]
        draw_legend(result, [class_names[i] for i in present], [palette[i] for i in present])
    return result


def draw_legend(image: np.ndarray, names: Sequence[str], colours: Palette) -> None:
    """Draw a swatch and a name per entry in the top-left corner of `image`, in place.

    The text size follows the frame's height so a legend stays readable on full-HD video and small
    on thumbnails; entries that do not fit the frame are left out rather than shrunk further.
    """
    if not names:
        return
    height, width = image.shape[:2]
    row = int(np.clip(height // 24, 10, 28))
    scale = row / 30  # FONT_HERSHEY_SIMPLEX is about 30 px tall (ascent + descent) at scale 1
    thickness = 1 if row < 20 else 2
    pad = max(2, row // 4)
    text_width = max(cv2.getTextSize(name, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)[0][0] for name in names)
    shown = max(1, min(len(names), (height - pad) // row))
    box_w, box_h = min(width, 3 * pad + row + text_width), min(height, 2 * pad + shown * row)
    # A darkened box rather than an opaque one keeps the scene visible behind the legend.
    image[:box_h, :box_w] = (image[:box_h, :box_w] * 0.35).astype(np.uint8)
    for i, (name, colour) in enumerate(zip(names[:shown], colours[:shown])):
        top = pad + i * row
        swatch = (int(colour[0]), int(colour[1]), int(colour[2]))
        cv2.rectangle(image, (pad, top + 1), (pad + row - 3, top + row - 2), swatch, thickness=-1)
        cv2.putText(
            image,
            name,
            (2 * pad + row, top + int(row * 0.8)),
            cv2.FONT_HERSHEY_SIMPLEX,
            scale,
            (255, 255, 255),
            thickness,
            cv2.LINE_AA,
        )
