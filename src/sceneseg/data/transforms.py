"""Image + label augmentation for training and evaluation (albumentations 2.x).

The pipelines reproduce the CS 6476 semantic segmentation project (itself following the PSPNet
reference code): resize the short side, random scale, small rotation, blur, flip, random crop, then
ImageNet normalisation, which `normalize_images` does on the model's device (the pipelines end in
uint8). Three rules hold everywhere:

* labels are only ever moved with nearest-neighbour sampling, so no new class values appear;
* anything padded in is the ImageNet mean in the image and 255 (ignore) in the label, so padding
  looks like "average colour" to the network and costs nothing in the loss;
* every call takes an explicit seed, so a sample's augmentation depends only on that seed and not
  on which DataLoader worker happens to process it.
"""

from __future__ import annotations

import functools
import os

# albumentations asks PyPI for a newer version on import; on offline training machines that is a
# stall and a warning per worker process, and it tells us nothing we need.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import albumentations as A  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from sceneseg.data.crops import ClassAwareCrop  # noqa: E402
from sceneseg.data.resize import LABEL_INTERPOLATION  # noqa: E402
from sceneseg.errors import DataError  # noqa: E402
from sceneseg.labels import IGNORE_INDEX  # noqa: E402

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

# Padding colour for uint8 RGB images (before normalisation), i.e. the mean in 0-255 units.
_MEAN_RGB_U8 = tuple(int(round(m * 255)) for m in IMAGENET_MEAN)

# Labels resize as data/resize.py says; warpAffine (rotation) only knows INTER_NEAREST, which is
# centre-aligned there.
_RESIZE_MASK = LABEL_INTERPOLATION

# The photometric ops (see _photometric), told apart from the others by type when SegTransform seeds them.
PHOTOMETRIC_OPS = (A.RandomBrightnessContrast, A.RandomGamma, A.HueSaturationValue)


