"""Turning whole frames into class probabilities: whole-image or sliding-window, flip, multi-scale.

The sliding window follows the CS 6476 / PSPNet reference protocol: the frame is resized so its
short side is `short_side * scale`, padded up to the crop size if smaller, covered by crops with a
stride of `stride_rate * crop_size`, and the softmax of overlapping crops is averaged. Flip
averaging adds the mirrored prediction of every crop; multi-scale sums the probabilities of every
scale after resizing them to the label's size.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .config import EvalConfig
from .data.transforms import normalize_images
from .errors import ConfigError
from .inference_options import check_inference_options


def resolve_device(name: str | torch.device) -> torch.device:
    """The config's or the command line's device: "auto" is the GPU where CUDA is available."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@dataclass
class Precision:
    """How tensors are laid out and computed: bf16 autocast and channels_last are switches."""

    device: torch.device
    bf16: bool = False
    channels_last: bool = False

    def describe(self) -> str:
        """E.g. "bf16 autocast, channels_last": how a run's numbers were computed, for its records."""
        return ("bf16 autocast" if self.bf16 else "fp32") + (", channels_last" if self.channels_last else "")

    def targets(self, target: torch.Tensor) -> torch.Tensor:
        """Label maps (uint8 from the datasets, a quarter of the bytes) as the losses take them."""
        return target.to(self.device, non_blocking=True).long()

    def autocast(self) -> contextlib.AbstractContextManager:
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    def images(self, images: torch.Tensor) -> torch.Tensor:
        """A batch as the model takes it: on the device, normalised there if it came as uint8."""
        images = normalize_images(images.to(self.device, non_blocking=True))
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return images


def bf16_supported(device: torch.device) -> bool:
    """bf16 autocast pays off on GPUs with bf16 units and on CPUs with AVX-512 bf16 or AMX."""
    if device.type == "cuda":  # emulated bf16 (pre-Ampere GPUs) is slower than fp32
        return torch.cuda.is_bf16_supported(including_emulation=False)
    try:
        with open("/proc/cpuinfo") as handle:
            flags = handle.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def enable_gpu_speedups(device: torch.device, fixed_input_size: bool) -> None:
    """On a GPU: TF32 for fp32 matrix products and convolutions (Ampere and later; about 1e-3
    relative error, which training does not notice), and with `fixed_input_size` (training crops)
    cuDNN's autotuner, which times the candidate kernels once per input shape. A CPU is left as it is."""
    if device.type != "cuda":
        return
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = fixed_input_size


@dataclass(frozen=True)
class InferenceSettings:
    """How `predict_probs` turns frames into probabilities; the defaults are EvalConfig's."""

    mode: str = EvalConfig.mode  # "whole" frame at once, or "slide" a window of crop_size over it
    short_side: int | None = EvalConfig.short_side  # None: the frame's own size
    crop_size: int = EvalConfig.crop_size
    stride_rate: float = EvalConfig.stride_rate
    flip: bool = EvalConfig.flip
    scales: tuple[float, ...] = EvalConfig.scales
    class_bias: tuple[float, ...] = EvalConfig.class_bias  # log-space, one per class (empty: none)

    @classmethod
    def from_eval(cls, evaluation: EvalConfig) -> InferenceSettings:
        """The settings of a config's eval section. Its "crop" mode scores the centre crops of the
        per-epoch protocol; a prediction wants the whole frame instead."""
        return cls(
            mode="slide" if evaluation.mode == "slide" else "whole",
            short_side=evaluation.short_side,
            crop_size=evaluation.crop_size,
            stride_rate=evaluation.stride_rate,
            flip=evaluation.flip,
            scales=tuple(evaluation.scales),
            class_bias=tuple(evaluation.class_bias),
        ).check()

    def check(self) -> InferenceSettings:
        """These settings, once checked (a ConfigError names the first bad value)."""
        check_inference_options(self, "inference setting ")
        return self


