"""Build the pieces an experiment names (datasets, model, optimizer) and run the epochs.

Reproducibility: every random source is reseeded from (seed, epoch) at the start of each epoch and
each sample's augmentation from (seed, epoch, index), so a run resumed at an epoch boundary ends with
exactly the weights and history of an uninterrupted run on the CPU.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import random
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from .config import SAMPLE, Config, DataConfig, ModelConfig, TrainConfig, to_dict
from .checkpoint import save_checkpoint, write_text_atomic
from .data import SAMPLE_ROOT, CamVid, FolderDataset, KittiRoad, SegmentationDataset, train_transform, val_transform, whole_transform
from .engine import evaluate, segmentation_loss, train_one_epoch
from .inference import InferenceSettings, Precision, bf16_supported
from .errors import ConfigError
from .history import History
from .models import MODELS
from .transfer import init_from


def data_root(config: DataConfig) -> Path:
    return SAMPLE_ROOT if config.root == SAMPLE else Path(config.root)


def _transform(config: DataConfig, mode: str):
    if mode == "train" and config.data_aug:
        return train_transform(config.short_side, config.crop_size, (config.scale_min, config.scale_max),
                               config.rotate, config.blur)
    if mode in ("train", "crop"):
        return val_transform(config.short_side, config.crop_size)
    return whole_transform(None)


def build_dataset(config: DataConfig, split: str, mode: str, seed: int = 0) -> SegmentationDataset:
    """`mode`: "train" (augmented, or val transform when data_aug is off), "crop", or "whole"
    (frames at their own size: evaluation resizes them itself)."""
    transform, root = _transform(config, mode), data_root(config)
    resize = tuple(config.resize) if config.resize else None
    list_file = {"train": config.train_list, "val": config.val_list}.get(split)
    common = dict(transform=transform, cache=config.cache, seed=seed)
    used = {"camvid": ("train_list", "val_list"),
            "kitti_road": ("resize", "label_policy", "split_mode", "val_ratio", "split_seed"),
            "folder": ("train_list", "val_list", "resize", "class_names", "palette", "images", "masks")}
    if config.dataset not in used:
        raise ConfigError(f"data.dataset = {config.dataset!r}: expected one of {', '.join(used)}")
    for key in sorted(set().union(*used.values())):
        if getattr(config, key) is not None and key not in used[config.dataset]:
            raise ConfigError(f"data.{key} does not apply to dataset {config.dataset!r}; set it to null")
    if config.dataset == "camvid":
        return CamVid(root, split, list_file=root / list_file if list_file else None, **common)
    if config.dataset == "kitti_road":
        return KittiRoad(root, split, policy=config.label_policy or "kitti", split_mode=config.split_mode or "cs6476",
                         val_ratio=config.val_ratio or 0.1, split_seed=config.split_seed or 0, resize=resize, **common)
    if not config.class_names:
        raise ConfigError("data.class_names: the folder dataset needs the list of class names")
    return FolderDataset(root, config.class_names, images=config.images or "images", masks=config.masks or "masks",
                         palette=config.palette, list_file=list_file, resize=resize, **common)


def build_model(config: ModelConfig) -> torch.nn.Module:
    """Call the factory `MODELS[config.name]` with the options set (not null) in `config`."""
    if config.name not in MODELS:
        raise ConfigError(f"model.name = {config.name!r}: expected one of {', '.join(sorted(MODELS))}")
    factory = MODELS[config.name]
    options = {k: v for k, v in dataclasses.asdict(config).items() if k != "name" and v is not None}
    accepted = inspect.signature(factory).parameters
    foreign = sorted(set(options) - set(accepted))
    if foreign:
        raise ConfigError(f"model.{foreign[0]} does not apply to model {config.name!r}; set it to null "
                          f"(its options: {', '.join(k for k in accepted if k != 'num_classes')})")
    return factory(**options)


def build_optimizer(model: torch.nn.Module, config: TrainConfig, iters_per_epoch: int):
    """SGD with the head at `head_lr_mult` times the backbone's rate, and a per-iteration poly schedule
    (after an optional linear warm-up, which keeps a randomly initialised net from blowing up)."""
    backbone = [p for n, p in model.named_parameters() if n.startswith("backbone.") and p.requires_grad]
    head = [p for n, p in model.named_parameters() if not n.startswith("backbone.") and p.requires_grad]
    optimizer = torch.optim.SGD(
        [{"params": backbone, "lr": config.lr * config.backbone_lr_mult},
         {"params": head, "lr": config.lr * config.head_lr_mult}],
        lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay,
    )
    max_iter = config.epochs * iters_per_epoch

    def factor(it: int) -> float:
        warmup = min(1.0, (it + 1) / config.warmup_iters) if config.warmup_iters else 1.0
        return warmup * max(0.0, 1.0 - it / max_iter) ** config.poly_power

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    return optimizer, scheduler


def resolve_precision(config: Config) -> Precision:
    name = config.device
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    bf16 = bf16_supported(device) if config.train.bf16 is None else config.train.bf16
    return Precision(device, bf16=bf16, channels_last=config.train.channels_last)


def seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def fit(config: Config, run_dir: Path, resume: dict | None = None, show_progress: bool = True,
        log=functools.partial(print, flush=True)) -> History:
    """Train `config` into `run_dir`, writing history, last.pt and best.pt after every epoch."""
    precision = resolve_precision(config)
    seed_everything(config.seed)
    train_set = build_dataset(config.data, config.data.train_split, "train", seed=config.seed)
    val_set = build_dataset(config.data, config.data.val_split, "crop")
    if train_set.num_classes != config.model.num_classes:
        raise ConfigError(f"model.num_classes = {config.model.num_classes}, but dataset {config.data.dataset!r} "
                          f"has {train_set.num_classes} classes ({', '.join(train_set.class_names)})")
    write_text_atomic(run_dir / "data_split.json", json.dumps(
        {split: [str(image) for image, _ in ds.pairs] for split, ds in (("train", train_set), ("val", val_set))},
        indent=1) + "\n")
    model = build_model(config.model)
    if config.train.init_from and resume is None:
        init_from(model, config.train.init_from, log)
    if config.train.freeze_backbone:
        model.freeze_backbone()
    model = model.to(precision.device)
    if precision.channels_last:
        model = model.to(memory_format=torch.channels_last)
    batch = min(config.train.batch_size, len(train_set))
    iters_per_epoch = len(train_set) // batch  # drop_last: BatchNorm dislikes a batch of one
    optimizer, scheduler = build_optimizer(model, config.train, iters_per_epoch)
    loss_fn = functools.partial(segmentation_loss, aux_weight=config.train.aux_weight)
    history = History(run_dir)
    start_epoch = 1
    if resume is not None:
        model.load_state_dict(resume["model"])
        optimizer.load_state_dict(resume["optimizer"])
        scheduler.load_state_dict(resume["scheduler"])
        history.records = list(resume["history"])
        start_epoch = resume["epoch"] + 1
        log(f"resuming {run_dir} after epoch {resume['epoch']}")
    log(f"training {config.name}: {len(train_set)} train / {len(val_set)} val frames, "
        f"{config.train.epochs} epochs on {precision.device} (bf16={precision.bf16})")
    for epoch in range(start_epoch, config.train.epochs + 1):
        started = time.perf_counter()
        generator = seed_everything(config.seed * 1000 + epoch)
        train_set.set_epoch(epoch)
        loader = DataLoader(train_set, batch_size=batch, shuffle=True, drop_last=True, generator=generator,
                            num_workers=config.data.num_workers, pin_memory=precision.device.type == "cuda")
        train_loss, train_cm = train_one_epoch(model, loader, optimizer, scheduler, precision,
                                               config.model.num_classes, epoch, loss_fn=loss_fn,
                                               show_progress=show_progress)
        val_loader = DataLoader(val_set, batch_size=config.eval.batch_size, num_workers=config.data.num_workers)
        val_loss, val_cm = evaluate(model, val_loader, precision, config.model.num_classes,
                                    show_progress=show_progress)
        val = val_cm.summary(val_set.class_names)
        record = {
            "epoch": epoch, "train_loss": train_loss, "train_mIoU": train_cm.summary(val_set.class_names)["mIoU"],
            "val_loss": val_loss, "val_mIoU": val["mIoU"], "val_mAcc": val["mAcc"], "val_allAcc": val["allAcc"],
            "lr": scheduler.get_last_lr()[0], "seconds": time.perf_counter() - started,
        }
        is_best = history.add(record)
        state = {"config": to_dict(config), "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                 "scheduler": scheduler.state_dict(), "epoch": epoch, "history": history.records,
                 "class_names": list(val_set.class_names)}
        save_checkpoint(run_dir / "last.pt", **state)
        if is_best:
            save_checkpoint(run_dir / "best.pt", **state)
        history.write()
        remaining = (config.train.epochs - epoch) * record["seconds"]
        log(f"{history.format_row(record)}  ETA {time.strftime('%H:%M:%S', time.gmtime(remaining))}")
    return history


def evaluate_weights(config: Config, model_state: dict, split: str, mode: str | None = None,
                     show_progress: bool = True) -> dict:
    """Metrics summary (see ConfusionMatrix.summary) of `model_state` on `split`.

    Modes "whole" and "slide" score full frames against their full-resolution labels (see
    inference.predict_probs); "crop" is the per-epoch protocol.
    """
    precision = resolve_precision(config)
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
    loader = DataLoader(dataset, batch_size=batch, num_workers=config.data.num_workers)
    loss, confusion = evaluate(model, loader, precision, config.model.num_classes, settings, show_progress,
                               desc=f"evaluate {split} ({mode})")
    summary = confusion.summary(dataset.class_names)
    summary.update(loss=loss, split=split, mode=mode, frames=len(dataset))
    return summary
