"""Augmentation: image/label alignment, shapes, label values, seeding."""

from __future__ import annotations

import albumentations as A
import cv2
import numpy as np
import pytest
import torch

from sceneseg.data import (
    CAMVID_PALETTE,
    IMAGENET_MEAN,
    IMAGENET_STD,
    SegTransform,
    train_transform,
    val_transform,
    whole_transform,
)
from sceneseg.data.transforms import PHOTOMETRIC_OPS, normalize_images
from sceneseg.errors import DataError

MEAN_RGB = np.round(np.array(IMAGENET_MEAN) * 255)
# Far enough from region edges that blur (5x5) and interpolation cannot reach the pixel.
MARGIN = 9


def pattern(height: int = 240, width: int = 320, block: int = 24) -> tuple[np.ndarray, np.ndarray]:
    """Blocks of classes 0-10 (neighbours differ) and an image painted in each class's colour."""
    rows, cols = np.mgrid[0:height, 0:width] // block
    label = ((rows * 7 + cols * 3) % 11).astype(np.uint8)
    image = np.array(CAMVID_PALETTE, dtype=np.uint8)[label]
    return image, label


def unnormalise(image: torch.Tensor) -> np.ndarray:
    """The HWC float RGB of a transform's output (uint8 CHW: the device normalises it)."""
    return image.numpy().transpose(1, 2, 0).astype(np.float64)


def interior(label: np.ndarray) -> np.ndarray:
    """Pixels whose MARGIN x MARGIN neighbourhood holds one label value only.

    Pixels near the crop's edge are left out too: the region boundary may lie just outside it.
    """
    kernel = np.ones((MARGIN, MARGIN), np.uint8)
    uniform = cv2.erode(label, kernel) == cv2.dilate(label, kernel)
    edge = MARGIN // 2
    uniform[:edge], uniform[-edge:], uniform[:, :edge], uniform[:, -edge:] = False, False, False, False
    return uniform


@pytest.mark.parametrize("seed", range(8))
def test_train_transform_keeps_image_and_label_aligned(seed):
    image, label = pattern()
    out_image, out_label = train_transform()(image, label, seed)
    assert out_image.shape == (3, 201, 201) and out_image.dtype == torch.uint8
    assert out_label.shape == (201, 201) and out_label.dtype == torch.uint8
    rgb, lab = unnormalise(out_image), out_label.numpy().astype(np.uint8)
    inside = interior(lab)
    classes = inside & (lab != 255)
    assert classes.sum() > 2000  # enough pixels compared for the test to mean something
    expected = np.array(CAMVID_PALETTE, dtype=np.float64)[lab[classes]]
    assert np.abs(rgb[classes] - expected).max() < 3
    # Padding (rotation corners, crop of a small scale) is the mean colour, labelled ignore.
    padded = inside & (lab == 255)
    if padded.any():
        assert np.abs(rgb[padded] - MEAN_RGB).max() < 3


def test_train_transform_pads_small_images_with_ignore():
    image, label = pattern(60, 80, block=10)
    _, out_label = train_transform(short_side=60, crop_size=201, scale=(1.0, 1.0))(image, label, 0)
    values = set(np.unique(out_label.numpy()).tolist())
    assert 255 in values and values <= set(range(11)) | {255}


def test_label_values_stay_in_original_set():
    rng = np.random.default_rng(0)
    label = rng.choice(np.array([0, 3, 7, 255], np.uint8), size=(240, 320))
    image = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
    for seed in range(5):
        _, out = train_transform()(image, label, seed)
        assert set(np.unique(out.numpy()).tolist()) <= {0, 3, 7, 255}


def test_same_seed_same_output_different_seed_different():
    image, label = pattern()
    transform = train_transform()
    a, b, c = (transform(image, label, seed) for seed in (5, 5, 6))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_a_read_only_label_comes_back_as_a_copy(recwarn):
    # Whole-frame evaluation returns the (cached, read-only) label untouched: its tensor must not be
    # a view that could write into the cache.
    image, label = pattern()
    label.setflags(write=False)
    _, label_t = whole_transform(short_side=None)(image, label, 0)
    assert torch.equal(label_t, torch.from_numpy(label.copy())) and not recwarn.list
    label_t[0, 0] = label_t[0, 0] + 1
    assert label[0, 0] != label_t[0, 0]


def test_children_get_independent_seeds():
    # albumentations gives every child the same seed; without our fix both flips always coincide.
    transform = SegTransform(A.Compose([A.HorizontalFlip(p=0.5), A.VerticalFlip(p=0.5)]))
    image = np.zeros((2, 2, 3), np.uint8)
    label = np.array([[0, 1], [2, 3]], np.uint8)
    corners = [transform(image, label, seed)[1][0, 0].item() for seed in range(64)]
    assert set(corners) == {0, 1, 2, 3}


