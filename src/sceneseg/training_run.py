"""The pieces of one training run: built from a config by `prepare` (optimizer, batch split and
the checks that the network fits the data among them), continued from last.pt by `restore`.
training.fit runs the epochs over them."""

from __future__ import annotations

import functools
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Subset

from .builders import build_train_val, dataset_classes
from .checkpoint import write_text_atomic
from .class_weights import (
    CLASS_WEIGHTS_FILE,
    check_class_weight_mult,
    check_recorded_weights,
    format_class_weights,
    train_class_weights,
    weights_record,
)
from .config import Config, TrainConfig, to_yaml
from .data import SegmentationDataset
from .distributed import Distributed
from .errors import ConfigError, WeightsError
from .evaluation import resolve_precision
from .history import History, tensorboard_writer
from .inference import Precision, enable_gpu_speedups
from .loading import PreparedBatches, train_loader
from .losses import build_head_loss, segmentation_loss
from .models import build_model
from .optimizer import build_optimizer
from .sampling import Sampling, describe_sampling, prepare_sampling
from .sync_batchnorm import convert_sync_batchnorm
from .transfer import init_from

Log = Callable[[str], None]


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python's, NumPy's and torch's global generators; returns a generator seeded alike."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def seed_step(seed: int, epoch: int, iteration: int, rank: int) -> None:
    """Reseed the global generators (dropout draws from them) for one training step of one rank."""
    entropy = [seed % 2**64, epoch, iteration, rank]
    seed_everything(int(np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint64)[0]))


@dataclass
class TrainingRun:
    """Everything the epochs of one run use, and the run's own log and stop request."""

    config: Config
    run_dir: Path
    dist: Distributed
    precision: Precision
    train_set: SegmentationDataset
    val_set: SegmentationDataset
    train_loader: DataLoader  # the run's one: sampler.set_epoch before each epoch (loading.py)
    val_loader: PreparedBatches  # the per-epoch val crops, on the device
    batch: int  # the global batch
    per_process: int  # each process's share of it
    iters_per_epoch: int  # global batches per epoch (drop_last)
    net: torch.nn.Module  # the network whose weights are saved
    model: torch.nn.Module  # what trains: the network, or its DDP wrapper under torchrun
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    history: History
    log: Log
    show_progress: bool
    should_stop: Callable[[], bool]
    class_weights: torch.Tensor | None = None  # loss.class_weights for this train split (losses.py)
    sampling: Sampling = Sampling()  # repeat factors and rare classes of this train split (sampling.py)
    budget: dict | None = None  # train.minutes' probe and the epochs it gave (budget.py), for budget.json


def prepare(
    config: Config,
    run_dir: Path,
    dist: Distributed,
    resuming: bool,
    log: Log,
    show_progress: bool,
    should_stop: Callable[[], bool],
) -> TrainingRun:
    """Build every piece of the run from `config`, checking that they fit together."""
    precision = resolve_precision(config, dist.device)
    enable_gpu_speedups(precision.device, fixed_input_size=True)  # every training batch is crop_size square
    seed_everything(config.seed)  # before the network: its initial weights come from the seed
    check_class_weight_mult(config.loss, dataset_classes(config.data)[0])
    train_set, val_set = _datasets(config)
    sampling = prepare_sampling(config.data, train_set)
    batch, per_process = split_batch(config.train, len(train_set), dist)
    iters_per_epoch = sampling.epoch_length(len(train_set)) // batch
    net, model = _network(config, dist, precision, batch, per_process, resuming, log)
    optimizer, scheduler = build_optimizer(net, config.train, iters_per_epoch)
    train = train_loader(
        train_set, dist, config.seed * 1000, per_process, sampling.factors, precision.device, config.data.num_workers
    )
    val_loader = PreparedBatches(Subset(val_set, dist.shard(len(val_set))), config.eval.batch_size, precision.device)
    history = History(run_dir)  # its tensorboard log opens with the run's first files (record_inputs)
    return TrainingRun(
        config,
        run_dir,
        dist,
        precision,
        train_set,
        val_set,
        train,
        val_loader,
        batch,
        per_process,
        iters_per_epoch,
        net,
        model,
        optimizer,
        scheduler,
        history,
        log,
        show_progress,
        should_stop,
        # Counted from the train split's labels every time: a resumed run recomputes the same ones.
        class_weights=train_class_weights(config.loss, train_set, sampling.seen_counts),
        sampling=sampling,
    )


