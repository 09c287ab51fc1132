"""colorize and overlay: colours per class, blending, the legend, clear errors."""

from __future__ import annotations

import numpy as np
import pytest

import sceneseg
from sceneseg.errors import DataError
from sceneseg.visualize import generated_palette

PALETTE = ((255, 0, 0), (0, 255, 0), (0, 0, 255))


def scene() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    label = np.zeros((120, 160), dtype=np.uint8)
    label[:, 60:] = 1
    label[80:, :] = 2
    label[:5, :5] = 255  # ignore
    return image, label


def test_colorize_paints_classes_and_leaves_other_values_black() -> None:
    label = np.array([[0, 1, 2], [255, 3, -1]])
    mask = sceneseg.colorize(label, PALETTE)
    assert mask.shape == (2, 3, 3) and mask.dtype == np.uint8
    assert mask[0].tolist() == [list(c) for c in PALETTE]
    assert not mask[1].any()


def test_overlay_blends_known_classes_only() -> None:
    image, label = scene()
    assert np.array_equal(sceneseg.overlay(image, label, PALETTE, alpha=0.0), image)
    full = sceneseg.overlay(image, label, PALETTE, alpha=1.0)
    assert (full[10:80, :60] == PALETTE[0]).all() and (full[80:] == PALETTE[2]).all()
    assert np.array_equal(full[:5, :5], image[:5, :5])  # ignored pixels show the frame
    half = sceneseg.overlay(image, label, PALETTE)
    expected = np.rint(image[100, 100] * 0.5 + np.array(PALETTE[2]) * 0.5)
    assert half.shape == image.shape and half[100, 100].tolist() == expected.tolist()


def test_legend_is_drawn_top_left_when_names_are_given() -> None:
    image, label = scene()
    plain = sceneseg.overlay(image, label, PALETTE)
    legend = sceneseg.overlay(image, label, PALETTE, class_names=["road", "car", "sky"])
    changed = np.argwhere((plain != legend).any(-1))
    assert len(changed) > 0 and legend.shape == image.shape
    # Three entries of 10-pixel rows: the legend stays in the corner, the rest of the frame is untouched.
    assert changed[:, 0].max() < image.shape[0] // 2 and changed[:, 1].max() < image.shape[1] // 2
    # Only the classes present are listed: a frame of one class gets a one-row legend.
    single = sceneseg.overlay(image, np.zeros_like(label), PALETTE, class_names=["road", "car", "sky"])
    rows = np.argwhere((single != sceneseg.overlay(image, np.zeros_like(label), PALETTE)).any(-1))[:, 0]
    assert rows.max() < changed[:, 0].max()


def test_legend_fits_tiny_frames() -> None:
    image = np.zeros((20, 24, 3), dtype=np.uint8)
    label = np.arange(20 * 24).reshape(20, 24) % 3
    out = sceneseg.overlay(image, label, PALETTE, class_names=["a very long class name", "b", "c"])
    assert out.shape == image.shape


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: sceneseg.colorize(np.zeros((2, 2, 1), int), PALETTE), "expected an \\(H, W\\) integer array"),
        (lambda: sceneseg.colorize(np.zeros((2, 2), int), [(1, 2)]), "one \\(R, G, B\\) triple"),
        (lambda: sceneseg.overlay(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 5), int), PALETTE), "differ"),
        (lambda: sceneseg.overlay(np.zeros((4, 4, 3), np.float32), np.zeros((4, 4), int), PALETTE), "RGB uint8"),
        (lambda: sceneseg.overlay(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4), int), PALETTE, alpha=2), "alpha"),
    ],
)
def test_bad_input_is_a_clear_error(call, message: str) -> None:
    with pytest.raises(DataError, match=message):
        call()


def test_generated_palette_is_distinct_and_never_black() -> None:
    palette = generated_palette(200)
    assert len(set(palette)) == 200 and (0, 0, 0) not in palette
    assert generated_palette(3) == palette[:3]
