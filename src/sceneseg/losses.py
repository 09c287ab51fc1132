"""Training losses: the criterion of one head, and `segmentation_loss`, which adds up the heads.

Choosing: `build_head_loss` turns the config's loss section (loss.name, class weights, OHEM,
Lovász) into the head loss of one epoch; `segmentation_loss` applies it to the main logits and,
for models with an auxiliary head, adds train.aux_weight times the same loss of the aux logits.

Every head loss follows the engine's sum protocol (engine.train_one_epoch): with reduction="sum"
it returns a value that, divided by the batch's labelled pixels, is its mean; with "mean" that
mean. train_one_epoch divides the sums of all processes by the labelled pixels of the global
batch, so for cross-entropy, a sum over pixels, N processes compute the global batch's exact mean.
OHEM and Lovász are means over a set chosen per batch (kept pixels, present classes): their "sum"
is that mean times the labelled pixels, so one process computes them exactly and N processes a
labelled-pixel-weighted average of each process's own.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from .labels import IGNORE_INDEX

if TYPE_CHECKING:
    from .config import LossConfig

HeadLoss = Callable[..., torch.Tensor]  # (logits N,C,H,W; target N,H,W; reduction) -> loss


def segmentation_loss(
    outputs: dict[str, torch.Tensor],
    target: torch.Tensor,
    aux_weight: float = 0.4,
    reduction: str = "mean",
    head_loss: HeadLoss | None = None,
) -> torch.Tensor:
    """`head_loss` (default: plain cross-entropy) of the main logits, plus `aux_weight` times that of
    the auxiliary head's if present. reduction "sum" follows the sum protocol (the caller divides)."""
    head_loss = head_loss or cross_entropy
    loss = head_loss(outputs["out"], target, reduction)
    if "aux" in outputs:
        loss = loss + aux_weight * head_loss(outputs["aux"], target, reduction)
    return loss


def build_head_loss(
    config: LossConfig, weight: torch.Tensor | None = None, epoch: int = 1, world_size: int = 1
) -> HeadLoss:
    """The head loss of `epoch` under `config` (the loss section), with the class weights `weight`.

    Under torchrun each of the `world_size` processes keeps at least its share of
    loss.ohem_min_kept, as each sees its share of the global batch."""
    with_lovasz = epoch >= config.lovasz_from_epoch
    lovasz = lovasz_softmax if config.lovasz_bins == 0 else functools.partial(lovasz_softmax, bins=config.lovasz_bins)
    if config.name == "lovasz":  # alone from lovasz_from_epoch on: the usual CE warm start before it
        return lovasz if with_lovasz else cross_entropy
    if config.name == "ohem":
        min_kept = math.ceil(config.ohem_min_kept / world_size)
        base = functools.partial(ohem_cross_entropy, thresh=config.ohem_thresh, min_kept=min_kept, weight=weight)
    else:
        base = cross_entropy if weight is None else functools.partial(cross_entropy, weight=weight)
    if with_lovasz and config.lovasz_weight > 0:
        return functools.partial(_plus_lovasz, base, lovasz, config.lovasz_weight)
    return base


def _plus_lovasz(
    base: HeadLoss, lovasz: HeadLoss, factor: float, logits: torch.Tensor, target: torch.Tensor, reduction: str = "mean"
):
    return base(logits, target, reduction) + factor * lovasz(logits, target, reduction)


