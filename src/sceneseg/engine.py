"""One pass over the data: `train_one_epoch` and `evaluate`.

Both take plain objects (model, loader, optimizer...) and return plain numbers and a confusion matrix;
what to do with them (history, checkpoints, printing) is the caller's business.

Under DistributedDataParallel each process sees its share of every batch. Losses are normalised by
the labelled pixels of the whole global batch (not each share), and the metrics come from one
confusion matrix summed over the processes, so N processes compute what one process would on the
same global batches.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from tqdm import tqdm

from .distributed import Distributed
from .errors import SceneSegError
from .inference import InferenceSettings, Precision, predict_probs
from .labels import IGNORE_INDEX
from .losses import segmentation_loss
from .metrics import ConfusionMatrix

SINGLE = Distributed()  # a single process: every reduction is the identity


class NonFiniteLossError(SceneSegError):
    """The loss became NaN or infinite; the run stops with the last good checkpoint kept."""


@dataclass
class EpochProgress:
    """How far an epoch's training got: what its history record needs, and what continuing it needs."""

    num_classes: int
    iteration: int = 0  # iterations completed
    loss_sum: float = 0.0  # sum over iterations of the global batch's loss times its frames
    images: int = 0
    confusion: ConfusionMatrix = field(init=False)
    stopped: bool = False  # a stop was requested; the loop ended after `iteration`

    def __post_init__(self) -> None:
        self.confusion = ConfusionMatrix(self.num_classes, IGNORE_INDEX)

    @property
    def loss(self) -> float:
        return self.loss_sum / max(self.images, 1)

    def to_dict(self) -> dict[str, Any]:
        """For a checkpoint: numbers and a tensor only (weights_only loading)."""
        return {
            "iteration": self.iteration,
            "loss_sum": self.loss_sum,
            "images": self.images,
            "confusion": self.confusion.matrix.clone(),
        }

    @classmethod
    def from_dict(cls, saved: dict[str, Any], num_classes: int, dist: Distributed = SINGLE) -> EpochProgress:
        progress = cls(num_classes, saved["iteration"], saved["loss_sum"], saved["images"])
        # The saved matrix is already the sum over ranks; one rank holding it keeps the next sum right.
        if dist.is_main:
            progress.confusion.matrix = saved["confusion"].to(torch.int64).clone()
        return progress


def train_one_epoch(
    model: torch.nn.Module,
    loader: Iterable,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    precision: Precision,
    num_classes: int,
    epoch: int,
    loss_fn: Callable[..., torch.Tensor] = segmentation_loss,
    show_progress: bool = True,
    should_stop: Callable[[], bool] = lambda: False,
    progress: EpochProgress | None = None,
    dist: Distributed = SINGLE,
    before_iteration: Callable[[int], None] = lambda iteration: None,
) -> EpochProgress:
    """Train over `loader`, stepping the scheduler every iteration; returns the epoch's progress.

    `progress` continues an epoch stopped part-way (the loader then yields only the batches after
    `progress.iteration`). `should_stop` is polled every iteration; once it is true on any rank,
    every rank finishes that iteration and returns with `stopped` set. The confusion matrix is of
    the training predictions (the study's "train mIoU" is measured on the augmented batches).
    """
    model.train()
    progress = progress or EpochProgress(num_classes)
    total = progress.iteration + len(loader) if hasattr(loader, "__len__") else None
    bar = tqdm(
        loader,
        desc=f"epoch {epoch} train",
        leave=False,
        disable=not show_progress,
        dynamic_ncols=True,
        initial=progress.iteration,
        total=total,
    )
    for images, target in bar:
        before_iteration(progress.iteration)
        images, target = precision.images(images), precision.targets(target)
        with precision.autocast():
            outputs = model(images)
        summed = loss_fn(outputs, target, reduction="sum")
        loss_total, labelled, frames, stop = _agree(summed, target, images.shape[0], should_stop(), dist)
        batch_loss = loss_total / max(labelled, 1.0)
        _check_finite(batch_loss, epoch, progress.iteration + 1, total)
        # DDP averages gradients over the ranks; scaling by world_size makes that average the
        # gradient of the global batch's mean loss.
        _update(summed * (dist.world_size / max(labelled, 1.0)), optimizer, scheduler)
        progress.confusion.update(outputs["out"].detach().argmax(1), target)
        progress.iteration += 1
        progress.loss_sum += batch_loss * frames
        progress.images += int(frames)
        bar.set_postfix(loss=f"{progress.loss:.3f}", lr=f"{scheduler.get_last_lr()[0]:.2e}")
        if stop:
            progress.stopped = True
            break
    progress.confusion.all_reduce(dist)
    return progress