def epoch_loss(run: TrainingRun, epoch: int) -> Callable[..., torch.Tensor]:
    """The loss of epoch `epoch`'s steps (the Lovász term may start at a later epoch; losses.py)."""
    head_loss = build_head_loss(run.config.loss, run.class_weights, epoch, run.dist.world_size)
    return functools.partial(segmentation_loss, aux_weight=run.config.train.aux_weight, head_loss=head_loss)


def _datasets(config: Config) -> tuple[SegmentationDataset, SegmentationDataset]:
    """The train (augmented) and val (centre crops) datasets of the run."""
    train_set, val_set = build_train_val(config.data, seed=config.seed)
    if train_set.num_classes != config.model.num_classes:
        raise ConfigError(
            f"model.num_classes = {config.model.num_classes}, but dataset {config.data.dataset!r} "
            f"has {train_set.num_classes} classes ({', '.join(train_set.class_names)})"
        )
    return train_set, val_set


def _network(
    config: Config, dist: Distributed, precision: Precision, batch: int, per_process: int, resuming: bool, log: Log
) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The network, initialised, frozen and synchronised as the config says, and the module that
    trains it: the network itself, or its DDP wrapper under torchrun."""
    net = build_model(config.model)
    sync_bn = config.train.sync_bn and dist.enabled
    check_trainable(config, net, batch if sync_bn else per_process)
    if config.train.init_from and not resuming:  # a resumed run has weights of its own
        init_from(net, config.train.init_from, log)
    if config.train.freeze_backbone:
        net.freeze_backbone()
    if sync_bn:
        net = convert_sync_batchnorm(net, dist.device)
    net = net.to(precision.device)
    if precision.channels_last:
        net = net.to(memory_format=torch.channels_last)
    if not dist.enabled:
        return net, net
    # DDP broadcasts rank 0's weights on construction and averages gradients in backward.
    return net, DistributedDataParallel(net, device_ids=[dist.local_rank] if dist.device.type == "cuda" else None)


def split_batch(config: TrainConfig, frames: int, dist: Distributed) -> tuple[int, int]:
    """(global batch, batch per process): train.batch_size is the global batch, shared out evenly,
    and shrunk to what `frames` allows (drop_last: BatchNorm dislikes a batch of one)."""
    world = dist.world_size
    if config.batch_size % world:
        raise ConfigError(
            f"train.batch_size = {config.batch_size}: it is the global batch, split evenly over "
            f"the {world} processes; expected a multiple of {world}"
        )
    if frames < world:
        raise ConfigError(f"the train split has {frames} frame(s), fewer than the {world} processes")
    batch = min(config.batch_size, frames - frames % world)
    return batch, batch // world


def check_trainable(config: Config, model: torch.nn.Module, batchnorm_batch: int) -> None:
    """Shape rules a config check cannot see: they depend on the built model's strides and bins."""
    crop = config.data.crop_size
    stride = getattr(getattr(model, "backbone", None), "output_stride", 32)
    if getattr(model, "zoom_factor", 8) != 8:
        raise ConfigError(
            f"model.zoom_factor = {model.zoom_factor}: training needs 8 (logits at the label's size); "
            "other factors are for inference only"
        )
    ppm = getattr(model, "ppm", None)
    if ppm is not None and crop // stride < max(ppm.bins):
        raise ConfigError(
            f"data.crop_size = {crop}: PSPNet's pyramid pooling needs a layer4 map of at least "
            f"{max(ppm.bins)}x{max(ppm.bins)} (the largest of model.bins) at output stride {stride}, "
            f"so expected data.crop_size >= {stride * max(ppm.bins)}"
        )
    # The smallest map a BatchNorm normalises: PSPNet's smallest pooling bin, DeepLabV3+'s image
    # pooling (1x1 whatever the crop; its atrous branches work on maps of any size), else layer4's.
    if ppm is not None:
        cells = min(ppm.bins) ** 2
    elif getattr(model, "aspp", None) is not None:
        cells = 1
    else:
        cells = max(crop // stride, 1) ** 2
    if batchnorm_batch * cells < 2:
        raise ConfigError(
            f"train.batch_size = {config.train.batch_size}: BatchNorm would normalise over "
            f"{batchnorm_batch} frame(s) of a {int(cells**0.5)}x{int(cells**0.5)} map, a single "
            "value per channel; expected at least 2 frames per process (or train.sync_bn=true)"
        )


def restore(run: TrainingRun, resume: dict | None) -> tuple[int, dict | None]:
    """Load `resume` (last.pt's content) into the run; returns the first epoch to run and the part
    of it done before a stop (None: the epoch starts afresh)."""
    if resume is None:
        return 1, None
    run.net.load_state_dict(resume["model"])
    run.optimizer.load_state_dict(resume["optimizer"])
    run.scheduler.load_state_dict(resume["scheduler"])
    run.history.records = list(resume["history"])
    start_epoch, partial = resume["epoch"] + 1, resume.get("interrupted")
    if partial is not None and partial["epoch"] != start_epoch:
        raise WeightsError(
            f"{run.run_dir / 'last.pt'}: its part-way epoch {partial['epoch']} does not follow its "
            f"last complete epoch {resume['epoch']}; the file is inconsistent"
        )
    check_recorded_weights(run.run_dir, run.config.loss, run.val_set.class_names, run.class_weights)
    where = f"iteration {partial['iteration']} of epoch {start_epoch}" if partial else f"epoch {resume['epoch']}"
    run.log(f"resuming {run.run_dir} after {where}")
    return start_epoch, partial


def describe(run: TrainingRun) -> str:
    """What trains where, for the log (and the class weights, if any, on a line of their own)."""
    config, dist = run.config, run.dist
    text = (
        f"training {config.name}: {len(run.train_set)} train / {len(run.val_set)} val frames, "
        f"{config.train.epochs} epochs on {run.precision.device} (bf16={run.precision.bf16}), global batch "
        f"{run.batch}" + (f" = {dist.world_size} processes x {run.per_process}" if dist.enabled else "")
    )
    sampling = describe_sampling(config.data, run.sampling, run.val_set.class_names)
    weights = None if run.class_weights is None else format_class_weights(run.val_set.class_names, run.class_weights)
    return "\n".join(line for line in (text, sampling, weights) if line)


def record_inputs(run: TrainingRun) -> None:
    """Write the config, the class weights (if any) and the frames of each split into the run folder,
    and open its tensorboard log (rank 0 calls this once every check has passed)."""
    run.history.writer = tensorboard_writer(run.run_dir / "tensorboard")
    write_text_atomic(run.run_dir / "config.yaml", to_yaml(run.config))
    if run.class_weights is not None:
        record = weights_record(run.config.loss, run.val_set.class_names, run.class_weights)
        write_text_atomic(run.run_dir / CLASS_WEIGHTS_FILE, record)
    if run.budget is not None:
        write_text_atomic(run.run_dir / "budget.json", json.dumps(run.budget, indent=1) + "\n")
    splits = {"train": run.train_set, "val": run.val_set}
    write_text_atomic(
        run.run_dir / "data_split.json",
        json.dumps({split: [str(image) for image, _ in ds.pairs] for split, ds in splits.items()}, indent=1) + "\n",
    )