def _softmax(model: torch.nn.Module, images: torch.Tensor, precision: Precision, flip: bool) -> torch.Tensor:
    with precision.autocast():
        logits = model(precision.images(images))["out"]
    probs = logits.float().softmax(1)
    if flip:
        with precision.autocast():
            mirrored = model(precision.images(images.flip(-1)))["out"]
        probs = (probs + mirrored.float().softmax(1).flip(-1)) / 2
    if probs.shape[-2:] != images.shape[-2:]:  # models with a zoom factor below the stride
        probs = F.interpolate(probs, size=images.shape[-2:], mode="bilinear", align_corners=False)
    return probs


def _slide(
    model: torch.nn.Module, images: torch.Tensor, settings: InferenceSettings, precision: Precision, num_classes: int
) -> torch.Tensor:
    crop = settings.crop_size
    n, _, height, width = images.shape
    # Pad with zeros, the normalised mean, like the training crops, then crop the padding away.
    pad_h, pad_w = max(crop - height, 0), max(crop - width, 0)
    top, left = pad_h // 2, pad_w // 2
    padded = F.pad(images, (left, pad_w - left, top, pad_h - top))
    ph, pw = padded.shape[-2:]
    stride = max(1, math.ceil(crop * settings.stride_rate))
    rows = math.ceil(max(ph - crop, 0) / stride) + 1
    cols = math.ceil(max(pw - crop, 0) / stride) + 1
    total = torch.zeros(n, num_classes, ph, pw, device=images.device)
    count = torch.zeros(1, 1, ph, pw, device=images.device)
    for r in range(rows):
        for c in range(cols):
            y = min(r * stride, ph - crop) if ph >= crop else 0
            x = min(c * stride, pw - crop) if pw >= crop else 0
            window = padded[..., y : y + crop, x : x + crop]
            total[..., y : y + crop, x : x + crop] += _softmax(model, window, precision, settings.flip).to(total.device)
            count[..., y : y + crop, x : x + crop] += 1
    return (total / count)[..., top : top + height, left : left + width]


@torch.no_grad()
def predict_probs(
    model: torch.nn.Module,
    images: torch.Tensor,
    settings: InferenceSettings,
    precision: Precision,
    num_classes: int,
    out_size: tuple[int, int],
) -> torch.Tensor:
    """Class probabilities (N, num_classes, *out_size) of full frames `images` (uint8 or normalised)."""
    images = normalize_images(images.to(precision.device))
    height, width = images.shape[-2:]
    result = torch.zeros(images.shape[0], num_classes, *out_size, device=precision.device)
    for scale in settings.scales:
        if settings.short_side is None:
            factor = scale
        else:
            factor = settings.short_side * scale / min(height, width)
        size = (max(1, round(height * factor)), max(1, round(width * factor)))
        scaled = (
            images
            if size == (height, width)
            else F.interpolate(images, size=size, mode="bilinear", align_corners=False)
        )
        if settings.mode == "slide":
            probs = _slide(model, scaled, settings, precision, num_classes)
        else:
            probs = _softmax(model, scaled, precision, settings.flip)
        result += F.interpolate(probs, size=out_size, mode="bilinear", align_corners=False)
    return _with_bias(result / len(settings.scales), settings.class_bias)


def _with_bias(probs: torch.Tensor, bias: tuple[float, ...]) -> torch.Tensor:
    """`probs` with `bias` added to their logarithms, renormalised: the probabilities a model with
    those logit offsets would give, so that arg-max, confidence and mIoU all see the same change."""
    if not bias:
        return probs
    if len(bias) != probs.shape[1]:
        raise ConfigError(f"class_bias = {list(bias)}: expected one value per class ({probs.shape[1]} classes)")
    scaled = probs * torch.tensor(bias, dtype=probs.dtype, device=probs.device).exp().view(1, -1, 1, 1)
    return scaled / scaled.sum(1, keepdim=True)
