"""Run the epochs of an experiment (fit), then score its best weights (train_and_evaluate).

`fit` is a loop over named steps: training_run.prepare builds the run's pieces (data, network,
optimizer, the one train loader), training_run.restore continues a checkpoint, and every epoch is
`_train_epoch`, `_validate` and `_end_epoch` (the checkpoints of checkpointing.py), each timed
(phases.py).

Reproducibility: the shuffle is a function of (seed, epoch), each sample's augmentation of (seed,
epoch, index) and the global random generators are reseeded from (seed, epoch, iteration, rank)
before every step, so a run resumed from any checkpoint (an epoch's end, or the iteration where a
stop signal was honoured) ends with exactly the weights and history of an uninterrupted run on the
CPU, with any number of DataLoader workers.
"""

from __future__ import annotations

import contextlib
import functools
import json
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from .budget import size_to_budget
from .checkpoint import sized_config, write_text_atomic
from .checkpointing import Checkpoints
from .config import Config
from .distributed import Distributed, single_process
from .engine import EpochProgress, evaluate, train_one_epoch
from .errors import DataError
from .evaluation import describe_hardware, evaluate_weights
from .history import PHASE_KEYS, History
from .phases import RunTimer, TimedLoader, synchronize
from .stopping import TrainingStopped
from .training_run import Log, TrainingRun, describe, epoch_loss, prepare, record_inputs, restore, seed_step

PRINT: Log = functools.partial(print, flush=True)  # the default log: the console, unbuffered


def _quiet(message: str) -> None:
    pass