def test_photometric_off_leaves_the_pipeline_as_it_was():
    # At 0 (the default) no op is added: the steps are those of the pipeline before the switch
    # existed. And the ops change nothing else: present but never firing, they leave the default
    # pipeline's output bit for bit (every other op keeps its seed).
    image, label = pattern()
    off, silent = train_transform(), train_transform(photometric=1.0)
    assert [type(t).__name__ for t in off.compose.transforms] == [
        "SmallestMaxSize", "RandomScale", "Rotate", "GaussianBlur", "HorizontalFlip", "RandomCrop"
    ]  # fmt: skip
    ops = [t for t in silent.compose.transforms if isinstance(t, PHOTOMETRIC_OPS)]
    assert len(ops) == 3
    for op in ops:
        op.p = 0.0
    for seed in range(4):
        (a_image, a_label), (b_image, b_label) = off(image, label, seed), silent(image, label, seed)
        assert torch.equal(a_image, b_image) and torch.equal(a_label, b_label)


@pytest.mark.parametrize("seed", range(4))
def test_photometric_changes_the_image_not_the_label(seed):
    image, label = pattern()
    off_image, off_label = train_transform()(image, label, seed)
    on_image, on_label = train_transform(photometric=1.0)(image, label, seed)
    assert torch.equal(on_label, off_label)
    assert (on_image.int() - off_image.int()).abs().max() > 2  # several grey levels, not rounding


def test_photometric_keeps_padding_at_the_mean():
    # Colour ops run before anything pads, so padding stays "average colour" (zero once normalised).
    image, label = pattern(60, 80, block=10)
    transform = train_transform(short_side=60, crop_size=201, scale=(1.0, 1.0), rotate=0, photometric=1.0)
    out_image, out_label = transform(image, label, 0)
    padded = interior(out_label.numpy().astype(np.uint8)) & (out_label.numpy() == 255)
    assert padded.sum() > 1000 and np.abs(unnormalise(out_image)[padded] - MEAN_RGB).max() < 1


def test_photometric_is_a_function_of_the_seed():
    # Square frame, crop = frame, no scale/rotate/blur/flip: the colour ops are the only randomness.
    image, label = pattern(240, 240)
    options = dict(crop_size=240, scale=(1.0, 1.0), rotate=0, blur=False, flip=False, photometric=1.0)
    a, b, c = (train_transform(**options)(image, label, seed) for seed in (3, 3, 4))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0]) and torch.equal(a[1], c[1])
    with pytest.raises(DataError, match=r"photometric=1.5: expected a probability in \[0, 1\]"):
        train_transform(photometric=1.5)


def test_val_transform_centre_crops():
    image, label = pattern(360, 480)
    out_image, out_label = val_transform()(image, label, 0)
    assert out_image.shape == (3, 201, 201) and out_label.shape == (201, 201)
    # 360x480 -> 240x320, so the centre crop starts at row 19, column 59.
    resized = cv2.resize(label, (320, 240), interpolation=cv2.INTER_NEAREST_EXACT)
    assert torch.equal(out_label, torch.from_numpy(resized[19:220, 59:260]))


def test_whole_transform_keeps_label_resolution():
    image, label = pattern(360, 480)
    out_image, out_label = whole_transform()(image, label, 0)
    assert out_image.shape == (3, 240, 320)
    assert torch.equal(out_label, torch.from_numpy(label))
    out_image, _ = whole_transform(None)(image, label, 0)
    assert out_image.shape == (3, 360, 480)
    assert np.abs(unnormalise(out_image) - image).max() < 1e-3


def test_normalize_images_gives_albumentations_bits_for_every_value():
    # Normalising moved from the workers to the device: every uint8 value of every channel must map
    # to the float the host pipeline's Normalize gave, or training results would drift.
    ramp = np.arange(256, dtype=np.uint8)
    image = np.stack([ramp, ramp[::-1], ramp], axis=-1)[None]  # (1, 256, 3), every value in every channel
    expected = A.Normalize(mean=IMAGENET_MEAN, std=IMAGENET_STD, max_pixel_value=255.0, p=1.0)(image=image)["image"]
    batch = torch.from_numpy(image).permute(2, 0, 1)[None].contiguous()
    got = normalize_images(batch)
    assert got.dtype == torch.float32 and got.shape == (1, 3, 1, 256)
    assert np.array_equal(got[0].permute(1, 2, 0).numpy(), expected)
    assert normalize_images(got) is got  # float batches count as normalised already


