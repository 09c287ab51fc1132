"""Run the epochs of an experiment (fit), then score its best weights (train_and_evaluate).

`fit` is a loop over named steps: training_run.prepare builds the run's pieces (data, network,
optimizer), training_run.restore continues a checkpoint, and every epoch is `_train_epoch`,
`_validate` and `_save`.

Reproducibility: the shuffle is a function of (seed, epoch), each sample's augmentation of (seed,
epoch, index) and the global random generators are reseeded from (seed, epoch, iteration, rank)
before every step, so a run resumed from any checkpoint (an epoch's end, or the iteration where a
stop signal was honoured) ends with exactly the weights and history of an uninterrupted run on the
CPU, with any number of DataLoader workers.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import numpy as np
import torch
from torch.utils.data import DataLoader

from .checkpoint import load_checkpoint, save_checkpoint, write_text_atomic
from .config import Config, to_dict
from .distributed import Distributed, single_process
from .engine import EpochProgress, evaluate, train_one_epoch
from .errors import DataError
from .evaluation import describe_hardware, evaluate_weights
from .history import History
from .losses import build_head_loss, segmentation_loss
from .stopping import TrainingStopped
from .training_run import Log, TrainingRun, describe, prepare, record_inputs, restore, seed_everything

PRINT: Log = functools.partial(print, flush=True)  # the default log: the console, unbuffered


def step_seed(seed: int, epoch: int, iteration: int, rank: int) -> int:
    """Seed of the global generators (dropout) for one training step of one rank."""
    entropy = [seed % 2**64, epoch, iteration, rank]
    return int(np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint64)[0])


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
    """Train `config` into `run_dir`, writing history, last.pt and best.pt after every epoch.

    Under torchrun (`dist` from distributed.init_from_env) every rank calls this; rank 0 alone
    writes files and logs. When `should_stop` turns true, the current iteration finishes, last.pt
    records the run up to it, and TrainingStopped is raised.
    """
    dist = dist or single_process(config.device)
    log, show_progress = (log, show_progress) if dist.is_main else (_quiet, False)
    run = prepare(config, run_dir, dist, resume is not None, log, show_progress, should_stop)
    start_epoch, partial = restore(run, resume)
    log(describe(run))
    if dist.is_main:  # once every input has been checked
        record_inputs(run)
        # The metrics.json of a shorter run resumed for more epochs would mark this one finished too early.
        (run_dir / "metrics.json").unlink(missing_ok=True)
    for epoch in range(start_epoch, config.train.epochs + 1):
        started = time.perf_counter() - (partial["seconds"] if partial else 0.0)
        progress = EpochProgress.from_dict(partial, config.model.num_classes, dist) if partial else None
        partial = None
        progress = _train_epoch(run, epoch, progress)
        if progress.stopped:
            _stop_mid_epoch(run, epoch, progress, started)
        record = _validate(run, epoch, progress, started)
        _save(run, record)
        remaining = (config.train.epochs - epoch) * record["seconds"]
        log(f"{run.history.format_row(record)}  ETA {time.strftime('%H:%M:%S', time.gmtime(remaining))}")
        if dist.any(should_stop()):
            raise TrainingStopped(run_dir / "last.pt", f"after epoch {epoch}")
    dist.barrier()  # the other ranks may read best.pt next
    return run.history


def _train_epoch(run: TrainingRun, epoch: int, progress: EpochProgress | None) -> EpochProgress:
    """Train epoch `epoch`, or the rest of it after `progress`; the result says if a stop was asked for."""
    config, dist = run.config, run.dist
    if progress is not None and progress.iteration >= run.iters_per_epoch:
        progress.confusion.all_reduce(dist)  # stopped after the epoch's last iteration: only validation is left
        return progress
    run.train_set.set_epoch(epoch)
    done = progress.iteration if progress else 0
    sampler = dist.train_sampler(run.train_set, config.seed * 1000, epoch, done, run.per_process, run.sampling.factors)
    # The generator only seeds the workers (the sampler shuffles): from (seed, epoch) too.
    loader = DataLoader(
        run.train_set,
        batch_size=run.per_process,
        sampler=sampler,
        drop_last=True,
        generator=torch.Generator().manual_seed(config.seed * 1000 + epoch),
        num_workers=config.data.num_workers,
        pin_memory=run.precision.device.type == "cuda",
    )
    return train_one_epoch(
        run.model,
        loader,
        run.optimizer,
        run.scheduler,
        run.precision,
        config.model.num_classes,
        epoch,
        loss_fn=functools.partial(
            segmentation_loss,
            aux_weight=config.train.aux_weight,
            head_loss=build_head_loss(config.loss, run.class_weights, epoch, dist.world_size),
        ),
        show_progress=run.show_progress,
        should_stop=run.should_stop,
        progress=progress,
        dist=dist,
        before_iteration=lambda it: seed_everything(step_seed(config.seed, epoch, it, dist.rank)),
    )


def _checkpoint(run: TrainingRun, epoch: int) -> dict:
    """What last.pt and best.pt hold after `epoch` complete epochs."""
    return {
        "config": to_dict(run.config),
        "model": run.net.state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "scheduler": run.scheduler.state_dict(),
        "history": run.history.records,
        "class_names": list(run.val_set.class_names),
        "epoch": epoch,
    }


def _stop_mid_epoch(run: TrainingRun, epoch: int, progress: EpochProgress, started: float) -> NoReturn:
    """Record the part of `epoch` done in last.pt, and raise TrainingStopped.

    Validation waits for the resumed run: stopping must not take longer than one iteration."""
    if run.dist.is_main:
        save_checkpoint(
            run.run_dir / "last.pt",
            **_checkpoint(run, epoch - 1),
            interrupted={**progress.to_dict(), "epoch": epoch, "seconds": time.perf_counter() - started},
        )
    where = f"after iteration {progress.iteration} of {run.iters_per_epoch} of epoch {epoch}"
    raise TrainingStopped(run.run_dir / "last.pt", where)


def _validate(run: TrainingRun, epoch: int, progress: EpochProgress, started: float) -> dict:
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
        "seconds": time.perf_counter() - started,
    }


def _save(run: TrainingRun, record: dict) -> None:
    """Add the epoch's record to the history; rank 0 writes best.pt (when it is the best), history and last.pt."""
    is_best = run.history.add(record)
    if run.dist.is_main:
        state = _checkpoint(run, record["epoch"])
        # last.pt is written last: when it names epoch e, best.pt and history include epoch e.
        if is_best:
            save_checkpoint(run.run_dir / "best.pt", **state)
        run.history.write()
        save_checkpoint(run.run_dir / "last.pt", **state)


def train_and_evaluate(
    config: Config,
    run_dir: Path,
    resume: dict | None = None,
    show_progress: bool = True,
    log: Log = PRINT,
    dist: Distributed | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> dict:
    """fit, then score best.pt with the config's evaluation protocol into run_dir/metrics.json.

    Returns the metrics summary, which also records the best epoch, the final evaluation's seconds
    and the hardware, so that a report can state the protocol of every number.
    """
    dist = dist or single_process(config.device)
    history = fit(
        config, run_dir, resume=resume, show_progress=show_progress, log=log, dist=dist, should_stop=should_stop
    )
    best = history.best()
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
        load_checkpoint(run_dir / "best.pt")["model"],
        config.data.val_split,
        show_progress=show_progress,
        dist=dist,
    )
    summary.update(
        epoch=best["epoch"],
        eval_seconds=time.perf_counter() - started,
        hardware=describe_hardware(dist.device, dist.world_size),
    )
    if dist.is_main:
        write_text_atomic(run_dir / "metrics.json", json.dumps(summary, indent=2) + "\n")
    return summary