def fit(
    config: Config,
    run_dir: Path,
    resume: dict | None = None,
    show_progress: bool = True,
    log: Log = PRINT,
    dist: Distributed | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> History:
    """Train `config` into `run_dir`, writing the history after every epoch, and last.pt (with best.pt
    when the best changed) every train.checkpoint_every epochs and after the last (checkpointing.py).

    Under torchrun (`dist` from distributed.init_from_env) every rank calls this; rank 0 alone
    writes files and logs. When `should_stop` turns true, the current iteration finishes, last.pt
    records the run up to it, and TrainingStopped is raised.
    """
    dist = dist or single_process(config.device)
    fitted = _fit(config, run_dir, resume, show_progress, log, dist, should_stop)
    fitted.checkpoints.wait()
    dist.barrier()  # when fit returns, rank 0's files are complete
    return fitted.history


@dataclass
class _Fitted:
    """What the final evaluation needs of a finished fit: the history, the best weights, the timings."""

    history: History
    checkpoints: Checkpoints
    timer: RunTimer


def _fit(
    config: Config,
    run_dir: Path,
    resume: dict | None,
    show_progress: bool,
    log: Log,
    dist: Distributed,
    should_stop: Callable[[], bool],
) -> _Fitted:
    timer = RunTimer()
    log, show_progress = (log, show_progress) if dist.is_main else (_quiet, False)
    config = sized_config(config, resume)  # a resumed budgeted run keeps the epochs it began with
    run = prepare(config, run_dir, dist, resume is not None, log, show_progress, should_stop)
    if resume is None and config.train.minutes is not None:
        size_to_budget(run)  # before anything records train.epochs: the optimizer, last.pt, config.yaml
    checkpoints = Checkpoints(run)
    start_epoch, partial = restore(run, resume)
    log(describe(run))
    if dist.is_main:  # once every input has been checked
        record_inputs(run)
        # The metrics.json of a shorter run resumed for more epochs would mark this one finished too early.
        (run_dir / "metrics.json").unlink(missing_ok=True)
    timer.end_startup()
    try:
        _run_epochs(run, checkpoints, timer, start_epoch, partial)
    except BaseException:
        checkpoints.wait(raise_error=False)  # the checkpoint under way is kept: the run resumes from it
        raise
    return _Fitted(run.history, checkpoints, timer)


def _run_epochs(
    run: TrainingRun, checkpoints: Checkpoints, timer: RunTimer, start_epoch: int, partial: dict | None
) -> None:
    """The epochs from `start_epoch` on, the first continuing `partial` (a stopped epoch's progress)."""
    config, dist = run.config, run.dist
    for epoch in range(start_epoch, config.train.epochs + 1):
        timer.start_epoch(partial)
        progress = EpochProgress.from_dict(partial, config.model.num_classes, dist) if partial else None
        partial = None
        progress = _train_epoch(run, epoch, progress, timer)
        if progress.stopped:
            _stop_mid_epoch(run, checkpoints, epoch, progress, timer)
        with timer.phase("val_seconds"):
            record = _validate(run, epoch, progress)
        stop = dist.any(run.should_stop())
        _end_epoch(run, checkpoints, record, timer, stop)
        remaining = (config.train.epochs - epoch) * record["seconds"]
        run.log(f"{run.history.format_row(record)}  ETA {time.strftime('%H:%M:%S', time.gmtime(remaining))}")
        if stop:
            raise TrainingStopped(run.run_dir / "last.pt", f"after epoch {epoch}")


def _train_epoch(run: TrainingRun, epoch: int, progress: EpochProgress | None, timer: RunTimer) -> EpochProgress:
    """Train epoch `epoch`, or the rest of it after `progress`; the result says if a stop was asked for."""
    config, dist = run.config, run.dist
    if progress is not None and progress.iteration >= run.iters_per_epoch:
        progress.confusion.all_reduce(dist)  # stopped after the epoch's last iteration: only validation is left
        return progress
    run.train_loader.sampler.set_epoch(epoch, progress.iteration if progress else 0)
    loader = TimedLoader(run.train_loader)
    started = time.perf_counter()
    progress = train_one_epoch(
        run.model,
        loader,
        run.optimizer,
        run.scheduler,
        run.precision,
        config.model.num_classes,
        epoch,
        loss_fn=epoch_loss(run, epoch),
        show_progress=run.show_progress,
        should_stop=run.should_stop,
        progress=progress,
        dist=dist,
        before_iteration=lambda it: seed_step(config.seed, epoch, it, dist.rank),
    )
    synchronize(run.precision.device)  # once an epoch: the step time then includes the GPU's queued work
    timer.add_training(time.perf_counter() - started, loader)
    return progress


def _stop_mid_epoch(
    run: TrainingRun, checkpoints: Checkpoints, epoch: int, progress: EpochProgress, timer: RunTimer
) -> NoReturn:
    """Record the part of `epoch` done in last.pt, and raise TrainingStopped once it is written.

    Validation waits for the resumed run: stopping must not take longer than one iteration."""
    with timer.phase("checkpoint_seconds"):
        times = timer.epoch_times()
        phases = {key: times[key] for key in PHASE_KEYS}
        part = {**progress.to_dict(), "epoch": epoch, "seconds": times["seconds"], "phases": phases}
        checkpoints.write(run, epoch - 1, interrupted=part)
        checkpoints.wait()
        run.dist.barrier()  # no rank ends before rank 0's last.pt is complete
    where = f"after iteration {progress.iteration} of {run.iters_per_epoch} of epoch {epoch}"
    raise TrainingStopped(run.run_dir / "last.pt", where)


def _validate(run: TrainingRun, epoch: int, progress: EpochProgress) -> dict:
    """The epoch's history record: its training figures, and its weights scored on the val crops."""
    dist, names = run.dist, run.val_set.class_names
    dist.broadcast_buffers(run.net)  # without SyncBN each rank's BatchNorm statistics drift apart
    dist.write_debug_digest(f"epoch{epoch}", run.net.state_dict())
    val_loss, val_cm = evaluate(
        run.net, run.val_loader, run.precision, run.config.model.num_classes, show_progress=run.show_progress, dist=dist
    )
    val = val_cm.summary(names)
    return {
        "epoch": epoch,
        "train_loss": progress.loss,
        "train_mIoU": progress.confusion.summary(names)["mIoU"],
        "val_loss": val_loss,
        "val_mIoU": val["mIoU"],
        "val_mAcc": val["mAcc"],
        "val_allAcc": val["allAcc"],
        "lr": run.scheduler.get_last_lr()[0],
    }


def _end_epoch(run: TrainingRun, checkpoints: Checkpoints, record: dict, timer: RunTimer, stop: bool) -> None:
    """Add the epoch's record to the history, keep its weights if they are the best, write the
    checkpoints that are due (all of them on a stop), then the record's timings and the history file."""
    with timer.phase("checkpoint_seconds"):
        is_best = run.history.add(record)
        if is_best:
            checkpoints.keep_best(run, record["epoch"])
        if stop or checkpoints.due(record["epoch"]):
            # last.pt's copy of the record cannot count the writing of last.pt itself; history.json's does.
            record.update(timer.epoch_times())
            checkpoints.write(run, record["epoch"], kept_as_best=is_best)
            if stop:
                checkpoints.wait()
                run.dist.barrier()  # no rank ends before rank 0's last.pt is complete
    record.update(timer.epoch_times())
    if run.dist.is_main:
        run.history.write()


def train_and_evaluate(
    config: Config,
    run_dir: Path,
    resume: dict | None = None,
    show_progress: bool = True,
    log: Log = PRINT,
    dist: Distributed | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    stop_scope: Callable[[], AbstractContextManager] = contextlib.nullcontext,
) -> dict:
    """fit, then score the best epoch's weights with the config's evaluation protocol into
    run_dir/metrics.json.

    `stop_scope` (the CLI's signal handlers, which feed `should_stop`) is entered for the epochs only:
    the final evaluation cannot resume part-way, so a signal there ends the process as usual, and
    `--resume` then runs just the evaluation.

    Returns the metrics summary, which also records the best epoch, the final evaluation's seconds,
    the hardware and the run's phases (phases.py), so that a report can state the protocol of every number.
    """
    dist = dist or single_process(config.device)
    with stop_scope():
        fitted = _fit(config, run_dir, resume, show_progress, log, dist, should_stop)
        if dist.any(should_stop()):  # asked for after the last epoch's own check
            fitted.checkpoints.wait()
            dist.barrier()
            raise TrainingStopped(run_dir / "last.pt", "after its last epoch, before the final evaluation")
    try:
        summary = _evaluate_best(config, run_dir, fitted, show_progress, log, dist)
    except BaseException:
        fitted.checkpoints.wait(raise_error=False)
        raise
    with fitted.timer.phase("checkpoint_seconds"):  # the run's checkpoint time (the epochs' records are written)
        fitted.checkpoints.wait()  # the last checkpoints were written during the final evaluation
    summary["phases"] = fitted.timer.summary(summary["eval_seconds"])
    if dist.is_main:
        write_text_atomic(run_dir / "metrics.json", json.dumps(summary, indent=2) + "\n")
    return summary


def _evaluate_best(
    config: Config, run_dir: Path, fitted: _Fitted, show_progress: bool, log: Log, dist: Distributed
) -> dict:
    """The final evaluation of the best epoch's weights: the metrics summary, with the best epoch,
    the evaluation's seconds and the hardware."""
    best = fitted.history.best()
    if best is None:
        raise DataError(
            f"no epoch of {run_dir} had a finite val mIoU (see its history.json), so there is no best "
            f"epoch to evaluate: the val split {config.data.val_split!r} has no labelled pixel of any "
            "class (check it with 'sceneseg data check'), or the model diverged (try a lower train.lr)"
        )
    if dist.is_main:
        log(f"\nevaluating best.pt (epoch {best['epoch']}) on {config.data.val_split} ({config.eval.mode})")
    started = time.perf_counter()
    summary = evaluate_weights(
        config,
        fitted.checkpoints.best_weights(best["epoch"]),
        config.data.val_split,
        show_progress=show_progress,
        dist=dist,
    )
    summary.update(
        epoch=best["epoch"],
        eval_seconds=time.perf_counter() - started,
        hardware=describe_hardware(dist.device, dist.world_size),
    )
    return summary
