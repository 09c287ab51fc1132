"""One pass over the data: `train_one_epoch` and `evaluate`.

Both take plain objects (model, loader, optimizer...) and return plain numbers and a confusion matrix;
what to do with them (history, checkpoints, printing) is the caller's business.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Callable, Iterable

import torch
import torch.nn.functional as F
from tqdm import tqdm

from .errors import SceneSegError
from .metrics import ConfusionMatrix

IGNORE_INDEX = 255


class NonFiniteLossError(SceneSegError):
    """The loss became NaN or infinite; the run stops with the last good checkpoint kept."""


@dataclass
class Precision:
    """How tensors are laid out and computed: bf16 autocast and channels_last are switches."""

    device: torch.device
    bf16: bool = False
    channels_last: bool = False

    def autocast(self) -> contextlib.AbstractContextManager:
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    def images(self, images: torch.Tensor) -> torch.Tensor:
        images = images.to(self.device, non_blocking=True)
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return images


def bf16_supported(device: torch.device) -> bool:
    """bf16 autocast pays off on GPUs with bf16 units and on CPUs with AVX-512 bf16 or AMX."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        with open("/proc/cpuinfo") as handle:
            flags = handle.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def segmentation_loss(outputs: dict[str, torch.Tensor], target: torch.Tensor, aux_weight: float = 0.4) -> torch.Tensor:
    """Cross-entropy on the main logits, plus `aux_weight` times that of the auxiliary head if present."""
    loss = F.cross_entropy(outputs["out"].float(), target, ignore_index=IGNORE_INDEX)
    if "aux" in outputs:
        loss = loss + aux_weight * F.cross_entropy(outputs["aux"].float(), target, ignore_index=IGNORE_INDEX)
    return loss


def train_one_epoch(
    model: torch.nn.Module,
    loader: Iterable,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    precision: Precision,
    num_classes: int,
    epoch: int,
    loss_fn: Callable[[dict, torch.Tensor], torch.Tensor] = segmentation_loss,
    show_progress: bool = True,
    should_stop: Callable[[], bool] = lambda: False,
) -> tuple[float, ConfusionMatrix]:
    """Train for one epoch, stepping the scheduler every iteration.

    Returns the mean training loss and the confusion matrix of the training predictions (the
    "train mIoU" of the study is measured on the augmented training batches, as here).
    """
    model.train()
    confusion = ConfusionMatrix(num_classes, IGNORE_INDEX)
    total_loss, total_images = 0.0, 0
    bar = tqdm(loader, desc=f"epoch {epoch} train", leave=False, disable=not show_progress, dynamic_ncols=True)
    for iteration, (images, target) in enumerate(bar):
        images, target = precision.images(images), target.to(precision.device, non_blocking=True)
        with precision.autocast():
            outputs = model(images)
        loss = loss_fn(outputs, target)
        if not math.isfinite(loss.item()):
            raise NonFiniteLossError(
                f"loss became {loss.item()} at epoch {epoch}, iteration {iteration}: "
                "lower train.lr or check the data; the last good checkpoint is kept"
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        confusion.update(outputs["out"].detach().argmax(1), target)
        total_loss += loss.item() * images.shape[0]
        total_images += images.shape[0]
        bar.set_postfix(loss=f"{total_loss / total_images:.3f}", lr=f"{scheduler.get_last_lr()[0]:.2e}")
        if should_stop():
            break
    confusion.all_reduce()
    return total_loss / max(total_images, 1), confusion


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    loader: Iterable,
    precision: Precision,
    num_classes: int,
    show_progress: bool = True,
    desc: str = "eval",
) -> tuple[float, ConfusionMatrix]:
    """Mean loss and confusion matrix over `loader`.

    Logits are resized to the label's size when they differ, so whole-image evaluation scores the
    labels at their original resolution however the image was resized for the network.
    """
    model.eval()
    confusion = ConfusionMatrix(num_classes, IGNORE_INDEX)
    total_loss, total_images = 0.0, 0
    for images, target in tqdm(loader, desc=desc, leave=False, disable=not show_progress, dynamic_ncols=True):
        images, target = precision.images(images), target.to(precision.device)
        with precision.autocast():
            logits = model(images)["out"]
        logits = logits.float()
        if logits.shape[-2:] != target.shape[-2:]:
            logits = F.interpolate(logits, size=target.shape[-2:], mode="bilinear", align_corners=False)
        total_loss += F.cross_entropy(logits, target, ignore_index=IGNORE_INDEX).item() * images.shape[0]
        total_images += images.shape[0]
        confusion.update(logits.argmax(1), target)
    confusion.all_reduce()
    return total_loss / max(total_images, 1), confusion