def _check_finite(batch_loss: float, epoch: int, iteration: int, total: int | None) -> None:
    """Stop at the first non-finite loss, before it reaches the weights."""
    if not math.isfinite(batch_loss):
        where = f"epoch {epoch}, iteration {iteration}" + (f" of {total}" if total else "")
        raise NonFiniteLossError(
            f"loss became {batch_loss} at {where}: lower train.lr or check the data; the last good checkpoint is kept"
        )


def _update(loss: torch.Tensor, optimizer: torch.optim.Optimizer, scheduler: Any) -> None:
    """One optimisation step on `loss`, and one scheduler step (the schedule is per iteration)."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    scheduler.step()


def _agree(summed: torch.Tensor, target: torch.Tensor, frames: int, stop: bool, dist: Distributed) -> list[float]:
    """(loss sum, labelled pixels, frames, stop requests) summed over the ranks.

    One all-reduce carries what every rank must agree on before the step: the global loss (a NaN
    anywhere stops all ranks together), its normaliser, and stop requests."""
    shared = torch.stack(
        [
            summed.detach().double(),
            (target != IGNORE_INDEX).sum().double(),
            torch.tensor(float(frames), dtype=torch.float64, device=target.device),
            torch.tensor(float(stop), dtype=torch.float64, device=target.device),
        ]
    )
    return dist.all_reduce_sum(shared).tolist()


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    loader: Iterable,
    precision: Precision,
    num_classes: int,
    settings: InferenceSettings | None = None,
    show_progress: bool = True,
    desc: str = "eval",
    dist: Distributed = SINGLE,
) -> tuple[float, ConfusionMatrix]:
    """Mean loss and confusion matrix over `loader` (under DDP: over every rank's share of it).

    Without `settings`, batches are scored as they come (the per-epoch crop protocol). With them,
    batches are whole frames at full resolution, turned into probabilities by `predict_probs`
    (whole or sliding window, flip, scales) at the label's size, so the labels are scored at their
    original resolution however the network saw the frame. The loss is the mean over all labelled
    pixels of the negative log of the (averaged) probability of the true class: a per-pixel mean
    does not depend on how the frames were batched or shared out. It is plain unweighted
    cross-entropy whatever loss.* trains with, so that val losses compare across loss recipes.
    """
    model.eval()
    confusion = ConfusionMatrix(num_classes, IGNORE_INDEX)
    totals = torch.zeros(2, dtype=torch.float64, device=precision.device)  # loss sum, labelled pixels
    for images, target in tqdm(loader, desc=desc, leave=False, disable=not show_progress, dynamic_ncols=True):
        target = precision.targets(target)
        if settings is None:
            with precision.autocast():
                probs = model(precision.images(images))["out"].float().softmax(1)
        else:
            probs = predict_probs(model, images, settings, precision, num_classes, tuple(target.shape[-2:]))
        log_probs = probs.clamp_min(1e-12).log()
        totals[0] += F.nll_loss(log_probs, target, ignore_index=IGNORE_INDEX, reduction="sum").double()
        totals[1] += (target != IGNORE_INDEX).sum()
        confusion.update(probs.argmax(1), target)
    confusion.all_reduce(dist)
    loss_sum, labelled = dist.all_reduce_sum(totals).tolist()
    return loss_sum / labelled if labelled else float("nan"), confusion
