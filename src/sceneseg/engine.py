"""One pass over the data: `train_one_epoch` and `evaluate`.

Both take plain objects (model, loader, optimizer...) and return plain numbers and a confusion matrix;
what to do with them (history, checkpoints, printing) is the caller's business.
"""

from __future__ import annotations

import math
from typing import Callable, Iterable

import torch
import torch.nn.functional as F
from tqdm import tqdm

from .errors import SceneSegError
from .inference import InferenceSettings, Precision, predict_probs
from .metrics import ConfusionMatrix

IGNORE_INDEX = 255


class NonFiniteLossError(SceneSegError):
    """The loss became NaN or infinite; the run stops with the last good checkpoint kept."""


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
    settings: InferenceSettings | None = None,
    show_progress: bool = True,
    desc: str = "eval",
) -> tuple[float, ConfusionMatrix]:
    """Mean loss and confusion matrix over `loader`.

    Without `settings`, batches are scored as they come (the per-epoch crop protocol). With them,
    batches are whole frames at full resolution, turned into probabilities by `predict_probs`
    (whole or sliding window, flip, scales) at the label's size, so the labels are scored at their
    original resolution however the network saw the frame. The loss is the mean negative log of
    the (averaged) probability of the true class.
    """
    model.eval()
    confusion = ConfusionMatrix(num_classes, IGNORE_INDEX)
    total_loss, total_images = 0.0, 0
    for images, target in tqdm(loader, desc=desc, leave=False, disable=not show_progress, dynamic_ncols=True):
        target = target.to(precision.device)
        if settings is None:
            with precision.autocast():
                probs = model(precision.images(images))["out"].float().softmax(1)
        else:
            probs = predict_probs(model, images, settings, precision, num_classes, tuple(target.shape[-2:]))
        log_probs = probs.clamp_min(1e-12).log()
        total_loss += F.nll_loss(log_probs, target, ignore_index=IGNORE_INDEX).item() * images.shape[0]
        total_images += images.shape[0]
        confusion.update(probs.argmax(1), target)
    confusion.all_reduce()
    return total_loss / max(total_images, 1), confusion