class SegTransform:
    """A seeded (image, label) -> (CHW uint8 tensor, HW uint8 tensor) transform.

    Images stay uint8 until they reach the model's device, where `normalize_images` turns them into
    floats: a quarter of the bytes through the workers' queues and the host-to-GPU copy.
    `resize_label=False` sends only the image through the pipeline and returns the label untouched
    (used for whole-image evaluation, where metrics are computed at the label's full resolution).
    """

    def __init__(self, compose: A.Compose, resize_label: bool = True) -> None:
        if compose.p != 1:
            raise ValueError(f"SegTransform needs a Compose that always runs (p=1), got p={compose.p}")
        self.compose = compose
        self.resize_label = resize_label
        # Photometric ops take the seeds after all the others (sorted is stable), so switching them on
        # leaves every other op's draws, and with them the label, exactly as they were.
        self._seeded = sorted(compose.transforms, key=lambda transform: isinstance(transform, PHOTOMETRIC_OPS))

    def __call__(self, image: np.ndarray, label: np.ndarray, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        if image.shape[:2] != label.shape[:2]:
            raise DataError(
                f"image size {image.shape[:2]} and label size {label.shape[:2]} differ; expected equal sizes"
            )
        self._seed(seed)
        if self.resize_label:
            out = self.compose(image=image, mask=label)
            image_out, label_out = out["image"], out["mask"]
        else:
            image_out, label_out = self.compose(image=image)["image"], label
        image_t = torch.from_numpy(np.ascontiguousarray(image_out.transpose(2, 0, 1)))
        # The whole-frame label is the dataset's cached array, kept read-only; the tensor gets its own copy,
        # so nothing downstream can write into the cache (and torch warns about no shared read-only memory).
        return image_t, torch.from_numpy(np.require(label_out, requirements=("C", "W")))

    def prepare(self, image: np.ndarray, label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The pair after the pipeline's deterministic first step, the short-side resize, for a cache
        to hold: the step then finds the frame at its size already and leaves it as it is (the same
        pixels, and every random draw unchanged). Pairs of pipelines without that step come back as given."""
        first = self.compose.transforms[0] if self.compose.transforms else None
        if not self.resize_label or not isinstance(first, A.SmallestMaxSize):
            return image, label
        out = first(image=image, mask=label)
        return out["image"], out["mask"]

    def set_rare_classes(self, classes: tuple[int, ...]) -> None:
        """The classes a ClassAwareCrop of this pipeline, if any, centres on (counted from the train split)."""
        for transform in self.compose.transforms:
            if isinstance(transform, ClassAwareCrop):
                transform.rare_classes = tuple(classes)

    def _seed(self, seed: int) -> None:
        # Compose.set_random_seed hands the SAME seed to every child, so all children draw the same
        # first random number: with p=0.5 each, rotation, blur and flip would always fire together.
        # Give every child its own seed derived from (seed, position) instead. The Compose's own
        # generator only decides whether the Compose runs, which at p=1 it always does, so it is not
        # reseeded (a whole CamVid training run did not get measurably faster for it; see README, Speed).
        children = np.random.SeedSequence(seed % 2**64).spawn(len(self._seeded))
        for transform, child in zip(self._seeded, children):
            transform.set_random_seed(int(child.generate_state(1)[0]))

    def __repr__(self) -> str:
        names = ", ".join(type(t).__name__ for t in self.compose.transforms)
        return f"SegTransform([{names}], resize_label={self.resize_label})"


def _compose(transforms: list[A.BasicTransform]) -> A.Compose:
    # seed=0 only fixes the state until the first call; SegTransform reseeds on every call.
    return A.Compose(transforms, seed=0)


def _resize_short(short_side: int) -> A.SmallestMaxSize:
    return A.SmallestMaxSize(
        max_size=short_side, interpolation=cv2.INTER_LINEAR, mask_interpolation=_RESIZE_MASK, p=1.0
    )


def _normalize() -> A.Normalize:
    return A.Normalize(mean=IMAGENET_MEAN, std=IMAGENET_STD, max_pixel_value=255.0, p=1.0)


@functools.cache
def _normalize_table(device: torch.device) -> torch.Tensor:
    """(3, 256) float32 on `device`: what albumentations' ImageNet Normalize makes of each uint8 value
    per channel, taken from the op itself, so that normalising on the device gives the host pipeline's
    bits. Kept per device: copying it for every batch would make the host wait for the GPU."""
    ramp = np.repeat(np.arange(256, dtype=np.uint8)[None, :, None], 3, axis=2)
    table = np.ascontiguousarray(_normalize()(image=ramp)["image"][0].T, dtype=np.float32)
    return torch.from_numpy(table).to(device)


def normalize_images(images: torch.Tensor) -> torch.Tensor:
    """uint8 RGB batches (N, 3, H, W) -> the ImageNet-normalised float32 batch the models take, on the
    batch's own device (one table lookup per channel). Float batches are taken as normalised already."""
    if images.dtype != torch.uint8:
        return images
    table = _normalize_table(images.device)
    return torch.stack([table[c][images[:, c].int()] for c in range(images.shape[1])], dim=1)


def _photometric(p: float) -> list[A.BasicTransform]:
    """Colour jitter, each op with probability `p`, on the image only: moderate shifts meant for
    lighting the train split lacks (CamVid's test split has dusk and other streets)."""
    if not 0 <= p <= 1:
        raise DataError(f"photometric={p}: expected a probability in [0, 1]")
    if p == 0:
        return []  # left out, not merely never applied, so the pipeline is exactly the one without them
    return [
        A.RandomBrightnessContrast(brightness_limit=0.25, contrast_limit=0.25, p=p),
        A.RandomGamma(gamma_limit=(80, 125), p=p),
        # OpenCV's uint8 hue spans 0-179, so 10 is 20 degrees; value is left to the brightness op.
        A.HueSaturationValue(hue_shift_limit=10, sat_shift_limit=25, val_shift_limit=0, p=p),
    ]


def train_transform(
    short_side: int = 240,
    crop_size: int = 201,
    scale: tuple[float, float] = (0.5, 2.0),
    rotate: float = 10.0,
    blur: bool = True,
    flip: bool = True,
    rare_crop_prob: float = 0.0,
    max_class_share: float = 1.0,
    photometric: float = 0.0,
    from_source: bool = False,
) -> SegTransform:
    """Training augmentation: short-side resize, colour jitter (each op with probability
    `photometric`, none at 0), random scale/rotate/blur/flip, random crop (with probability
    `rare_crop_prob` centred on a rare class instead, and redrawn while one class covers more than
    `max_class_share` of it: see ClassAwareCrop). `from_source` makes the resize and the random
    scale one resize of the frame as given (ShortSideScale)."""
    if not 0 < scale[0] <= scale[1]:
        raise DataError(f"scale={scale}: expected a range (low, high) with 0 < low <= high")
    # RandomScale draws 1 + uniform(limit), so shift the factor range down by one.
    scaling = dict(
        scale_limit=(scale[0] - 1.0, scale[1] - 1.0), interpolation=cv2.INTER_LINEAR, mask_interpolation=_RESIZE_MASK
    )
    # Jitter before scaling (in two steps: on the short-side frame, fewer pixels than the average scaled
    # one) and before anything pads, so padding stays the mean colour.
    steps: list[A.BasicTransform] = (
        [*_photometric(photometric), ShortSideScale(short_side, **scaling)]
        if from_source
        else [_resize_short(short_side), *_photometric(photometric), A.RandomScale(**scaling, p=1.0)]
    )
    if rotate > 0:
        steps.append(
            A.Rotate(
                limit=(-rotate, rotate),
                interpolation=cv2.INTER_LINEAR,
                mask_interpolation=cv2.INTER_NEAREST,
                border_mode=cv2.BORDER_CONSTANT,
                fill=_MEAN_RGB_U8,
                fill_mask=IGNORE_INDEX,
                p=0.5,
            )
        )
    if blur:
        # The reference blurs with a 5x5 kernel and cv2's automatic sigma (1.1 for that size).
        # Spell the sigma out: albumentations 2.0.8 does not derive it, sigma 0 gives a NaN kernel.
        steps.append(A.GaussianBlur(blur_limit=(5, 5), sigma_limit=(1.1, 1.1), p=0.5))
    if flip:
        steps.append(A.HorizontalFlip(p=0.5))
    # 0 keeps albumentations' own RandomCrop: the same draws, so the same crops, as before rare crops existed.
    if rare_crop_prob > 0 or max_class_share < 1:
        crop = ClassAwareCrop(height=crop_size, width=crop_size, **_crop_padding())
        crop.rare_prob, crop.max_class_share = rare_crop_prob, max_class_share
    else:
        crop = A.RandomCrop(height=crop_size, width=crop_size, **_crop_padding())
    steps.append(crop)
    return SegTransform(_compose(steps))


class ShortSideScale(A.RandomScale):
    """RandomScale that brings the frame's short side to `short_side` times the drawn factor in one
    resize of the frame as given. The study's two steps (resize to `short_side`, then scale) first
    throw away the source's detail and then blow the small copy up again, so a crop at factor 1.5
    of a 360-pixel CamVid frame is blurrier than the same frame evaluated at scale 1.5, where the
    evaluation resizes the source once; in one step the crop keeps what the source has."""

    def __init__(self, short_side: int, **scaling) -> None:
        super().__init__(**scaling, p=1.0)
        self.short_side = short_side

    def get_params_dependent_on_data(self, params: dict, data: dict) -> dict:
        height, width = params["shape"][:2]
        return {"scale": params["scale"] * self.short_side / min(height, width)}


def _crop_padding() -> dict:
    # Frames smaller than the crop are padded: image with the mean (zero after normalising),
    # label with ignore, so padding never counts as a class.
    return dict(
        pad_if_needed=True,
        pad_position="center",
        border_mode=cv2.BORDER_CONSTANT,
        fill=_MEAN_RGB_U8,
        fill_mask=IGNORE_INDEX,
        p=1.0,
    )


def val_transform(short_side: int = 240, crop_size: int = 201) -> SegTransform:
    """Validation during training: short-side resize, centre crop (padded if needed), normalise."""
    steps: list[A.BasicTransform] = [
        _resize_short(short_side),
        A.CenterCrop(height=crop_size, width=crop_size, **_crop_padding()),
    ]
    return SegTransform(_compose(steps))


def whole_transform(short_side: int | None = 240) -> SegTransform:
    """Evaluation on whole frames: resize only the image; the label keeps its full resolution.

    The evaluator upsamples the logits to the label's size, so metrics are measured on the original
    annotation rather than on a downsampled (and thereby altered) copy of it.
    """
    steps: list[A.BasicTransform] = [] if short_side is None else [_resize_short(short_side)]
    return SegTransform(_compose(steps), resize_label=False)
