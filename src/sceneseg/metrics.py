"""Segmentation metrics, all derived from one confusion matrix.

Rows are ground-truth classes, columns predictions. IoU and accuracy of a class that never occurs in
the ground truth and is never predicted are undefined (NaN) and left out of the means, as the CS 6476
project and the PSPNet reference code do.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from .labels import IGNORE_INDEX

if TYPE_CHECKING:
    from .distributed import Distributed


class ConfusionMatrix:
    """Counts of (true class, predicted class) pixels.

    Updates accumulate on the device of the label maps without reading anything back, so a GPU
    never waits for the host in the middle of an epoch; `matrix` brings the counts to the host, one
    transfer for all the updates since the last read. Labelled values outside 0..num_classes-1 are
    reported there too (as a ValueError), since finding them earlier would cost a read per update.
    """

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX) -> None:
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self._matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64)
        # Since the last read: num_classes**2 counts, one bin for ignored pixels, then the lowest and
        # highest labelled value seen (to name bad labels), all on the updates' device.
        self._pending: torch.Tensor | None = None

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """Count a batch of predicted and true label maps of the same shape."""
        if pred.shape != target.shape:
            raise ValueError(f"prediction shape {tuple(pred.shape)} != target shape {tuple(target.shape)}")
        if target.numel() == 0:
            return
        n = self.num_classes
        target, pred = target.reshape(-1).long(), pred.reshape(-1).long()
        labelled = target != self.ignore_index
        # Clamped so that bad labels cannot index out of the bins; the range below reports them.
        bins = torch.where(labelled, target.clamp(0, n - 1) * n + pred.clamp(0, n - 1), n * n)
        counts = torch.zeros(n * n + 1, dtype=torch.int64, device=target.device)
        counts.index_add_(0, bins, torch.ones(1, dtype=torch.int64, device=target.device).expand_as(bins))
        seen = target.masked_fill(~labelled, 0)
        low, high = seen.amin(), seen.amax()  # 0 and 0 when nothing is labelled, which is in range
        if self._pending is None:
            self._pending = torch.cat([counts, low.view(1), high.view(1)])
        else:
            self._pending[: n * n + 1] += counts
            self._pending[-2] = torch.minimum(self._pending[-2], low)
            self._pending[-1] = torch.maximum(self._pending[-1], high)

    @property
    def matrix(self) -> torch.Tensor:
        """The (num_classes, num_classes) int64 counts on the host: rows true class, columns prediction."""
        if self._pending is not None:
            n, pending = self.num_classes, self._pending.cpu()
            low, high = int(pending[-2]), int(pending[-1])
            if low < 0 or high >= n:
                raise ValueError(
                    f"label values from {low} to {high} were counted, some outside 0..{n - 1} and not "
                    f"ignored ({self.ignore_index})"
                )
            self._matrix = self._matrix + pending[: n * n].reshape(n, n)
            self._pending = None
        return self._matrix

    @matrix.setter
    def matrix(self, value: torch.Tensor) -> None:
        self._matrix, self._pending = value, None

    def all_reduce(self, dist: Distributed) -> None:
        """Sum the matrices of the processes of `dist`, so that every rank reports the same metrics."""
        if dist.enabled:
            self.matrix = dist.all_reduce_sum(self.matrix.to(dist.comm_device)).cpu()

    def iou(self) -> torch.Tensor:
        m = self.matrix.double()
        tp = m.diag()
        union = m.sum(0) + m.sum(1) - tp
        return torch.where(union > 0, tp / union.clamp(min=1), torch.full_like(tp, float("nan")))

    def mean_iou(self) -> float:
        """Mean IoU over the classes present in the truth or the prediction (NaN if none)."""
        return _nanmean(self.iou())

    def accuracy(self) -> torch.Tensor:
        m = self.matrix.double()
        support = m.sum(1)
        return torch.where(support > 0, m.diag() / support.clamp(min=1), torch.full_like(support, float("nan")))

    def summary(self, class_names: Sequence[str]) -> dict:
        """The metrics JSON schema: mIoU, mAcc, allAcc, classes [{name, iou, acc}], confusion."""
        if len(class_names) != self.num_classes:
            raise ValueError(f"{len(class_names)} class names for {self.num_classes} classes")
        iou, acc = self.iou(), self.accuracy()
        total = self.matrix.sum().item()
        return {
            "mIoU": _nanmean(iou),
            "mAcc": _nanmean(acc),
            "allAcc": self.matrix.diag().sum().item() / total if total else float("nan"),
            "classes": [
                {"name": name, "iou": _value(i), "acc": _value(a)}
                for name, i, a in zip(class_names, iou.tolist(), acc.tolist())
            ],
            "confusion": self.matrix.tolist(),
        }


def _nanmean(values: torch.Tensor) -> float:
    valid = values[~values.isnan()]
    return valid.mean().item() if valid.numel() else float("nan")


def _value(x: float) -> float | None:
    # JSON has no NaN: an undefined per-class value is written as null.
    return None if x != x else x


def format_metrics(summary: dict) -> str:
    """A readable table of per-class IoU and accuracy followed by the means."""
    width = max(len(c["name"]) for c in summary["classes"])
    lines = [f"{'class':<{width}}  {'IoU':>7}  {'Acc':>7}"]
    for c in summary["classes"]:
        iou = "    n/a" if c["iou"] is None else f"{c['iou']:7.4f}"
        acc = "    n/a" if c["acc"] is None else f"{c['acc']:7.4f}"
        lines.append(f"{c['name']:<{width}}  {iou}  {acc}")
    lines.append("-" * len(lines[0]))
    lines.append(f"mIoU {summary['mIoU']:.4f}   mAcc {summary['mAcc']:.4f}   allAcc {summary['allAcc']:.4f}")
    return "\n".join(lines)
