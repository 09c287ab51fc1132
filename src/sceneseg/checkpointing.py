"""What a training run keeps of its epochs: the best weights, in memory and as best.pt, and last.pt,
the exact resume point.

best.pt holds what evaluate, predict, export, load_model and init_from read: config, model,
class_names, epoch and history; no optimizer or scheduler state, which nothing but a resume needs.
last.pt holds all of it, written every train.checkpoint_every epochs, after the last epoch and
when a stop signal ends the run. best.pt is written only just before last.pt (when the best
changed since), so the two always describe the same stretch of the run: a run killed between two
last.pt writes resumes from the older one, where best.pt also stands, and retrains what follows.
Each rank keeps a CPU copy of the best weights, so the final evaluation reads no file, unless the
best epoch was trained before a resume (then best.pt, as the resume read last.pt).

Files are written off the training thread: `write` takes a CPU copy of everything they hold (the
next step changes the weights in place) and hands it to a thread, which writes best.pt and then
last.pt, each atomically (checkpoint.save_checkpoint). One write is under way at a time: the next
`write` waits for it, and `wait` is called wherever the files must be complete (a stop, the end of
the run, an error leaving the epoch loop). An error of the thread is raised by the next of them.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import torch

from .checkpoint import load_checkpoint, save_checkpoint
from .config import to_dict
from .errors import WeightsError
from .training_run import TrainingRun


class Checkpoints:
    """The best weights of a run (in memory and on disk) and the writing of best.pt and last.pt."""

    def __init__(self, run: TrainingRun) -> None:
        self.run_dir, self.is_main = run.run_dir, run.dist.is_main
        self.every, self.epochs = run.config.train.checkpoint_every, run.config.train.epochs
        self.best_epoch: int | None = None  # the epoch of `best_state`: the best this process trained
        self.best_state: dict[str, torch.Tensor] | None = None
        self.best_written = True  # best.pt holds best_state (or best_state is None)
        self._writer: threading.Thread | None = None  # the write under way
        self.failed: BaseException | None = None

    def keep_best(self, run: TrainingRun, epoch: int) -> None:
        """Copy the network's current weights, those of `epoch`, as the run's best (on every rank)."""
        self.best_state = _cpu_copy(run.net.state_dict())
        self.best_epoch, self.best_written = epoch, False

    def due(self, epoch: int) -> bool:
        """Whether last.pt is written after `epoch` (without a stop signal)."""
        return epoch % self.every == 0 or epoch == self.epochs

    def write(self, run: TrainingRun, epoch: int, kept_as_best: bool = False, **extra: Any) -> None:
        """Rank 0 starts writing best.pt if the best changed, then last.pt after `epoch` complete
        epochs (`extra`: a part-way epoch's progress; `kept_as_best`: the network has not changed
        since keep_best). When last.pt names epoch e, best.pt is the best of the epochs up to e."""
        if not self.is_main:
            return
        self.wait()
        common = {"config": to_dict(run.config), "class_names": list(run.val_set.class_names)}
        files = []
        if not self.best_written:  # best_state is never changed in place: keep_best makes a new one
            records = [dict(record) for record in run.history.records if record["epoch"] <= self.best_epoch]
            best = {**common, "model": self.best_state, "history": records, "epoch": self.best_epoch}
            files.append((self.run_dir / "best.pt", best))
            self.best_written = True
        state = _cpu_copy({"optimizer": run.optimizer.state_dict(), "scheduler": run.scheduler.state_dict()})
        # When the weights are still those keep_best has just copied, that copy serves last.pt too.
        state["model"] = self.best_state if kept_as_best else _cpu_copy(run.net.state_dict())
        history = [dict(record) for record in run.history.records]  # later records change the last one
        files.append((self.run_dir / "last.pt", {**common, **state, "history": history, "epoch": epoch, **extra}))
        self._writer = threading.Thread(target=self._save, args=(files,), name="sceneseg-checkpoints")
        self._writer.start()

    def _save(self, files: list[tuple[Path, dict[str, Any]]]) -> None:
        try:
            for path, content in files:
                save_checkpoint(path, **content)
        except BaseException as error:  # raised on the training thread by wait()
            self.failed = error

    def wait(self, raise_error: bool = True) -> None:
        """Return once the files under way are written; raise what stopped them (if `raise_error`)."""
        if self._writer is not None:
            self._writer.join()
            self._writer = None
        error, self.failed = self.failed, None
        if error is not None and raise_error:
            raise error

    def best_weights(self, epoch: int) -> dict[str, torch.Tensor]:
        """The weights of the run's best `epoch`: the copy in memory, or best.pt when an earlier
        process (before a resume) trained that epoch."""
        if self.best_epoch == epoch:
            return self.best_state
        path = self.run_dir / "best.pt"
        best = load_checkpoint(path)
        if best["epoch"] != epoch:
            raise WeightsError(
                f"{path} holds epoch {best['epoch']}, but the best epoch of the run's history is {epoch}: "
                "the run was killed between writing best.pt and last.pt and the epochs retrained since "
                "differ; train it again into another train.out_dir"
            )
        return best["model"]


def _cpu_copy(tree: Any) -> Any:
    """`tree` (state dicts: dicts and lists of tensors and plain values) with every tensor copied to the CPU."""
    if isinstance(tree, torch.Tensor):
        return tree.detach().to("cpu", copy=True)
    if isinstance(tree, dict):
        return {key: _cpu_copy(value) for key, value in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(_cpu_copy(value) for value in tree)
    return tree
