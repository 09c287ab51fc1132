"""Where a training run's time goes: waiting for data, the training step, validation, checkpoints,
start-up and the final evaluation, so that the time around the model is measured, not guessed.

Each epoch's record (history.json) gets the seconds of its phases (history.PHASE_KEYS) beside its
`seconds`; metrics.json gets the run's totals as `phases`, and `sceneseg train` ends with them as a
table. Everything is wall time of this process from time.perf_counter.

On CUDA the host only queues the GPU's work: a phase's host time is its GPU time only up to the
work still queued when it ends. The training step already waits for the GPU once per iteration (the
all-reduce of its loss, read on the host), which bounds the queue to that step's backward pass and
optimizer step; the end of each epoch's training waits for the GPU once (`synchronize`), so that the
training phase as a whole is exact and no per-iteration synchronisation is added. Data wait is the
time the training loop was blocked asking for the next batch, which may overlap queued GPU work:
exactly the time that would be saved if the batches were ready.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Iterator

import torch

from .history import PHASE_KEYS


def synchronize(device: torch.device) -> None:
    """Wait for the work queued on `device` (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class TimedLoader:
    """Iterates `loader`, adding to `waited` the time blocked in it (starting its iteration, which
    starts the workers of a loader on its first epoch, and each next batch)."""

    def __init__(self, loader: Iterable) -> None:
        self.loader = loader
        self.waited = 0.0
        self.first_batch: float | None = None  # perf_counter when the first batch arrived

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator:
        asked = time.perf_counter()
        iterator = iter(self.loader)
        while True:
            try:
                batch = next(iterator)
            except StopIteration:
                self.waited += time.perf_counter() - asked
                return
            arrived = time.perf_counter()
            self.waited += arrived - asked
            if self.first_batch is None:
                self.first_batch = arrived
            yield batch
            asked = time.perf_counter()


class RunTimer:
    """This process's seconds in each phase of a run, and those of the epoch under way (for its record).

    Created where fit() starts: start-up runs from then to the first epoch's start."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.startup = 0.0
        self.first_step: float | None = None  # from the start to the first batch in hand
        self.totals = dict.fromkeys(PHASE_KEYS, 0.0)
        self.epochs = 0  # epochs (or the rest of one) trained by this process
        self.epoch = dict.fromkeys(PHASE_KEYS, 0.0)
        self.epoch_started = self.started

    def end_startup(self) -> None:
        self.startup = time.perf_counter() - self.started

    def start_epoch(self, partial: dict | None = None) -> None:
        """Start timing an epoch; `partial` is what a stopped epoch recorded in last.pt (its
        `seconds` and `phases` so far), which the resumed epoch's record adds to its own."""
        partial = partial or {}
        done = partial.get("phases", {})
        self.epoch = {key: float(done.get(key, 0.0)) for key in PHASE_KEYS}
        self.epoch_started = time.perf_counter() - partial.get("seconds", 0.0)
        self.epochs += 1

    def add(self, key: str, seconds: float) -> None:
        self.epoch[key] += seconds
        self.totals[key] += seconds

    @contextlib.contextmanager
    def phase(self, key: str) -> Iterator[None]:
        """Count the block's wall time to phase `key` (a PHASE_KEYS entry)."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.add(key, time.perf_counter() - started)

    def add_training(self, seconds: float, loader: TimedLoader) -> None:
        """An epoch's training phase of `seconds`, of which `loader.waited` waiting for batches."""
        self.add("data_seconds", loader.waited)
        self.add("step_seconds", max(seconds - loader.waited, 0.0))
        if self.first_step is None and loader.first_batch is not None:
            self.first_step = loader.first_batch - self.started

    def epoch_times(self) -> dict[str, float]:
        """The timing keys of the current epoch's record, up to now."""
        return {"seconds": time.perf_counter() - self.epoch_started, **self.epoch}

    def summary(self, final_eval: float) -> dict[str, float | int | None]:
        """The run's phases for metrics.json, with `final_eval` seconds of final evaluation just ended.

        overhead_share is the part of the wall time outside the training step, validation and the
        final evaluation: start-up, data wait, checkpoints and the rest (the loop's own time)."""
        wall = time.perf_counter() - self.started
        phases = {"startup_seconds": self.startup, **self.totals, "final_eval_seconds": final_eval}
        other = wall - sum(phases.values())
        compute = self.totals["step_seconds"] + self.totals["val_seconds"] + final_eval
        return {
            "epochs": self.epochs,
            **phases,
            "other_seconds": other,
            "wall_seconds": wall,
            "first_step_seconds": self.first_step,
            "overhead_share": (wall - compute) / wall if wall > 0 else 0.0,
        }


_ROWS = {
    "startup_seconds": "start-up",
    "data_seconds": "waiting for data",
    "step_seconds": "training step",
    "val_seconds": "validation",
    "checkpoint_seconds": "checkpoints",
    "final_eval_seconds": "final evaluation",
    "other_seconds": "other",
    "wall_seconds": "wall",
}


def format_phases(phases: dict) -> str:
    """The run's phases (RunTimer.summary) as the small table `sceneseg train` ends with."""
    wall = phases["wall_seconds"] or 1.0
    lines = [
        f"where the time went ({phases['epochs']} epoch(s) trained by this process)",
        f"  {'phase':<28} {'seconds':>9}  {'share':>6}",
    ]
    lines += [f"  {label:<28} {phases[key]:9.1f}  {phases[key] / wall:6.1%}" for key, label in _ROWS.items()]
    first = phases.get("first_step_seconds")
    lines.append(
        f"outside the training step and evaluation: {phases['overhead_share']:.1%}"
        + (f"; first training step after {first:.1f} s" if first is not None else "")
    )
    return "\n".join(lines)