def cross_entropy(
    logits: torch.Tensor, target: torch.Tensor, reduction: str = "mean", weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Cross-entropy over the labelled pixels; `weight` (one per class) scales each pixel's term.

    Weighted, the mean is still over the labelled pixels, not over their weights as torch's is: the
    computed weights average 1 per labelled pixel of the train split, so the two differ little, and
    one normaliser for every loss keeps the global mean under DDP exact."""
    if weight is None:
        return F.cross_entropy(logits.float(), target, ignore_index=IGNORE_INDEX, reduction=reduction)
    logits = logits.float()
    summed = F.cross_entropy(
        logits, target, weight=weight.to(logits.device, logits.dtype), ignore_index=IGNORE_INDEX, reduction="sum"
    )
    return summed if reduction == "sum" else summed / (target != IGNORE_INDEX).sum().clamp_min(1)


def ohem_cross_entropy(
    logits: torch.Tensor,
    target: torch.Tensor,
    reduction: str = "mean",
    *,
    thresh: float = 0.7,
    min_kept: int = 100000,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Cross-entropy averaged over the hard pixels only (online hard example mining): see ohem_keep.
    Class weights scale each kept pixel's term; the mean is over the kept pixels."""
    logits = _float(logits)
    labelled = target != IGNORE_INDEX
    safe = target.where(labelled, 0)  # any class: ignored pixels are never kept
    true_log_prob = logits.log_softmax(1).gather(1, safe.unsqueeze(1)).squeeze(1)
    kept = ohem_keep(true_log_prob.detach().exp(), labelled, thresh, min_kept)
    losses = -true_log_prob
    if weight is not None:
        losses = losses * weight.to(losses.device, losses.dtype)[safe]
    mean = losses[kept].sum() / kept.sum().clamp_min(1)
    return mean * labelled.sum() if reduction == "sum" else mean


def ohem_keep(true_prob: torch.Tensor, labelled: torch.Tensor, thresh: float, min_kept: int) -> torch.Tensor:
    """Which pixels OHEM keeps: the labelled ones whose true class has a probability below `thresh`;
    if fewer than `min_kept`, the `min_kept` with the lowest such probability (all labelled ones if
    there are fewer)."""
    kept = labelled & (true_prob < thresh)
    wanted = min(min_kept, int(labelled.sum()))
    if int(kept.sum()) >= wanted:
        return kept
    # The threshold's pixels are the hardest ones, so the `wanted` hardest include them all.
    hardest = true_prob.masked_fill(~labelled, math.inf).flatten().topk(wanted, largest=False).indices
    return torch.zeros_like(kept).flatten().index_fill(0, hardest, True).view_as(kept)


def lovasz_softmax(logits: torch.Tensor, target: torch.Tensor, reduction: str = "mean", bins: int = 0) -> torch.Tensor:
    """Lovász-softmax (Berman, Triki and Blaschko, CVPR 2018): the mean, over the classes present in
    the batch's labels, of the Lovász extension of the class's Jaccard loss at the softmax errors of
    all the batch's labelled pixels; with `bins`, lovasz_extension_binned's approximation of it."""
    if bins:
        return _lovasz_softmax_binned(logits, target, reduction, bins)
    labelled = target != IGNORE_INDEX
    probs = _float(logits).softmax(1).movedim(1, -1)[labelled]  # labelled pixels x classes
    truth = target[labelled]
    if truth.numel() == 0:
        return logits.sum() * 0.0  # nothing labelled: no loss, but a graph to call backward on
    present = torch.bincount(truth, minlength=probs.shape[1]).nonzero().squeeze(1)  # no sort, unlike unique()
    # One sort of all present classes' rows (classes x pixels) instead of one per class: the same
    # values in less than half the time on a 2-core CPU (benchmarks/losses.py), where the sort dominates.
    foreground = (truth.unsqueeze(0) == present.unsqueeze(1)).to(probs.dtype)
    mean = lovasz_extension(foreground, probs[:, present].T).mean()
    return mean * labelled.sum() if reduction == "sum" else mean


def _lovasz_softmax_binned(logits: torch.Tensor, target: torch.Tensor, reduction: str, bins: int) -> torch.Tensor:
    # Every pixel and class stays in place (selecting the labelled ones and the present classes cost
    # more than the binned extension itself): unlabelled pixels are masked, absent classes dropped last.
    classes = logits.shape[1]
    probs = _float(logits).softmax(1).movedim(1, 0).reshape(classes, -1)  # classes x pixels
    labelled = (target != IGNORE_INDEX).flatten()
    foreground = target.flatten().unsqueeze(0) == torch.arange(classes, device=target.device).unsqueeze(1)
    present = foreground.any(1)
    if not present.any():
        return logits.sum() * 0.0  # nothing labelled: no loss, but a graph to call backward on
    mean = lovasz_extension_binned(foreground.to(probs.dtype), probs, bins, labelled)[present].mean()
    return mean * labelled.sum() if reduction == "sum" else mean


def lovasz_extension(foreground: torch.Tensor, prob: torch.Tensor) -> torch.Tensor:
    """The Lovász extension of one class's Jaccard loss at the errors m = |foreground - prob|.

    The Jaccard loss of a set M of mispredicted pixels is Δ(M) = |M| / |F ∪ M|, F the class's pixels.
    With m sorted in decreasing order (pixels π_1, π_2, ...), the extension is Σ_i m_πi g_i where
    g_i = Δ({π_1..π_i}) - Δ({π_1..π_i-1}): linear between sorts, equal to Δ(M) when m is the 0/1
    indicator of M, and with gradient g, so minimising it minimises a tight convex surrogate of Δ.
    Over the last dimension: a (pixels,) pair gives a scalar, (classes, pixels) one value per class.
    """
    errors, order = (foreground - prob).abs().sort(dim=-1, descending=True)
    fg = foreground.gather(-1, order)
    # The first i pixels mispredicted: |M| = i, and F ∪ M is F plus the background pixels among them.
    count = torch.arange(1, fg.shape[-1] + 1, dtype=fg.dtype, device=fg.device)
    jaccard = count / (fg.sum(-1, keepdim=True) + (1 - fg).cumsum(-1))
    steps = torch.cat([jaccard[..., :1], jaccard[..., 1:] - jaccard[..., :-1]], dim=-1)
    return (errors * steps).sum(-1)


def lovasz_extension_binned(
    foreground: torch.Tensor, prob: torch.Tensor, bins: int, counted: torch.Tensor | None = None
) -> torch.Tensor:
    """lovasz_extension with the errors grouped into `bins` equal levels of [0, 1] instead of sorted,
    which costs a few passes over the pixels instead of a sort (benchmarks/losses.py). Within a level,
    foreground pixels count as coming first, and each pixel's gradient is the mean Jaccard step of its
    group. Pixels where the boolean mask `counted` (over the last dimension) is False are left out.

    The Jaccard loss of the pixels down to each level's end is the exact one, and the steps are >= 0 and
    sum to at most 1, so the value is within 1 / bins of the exact extension; when no two pixels share
    a level, value and gradient are the exact ones.
    """
    if prob.dim() == 1:  # one class's pixels: a scalar, as lovasz_extension gives
        counted = None if counted is None else counted[None]
        return lovasz_extension_binned(foreground[None], prob[None], bins, counted)[0]
    errors = (foreground - prob).abs()
    if counted is not None:
        errors = errors * counted
    classes, slots = errors.shape[0], 2 * bins + 1  # the last slot holds the pixels left out
    with torch.no_grad():  # the steps are constants of the errors' order, as in the exact extension
        level = (errors * bins).to(torch.int64).clamp_(max=bins - 1)
        # Slot of each pixel: largest errors first, and foreground before background within a level.
        slot = (bins - 1 - level).mul_(2).add_((foreground == 0).to(torch.int64))
        if counted is not None:
            slot.masked_fill_(~counted, slots - 1)
        offsets = torch.arange(classes, device=errors.device).unsqueeze(1) * slots
        count = torch.bincount((slot + offsets).flatten(), minlength=classes * slots).view(classes, slots)
        count = count.to(errors.dtype)
        background = count * (torch.arange(slots, device=errors.device) % 2)
        positives = (foreground if counted is None else foreground * counted).sum(-1, keepdim=True)
        # At least 1: a class with no foreground pixel has 0 / 0 before its first background one.
        jaccard = count.cumsum(-1) / (positives + background.cumsum(-1)).clamp_min(1)
        steps = torch.diff(jaccard, dim=-1, prepend=torch.zeros_like(jaccard[..., :1]))
        gradient = (steps / count.clamp_min(1)).gather(-1, slot)
    return (errors * gradient).sum(-1)


def _float(logits: torch.Tensor) -> torch.Tensor:
    """At least float32 (bf16 autocast gives bf16 logits); float64 stays, for gradient checks."""
    return logits if logits.dtype == torch.float64 else logits.float()
