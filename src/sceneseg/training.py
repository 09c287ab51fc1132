"""Run the epochs of an experiment (fit) and score trained weights (evaluate_weights).

Reproducibility: the shuffle is a function of (seed, epoch), each sample's augmentation of (seed,
epoch, index) and the global random generators are reseeded from (seed, epoch, iteration, rank)
before every step, so a run resumed from any checkpoint (an epoch's end, or the iteration where a
stop signal was honoured) ends with exactly the weights and history of an uninterrupted run on the
CPU, with any number of DataLoader workers.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import platform
import random
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Subset

# build_* and data_root lived here first; other modules and users import them from here.
from .builders import build_dataset, build_model, build_optimizer, check_trainable, data_root, split_batch  # noqa: F401
from .checkpoint import load_checkpoint, save_checkpoint, write_text_atomic
from .config import Config, to_dict
from .distributed import Distributed, convert_sync_batchnorm
from .engine import EpochProgress, evaluate, segmentation_loss, train_one_epoch
from .errors import ConfigError, WeightsError
from .history import History, tensorboard_writer
from .inference import InferenceSettings, Precision, bf16_supported
from .stopping import TrainingStopped
from .transfer import init_from


def resolve_device(name: str) -> torch.device:
    return torch.device(("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name)


def resolve_precision(config: Config, device: torch.device | None = None) -> Precision:
    device = device or resolve_device(config.device)
    bf16 = bf16_supported(device) if config.train.bf16 is None else config.train.bf16
    return Precision(device, bf16=bf16, channels_last=config.train.channels_last)


def seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def step_seed(seed: int, epoch: int, iteration: int, rank: int) -> int:
    """Seed of the global generators (dropout) for one training step of one rank."""
    entropy = [seed % 2**64, epoch, iteration, rank]
    return int(np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint64)[0])


def _quiet(message: str) -> None:
    pass


def fit(config: Config, run_dir: Path, resume: dict | None = None, show_progress: bool = True,
        log: Callable[[str], None] = functools.partial(print, flush=True), dist: Distributed | None = None,
        should_stop: Callable[[], bool] = lambda: False) -> History:
    """Train `config` into `run_dir`, writing history, last.pt and best.pt after every epoch.

    Under torchrun (`dist` from distributed.init_from_env) every rank calls this; rank 0 alone
    writes files and logs. When `should_stop` turns true, the current iteration finishes, last.pt
    records the run up to it, and TrainingStopped is raised.
    """
    dist = dist or Distributed(device=resolve_device(config.device))
    precision = resolve_precision(config, dist.device)
    log, show_progress = (log, show_progress) if dist.is_main else (_quiet, False)
    seed_everything(config.seed)
    train_set = build_dataset(config.data, config.data.train_split, "train", seed=config.seed)
    val_set = build_dataset(config.data, config.data.val_split, "crop")
    if train_set.num_classes != config.model.num_classes:
        raise ConfigError(f"model.num_classes = {config.model.num_classes}, but dataset {config.data.dataset!r} "
                          f"has {train_set.num_classes} classes ({', '.join(train_set.class_names)})")
    batch, per_process = split_batch(config.train, len(train_set), dist)
    net = build_model(config.model)
    sync_bn = config.train.sync_bn and dist.enabled
    check_trainable(config, net, batch if sync_bn else per_process)
    if config.train.init_from and resume is None:
        init_from(net, config.train.init_from, log)
    if config.train.freeze_backbone:
        net.freeze_backbone()
    if sync_bn:
        net = convert_sync_batchnorm(net, dist.device)
    net = net.to(precision.device)
    if precision.channels_last:
        net = net.to(memory_format=torch.channels_last)
    # DDP broadcasts rank 0's weights on construction and averages gradients in backward.
    model = DistributedDataParallel(net, device_ids=[dist.local_rank] if dist.device.type == "cuda" else None) \
        if dist.enabled else net
    iters_per_epoch = len(train_set) // batch
    optimizer, scheduler = build_optimizer(net, config.train, iters_per_epoch)
    loss_fn = functools.partial(segmentation_loss, aux_weight=config.train.aux_weight)
    history = History(run_dir, tensorboard_writer(run_dir / "tensorboard") if dist.is_main else None)
    start_epoch, partial = 1, None
    if resume is not None:
        net.load_state_dict(resume["model"])
        optimizer.load_state_dict(resume["optimizer"])
        scheduler.load_state_dict(resume["scheduler"])
        history.records = list(resume["history"])
        start_epoch, partial = resume["epoch"] + 1, resume.get("interrupted")
        if partial is not None and partial["epoch"] != start_epoch:
            raise WeightsError(f"{run_dir / 'last.pt'}: its part-way epoch {partial['epoch']} does not follow its "
                               f"last complete epoch {resume['epoch']}; the file is inconsistent")
        where = f"iteration {partial['iteration']} of epoch {start_epoch}" if partial else f"epoch {resume['epoch']}"
        log(f"resuming {run_dir} after {where}")
    log(f"training {config.name}: {len(train_set)} train / {len(val_set)} val frames, {config.train.epochs} epochs "
        f"on {precision.device} (bf16={precision.bf16}), global batch {batch}"
        + (f" = {dist.world_size} processes x {per_process}" if dist.enabled else ""))
    if dist.is_main:  # written once every input has been checked
        write_text_atomic(run_dir / "data_split.json", json.dumps(
            {split: [str(image) for image, _ in ds.pairs] for split, ds in (("train", train_set), ("val", val_set))},
            indent=1) + "\n")
    val_loader = DataLoader(Subset(val_set, dist.shard(len(val_set))), batch_size=config.eval.batch_size,
                            num_workers=config.data.num_workers)
    for epoch in range(start_epoch, config.train.epochs + 1):
        started = time.perf_counter() - (partial["seconds"] if partial else 0.0)
        progress = EpochProgress.from_dict(partial, config.model.num_classes, dist) if partial else None
        partial = None
        if progress is None or progress.iteration < iters_per_epoch:
            train_set.set_epoch(epoch)
            done = progress.iteration if progress else 0
            sampler = dist.train_sampler(train_set, config.seed * 1000, epoch, done, per_process)
            # The generator only seeds the workers (the sampler shuffles): from (seed, epoch) too.
            loader = DataLoader(train_set, batch_size=per_process, sampler=sampler, drop_last=True,
                                generator=torch.Generator().manual_seed(config.seed * 1000 + epoch),
                                num_workers=config.data.num_workers, pin_memory=precision.device.type == "cuda")
            progress = train_one_epoch(
                model, loader, optimizer, scheduler, precision, config.model.num_classes, epoch, loss_fn=loss_fn,
                show_progress=show_progress, should_stop=should_stop, progress=progress, dist=dist,
                before_iteration=lambda it: seed_everything(step_seed(config.seed, epoch, it, dist.rank)))
        else:  # stopped after the epoch's last iteration: only its validation is left
            progress.confusion.all_reduce()
        state = {"config": to_dict(config), "model": net.state_dict(), "optimizer": optimizer.state_dict(),
                 "scheduler": scheduler.state_dict(), "history": history.records,
                 "class_names": list(val_set.class_names)}
        if progress.stopped:
            # Validation waits for the resumed run: stopping must not take longer than one iteration.
            where = f"after iteration {progress.iteration} of {iters_per_epoch} of epoch {epoch}"
            if dist.is_main:
                save_checkpoint(run_dir / "last.pt", **state, epoch=epoch - 1, interrupted={
                    **progress.to_dict(), "epoch": epoch, "seconds": time.perf_counter() - started})
            raise TrainingStopped(run_dir / "last.pt", where)
        dist.broadcast_buffers(net)  # without SyncBN each rank's BatchNorm statistics drift apart
        dist.write_debug_digest(f"epoch{epoch}", net.state_dict())
        val_loss, val_cm = evaluate(net, val_loader, precision, config.model.num_classes,
                                    show_progress=show_progress, dist=dist)
        val = val_cm.summary(val_set.class_names)
        record = {
            "epoch": epoch, "train_loss": progress.loss,
            "train_mIoU": progress.confusion.summary(val_set.class_names)["mIoU"],
            "val_loss": val_loss, "val_mIoU": val["mIoU"], "val_mAcc": val["mAcc"], "val_allAcc": val["allAcc"],
            "lr": scheduler.get_last_lr()[0], "seconds": time.perf_counter() - started,
        }
        is_best = history.add(record)
        if dist.is_main:
            state.update(history=history.records, epoch=epoch)
            # last.pt is written last: when it names epoch e, best.pt and history include epoch e.
            if is_best:
                save_checkpoint(run_dir / "best.pt", **state)
            history.write()
            save_checkpoint(run_dir / "last.pt", **state)
        remaining = (config.train.epochs - epoch) * record["seconds"]
        log(f"{history.format_row(record)}  ETA {time.strftime('%H:%M:%S', time.gmtime(remaining))}")
        if dist.any(should_stop()):
            raise TrainingStopped(run_dir / "last.pt", f"after epoch {epoch}")
    dist.barrier()  # the other ranks may read best.pt next
    return history


def train_and_evaluate(config: Config, run_dir: Path, resume: dict | None = None, show_progress: bool = True,
                       log: Callable[[str], None] = functools.partial(print, flush=True),
                       dist: Distributed | None = None, should_stop: Callable[[], bool] = lambda: False) -> dict:
    """fit, then score best.pt with the config's evaluation protocol into run_dir/metrics.json.

    Returns the metrics summary, which also records the best epoch, the final evaluation's seconds
    and the hardware, so that a report can state the protocol of every number.
    """
    dist = dist or Distributed(device=resolve_device(config.device))
    history = fit(config, run_dir, resume=resume, show_progress=show_progress, log=log, dist=dist,
                  should_stop=should_stop)
    best = history.best()
    if dist.is_main:
        log(f"\nevaluating best.pt (epoch {best['epoch']}) on {config.data.val_split} ({config.eval.mode})")
    started = time.perf_counter()
    summary = evaluate_weights(config, load_checkpoint(run_dir / "best.pt")["model"], config.data.val_split,
                               show_progress=show_progress, dist=dist)
    summary.update(epoch=best["epoch"], eval_seconds=time.perf_counter() - started,
                   hardware=describe_hardware(dist.device, dist.world_size))
    if dist.is_main:
        write_text_atomic(run_dir / "metrics.json", json.dumps(summary, indent=2) + "\n")
    return summary


def describe_hardware(device: torch.device, processes: int = 1) -> str:
    """E.g. "CPU: Intel(R) Xeon(R) Platinum 8488C, 2 threads" or "2 x NVIDIA H100 80GB HBM3"."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = platform.processor() or platform.machine()
        try:  # Linux names the CPU model in /proc/cpuinfo; platform.processor() often does not
            name = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                        if line.startswith("model name"))
        except (OSError, StopIteration):
            pass
        name = f"CPU: {name}, {torch.get_num_threads()} threads"
    return f"{processes} x {name}" if processes > 1 else name


