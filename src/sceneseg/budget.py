"""train.minutes: the epochs of a run sized to a time budget on the machine at hand.

A config named for 15 minutes of training cannot say how many epochs that is: the same epoch took
21 s on one development VM and 32 s on another, and a GPU is a hundred times faster. With
train.minutes set, `size_to_budget` trains the first steps of epoch 1 exactly as the run will (its
loader and workers, loss, optimizer and precision), times them and one validation pass, and puts
the weights back; the epochs that fit the budget at that pace (planned 5 % slower, as runs have
been) then replace train.epochs, which caps them, and the learning-rate schedule is built again
for that count. The probe leaves nothing behind: weights and BatchNorm statistics are restored,
the optimizer is new, the data order is a function of (seed, epoch) and every step reseeds the
random generators. So the run is the one `train.epochs=N train.minutes=null` trains (to the bit
in one CPU process, tests/test_budget.py; under torchrun or cuDNN's autotuner, up to the order of
float sums that the probe's first steps settle), and its config.yaml records N. A stop signal
during the probe ends the command before anything is written.

The budget counts the epochs as history.json's seconds sum them (training steps, loading, each
epoch's validation on its crops; checkpoints are written in the background, in hundredths of a
second here, and not estimated) and the probe; the final evaluation comes on top. A
resumed run keeps the epochs its budget gave it (checkpoint.sized_config).
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import math
import time
from collections.abc import Callable

import numpy as np
import torch

from .engine import evaluate, train_one_epoch
from .errors import ConfigError
from .optimizer import build_optimizer
from .phases import synchronize
from .stopping import TrainingStopped
from .training_run import TrainingRun, epoch_loss

PROBE_STEPS = 12  # at most: an epoch of fewer steps is timed whole
WARM_STEPS = 3  # not the pace: the first steps also pick kernels, fill the allocator and start workers
# Epochs are planned this much longer than the probe's estimate: on the 2-core development VM a
# run's epochs took 1-5 % longer than its probe predicted (benchmarks/budget_accuracy.py, README
# "Training for a time budget"), and a budget should end within its minutes rather than past them.
PLAN_MARGIN = 1.05


def size_to_budget(run: TrainingRun, clock: Callable[[], float] = time.perf_counter) -> None:
    """Set run.config.train.epochs to what fits train.minutes here, and rebuild the optimizer for it."""
    train = run.config.train
    steps = min(PROBE_STEPS, run.iters_per_epoch)
    run.log(f"train.minutes={train.minutes:g}: timing {steps} training steps to size the epochs")
    started = clock()
    durations = probe_steps(run, steps, clock)
    local = [mean_pace(durations), probe_validation(run, clock), clock() - started]
    # Every rank sizes the run from the same averaged figures: one epoch more on one rank would
    # leave the others waiting in a collective, and different schedules would part the replicas.
    pace, val_seconds, probe_seconds = agreed(run, local)
    epoch_seconds = pace * run.iters_per_epoch + val_seconds
    epochs = budget_epochs(train.minutes, probe_seconds, epoch_seconds * PLAN_MARGIN, train.epochs)
    run.config = dataclasses.replace(run.config, train=dataclasses.replace(train, epochs=epochs))
    run.optimizer, run.scheduler = build_optimizer(run.net, run.config.train, run.iters_per_epoch)
    run.budget = {
        "minutes": train.minutes,
        "epochs": epochs,
        "cap": train.epochs,
        "probe_seconds": probe_seconds,
        "step_seconds": durations,  # this process's, warm ones first
        "warm_steps": min(WARM_STEPS, steps - 1),
        "pace": pace,
        "val_seconds": val_seconds,
        "epoch_seconds": epoch_seconds,
        "plan_margin": PLAN_MARGIN,
    }
    capped = f" (capped by train.epochs={train.epochs})" if epochs == train.epochs else ""
    run.log(
        f"train.minutes={train.minutes:g}: {epochs} epochs{capped} of about {epoch_seconds:.1f} s "
        f"({run.iters_per_epoch} steps of {pace:.3f} s and a {val_seconds:.1f}-s validation), "
        f"{epochs * epoch_seconds / 60:.1f} min (planned with {PLAN_MARGIN - 1:.0%} to spare) after a "
        f"{probe_seconds:.0f}-s probe; the same run without a budget: train.minutes=null train.epochs={epochs}"
    )


def budget_epochs(minutes: float, probe_seconds: float, epoch_seconds: float, cap: int) -> int:
    """The whole epochs of `epoch_seconds` that fit in `minutes` after the probe, at most `cap`."""
    fits = math.floor((minutes * 60 - probe_seconds) / epoch_seconds)
    if fits < 1:
        raise ConfigError(
            f"train.minutes = {minutes:g}: one epoch takes about {epoch_seconds:.0f} s on this machine "
            f"(after a {probe_seconds:.0f}-s timing probe), more than the budget; give more minutes, or "
            "train.minutes=null and a number of train.epochs"
        )
    return min(fits, cap)


def probe_steps(run: TrainingRun, steps: int, clock: Callable[[], float] = time.perf_counter) -> list[float]:
    """Seconds each of the first `steps` training steps of epoch 1 took (loading included). The
    weights and BatchNorm statistics are put back as they were; the optimizer's state is not
    (rebuild it). A stop request ends the probe with TrainingStopped: nothing is written yet."""
    saved = copy.deepcopy(run.net.state_dict())
    marks: list[float] = []
    run.train_loader.sampler.set_epoch(1, 0)
    progress = train_one_epoch(
        run.model,
        itertools.islice(run.train_loader, steps),
        run.optimizer,
        run.scheduler,
        run.precision,
        run.config.model.num_classes,
        1,
        loss_fn=epoch_loss(run, 1),
        show_progress=False,
        should_stop=run.should_stop,
        dist=run.dist,
        before_iteration=lambda iteration: marks.append(clock()),
    )
    synchronize(run.precision.device)
    marks.append(clock())
    run.net.load_state_dict(saved)
    if progress.stopped:  # every rank learns of a stop request in the step's all-reduce
        raise TrainingStopped(None, "during the train.minutes probe, before its first epoch")
    return np.diff(marks).tolist()


def probe_validation(run: TrainingRun, clock: Callable[[], float] = time.perf_counter) -> float:
    """Seconds of one per-epoch validation pass (history.json's epoch seconds include it)."""
    started = clock()
    evaluate(run.net, run.val_loader, run.precision, run.config.model.num_classes, show_progress=False, dist=run.dist)
    synchronize(run.precision.device)
    return clock() - started


def mean_pace(durations: list[float]) -> float:
    """Seconds a step: the mean of the steps after the warm ones (a slow step counts, as in an epoch)."""
    return float(np.mean(durations[min(WARM_STEPS, len(durations) - 1) :]))


def agreed(run: TrainingRun, values: list[float]) -> list[float]:
    """`values` averaged over the processes, so that all of them size the run alike."""
    summed = run.dist.all_reduce_sum(torch.tensor(values, dtype=torch.float64, device=run.precision.device))
    return [float(v) / run.dist.world_size for v in summed.tolist()]
