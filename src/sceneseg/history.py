"""Per-epoch training records, kept as history.json and history.csv in the run directory, and as
TensorBoard scalars in `run_dir/tensorboard` when the tensorboard package is installed."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

from .checkpoint import write_text_atomic

COLUMNS = ("epoch", "train_loss", "train_mIoU", "val_loss", "val_mIoU", "val_mAcc", "val_allAcc", "lr", "seconds")

# Where an epoch's time went (phases.py): seconds blocked waiting for the train loader, in the training
# step, in validation, and on checkpoints (copying the best weights and last.pt's state for the writer
# thread, waiting for it). `seconds` is the epoch's whole wall time, its checkpoints included.
PHASE_KEYS = ("data_seconds", "step_seconds", "val_seconds", "checkpoint_seconds")
# Keys of a record that vary from run to run of the same config and seed: comparisons of results skip them.
TIMING_KEYS = ("seconds", *PHASE_KEYS)
# The same for metrics.json (training.train_and_evaluate): the final evaluation's time and the run's phases.
RUN_TIMING_KEYS = ("eval_seconds", "phases")


def without_timing(record: dict, keys: tuple[str, ...] = TIMING_KEYS) -> dict:
    """`record` (a history record, or metrics.json with RUN_TIMING_KEYS) less its timing keys."""
    return {key: value for key, value in record.items() if key not in keys}


# TensorBoard tag of each history key; the epoch is the step.
SCALARS = {
    "train_loss": "loss/train",
    "val_loss": "loss/val",
    "train_mIoU": "mIoU/train",
    "val_mIoU": "mIoU/val",
    "lr": "lr",
}


def tensorboard_writer(log_dir: Path) -> Any:
    """A SummaryWriter for `log_dir`, or None when tensorboard is not installed (it is optional)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(log_dir))


class History:
    def __init__(self, run_dir: Path, writer: Any = None) -> None:
        self.run_dir = Path(run_dir)
        self.records: list[dict] = []
        self.writer = writer

    def best(self) -> dict | None:
        scored = [r for r in self.records if not math.isnan(r["val_mIoU"])]
        return max(scored, key=lambda r: r["val_mIoU"]) if scored else None

    def add(self, record: dict) -> bool:
        """Append an epoch's record; True when it has the best val mIoU so far (ties go to the earlier)."""
        previous = self.best()
        self.records.append(record)
        if self.writer is not None:
            for key, tag in SCALARS.items():
                self.writer.add_scalar(tag, record[key], record["epoch"])
            self.writer.flush()
        return previous is None or record["val_mIoU"] > previous["val_mIoU"]

    def write(self) -> None:
        write_text_atomic(self.run_dir / "history.json", json.dumps(self.records, indent=2) + "\n")
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(self.records)
        write_text_atomic(self.run_dir / "history.csv", buffer.getvalue())

    @staticmethod
    def format_row(record: dict) -> str:
        return (
            f"epoch {record['epoch']:3d}  train loss {record['train_loss']:.4f}  "
            f"train mIoU {record['train_mIoU']:.4f}  val loss {record['val_loss']:.4f}  "
            f"val mIoU {record['val_mIoU']:.4f}  mAcc {record['val_mAcc']:.4f}  "
            f"allAcc {record['val_allAcc']:.4f}  ({record['seconds']:.1f} s)"
        )