def evaluate_weights(config: Config, model_state: dict, split: str, mode: str | None = None,
                     show_progress: bool = True, dist: Distributed | None = None) -> dict:
    """Metrics summary (see ConfusionMatrix.summary) of `model_state` on `split`.

    Modes "whole" and "slide" score full frames against their full-resolution labels (see
    inference.predict_probs); "crop" is the per-epoch protocol. Under torchrun each rank scores
    its share of the frames and the confusion matrices are summed.
    """
    dist = dist or Distributed(device=resolve_device(config.device))
    precision = resolve_precision(config, dist.device)
    mode = mode or config.eval.mode
    dataset = build_dataset(config.data, split, "crop" if mode == "crop" else "whole")
    model = build_model(dataclasses.replace(config.model, pretrained=None)).to(precision.device)
    model.load_state_dict(model_state)
    if precision.channels_last:
        model = model.to(memory_format=torch.channels_last)
    settings = None if mode == "crop" else InferenceSettings(
        mode=mode, short_side=config.eval.short_side, crop_size=config.eval.crop_size,
        stride_rate=config.eval.stride_rate, flip=config.eval.flip, scales=config.eval.scales)
    # Whole frames of different sizes cannot share a batch.
    batch = config.eval.batch_size if mode == "crop" or len(set(dataset.sizes)) == 1 else 1
    loader = DataLoader(Subset(dataset, dist.shard(len(dataset))), batch_size=batch,
                        num_workers=config.data.num_workers)
    loss, confusion = evaluate(model, loader, precision, config.model.num_classes, settings,
                               show_progress and dist.is_main, desc=f"evaluate {split} ({mode})", dist=dist)
    summary = confusion.summary(dataset.class_names)
    summary.update(loss=loss, split=split, mode=mode, frames=len(dataset))
    return summary