@pytest.mark.parametrize("seed", range(3))
def test_prepared_pairs_give_the_same_samples(seed):
    # The dataset cache holds frames after the pipeline's resize; the pipeline must then give what it
    # gave from the raw frame, bit for bit, with every random draw unchanged.
    image, label = pattern(360, 480)
    for transform in (train_transform(), train_transform(photometric=0.5, rare_crop_prob=0.5), val_transform()):
        small_image, small_label = transform.prepare(image, label)
        assert small_image.shape == (240, 320, 3) and small_label.shape == (240, 320)
        a_image, a_label = transform(image, label, seed)
        b_image, b_label = transform(small_image, small_label, seed)
        assert torch.equal(a_image, b_image) and torch.equal(a_label, b_label)
    whole = whole_transform()
    assert all(x is y for x, y in zip(whole.prepare(image, label), (image, label)))  # labels keep their size


def test_declared_albumentations_has_the_arguments_used_here():
    # transforms.py passes 2.x arguments (fill, fill_mask, pad_position, Compose(seed=...)) that 1.4
    # releases before 1.4.24 lack; the requirement must not admit those.
    import re
    from pathlib import Path

    pyproject = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    (minimum,) = re.findall(r'"albumentations>=([\d.]+)"', pyproject)
    assert tuple(int(part) for part in minimum.split(".")) >= (2, 0)


def test_a_compose_that_may_skip_is_refused():
    # SegTransform does not reseed the Compose's own generator, which only decides whether it runs.
    with pytest.raises(ValueError, match="p=0.5"):
        SegTransform(A.Compose([A.HorizontalFlip(p=1.0)], p=0.5))


def _scale_only(scale: float, from_source: bool) -> SegTransform:
    # No rotation, blur or flip, and a crop larger than any output, so the output is the scaled frame
    # (padded with ignore below and right of it: the crop pads centred, so trim by the label).
    return train_transform(
        scale=(scale, scale), rotate=0, blur=False, flip=False, crop_size=800, from_source=from_source
    )


def _unpadded(image: torch.Tensor, label: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    rows, cols = np.nonzero(label.numpy() != 255)
    window = slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1)
    return image.numpy().transpose(1, 2, 0)[window], label.numpy()[window]


@pytest.mark.parametrize(("height", "width", "scale"), [(360, 480, 1.25), (300, 500, 2.0), (240, 320, 0.5)])
def test_scale_from_source_sets_the_short_side_in_one_resize(height, width, scale):
    image, label = pattern(height, width, block=48)
    out_image, out_label = _unpadded(*_scale_only(scale, from_source=True)(image, label, seed=0))
    assert min(out_label.shape) == round(240 * scale)
    assert abs(out_label.shape[1] / out_label.shape[0] - width / height) < 0.01
    # Same size as the two-step pipeline gives; the labels agree away from class edges.
    two_image, two_label = _unpadded(*_scale_only(scale, from_source=False)(image, label, seed=0))
    assert two_label.shape == out_label.shape
    inside = interior(out_label) & interior(two_label)
    assert inside.sum() > 0.3 * inside.size and np.array_equal(out_label[inside], two_label[inside])


def test_scale_from_source_keeps_the_source_detail():
    # A 360x480 frame of 1-pixel stripes at factor 1.5 (short side 360): in one resize the frame comes
    # out as it went in; resized to 240 first and blown up again, the stripes are gone.
    image = np.zeros((360, 480, 3), np.uint8)
    image[:, ::2] = 255
    label = np.zeros((360, 480), np.uint8)
    label[:, ::2] = 1
    one_image, one_label = _unpadded(*_scale_only(1.5, from_source=True)(image, label, seed=0))
    assert np.array_equal(one_image, image) and np.array_equal(one_label, label)
    two_image, _ = _unpadded(*_scale_only(1.5, from_source=False)(image, label, seed=0))
    assert np.abs(two_image.astype(int) - image).mean() > 60


def test_scale_from_source_is_a_function_of_the_seed():
    image, label = pattern(360, 480)
    transform = train_transform(scale=(1.0, 2.0), from_source=True, photometric=0.5, rare_crop_prob=0.5)
    transform.set_rare_classes((4, 8))
    a, b, c = (transform(image, label, seed) for seed in (5, 5, 6))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])
    # Nothing for a cache to resize ahead: the first step draws the scale from the frame's own size.
    assert all(x is y for x, y in zip(transform.prepare(image, label), (image, label)))
