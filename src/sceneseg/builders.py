"""Build the pieces an experiment names (datasets, model, optimizer), and check they fit together.

Checks that need the built objects (the dataset's size, the model's output stride) live here; the
config's own range checks are in config.validate.
"""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path

import torch

from .config import SAMPLE, Config, DataConfig, ModelConfig, TrainConfig
from .data import SAMPLE_ROOT, CamVid, FolderDataset, KittiRoad, SegmentationDataset, train_transform, val_transform, whole_transform
from .distributed import Distributed
from .errors import ConfigError
from .models import MODELS


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


def split_batch(config: TrainConfig, frames: int, dist: Distributed) -> tuple[int, int]:
    """(global batch, batch per process): train.batch_size is the global batch, shared out evenly,
    and shrunk to what `frames` allows (drop_last: BatchNorm dislikes a batch of one)."""
    world = dist.world_size
    if config.batch_size % world:
        raise ConfigError(f"train.batch_size = {config.batch_size}: it is the global batch, split evenly over "
                          f"the {world} processes; expected a multiple of {world}")
    if frames < world:
        raise ConfigError(f"the train split has {frames} frame(s), fewer than the {world} processes")
    batch = min(config.batch_size, frames - frames % world)
    return batch, batch // world


def check_trainable(config: Config, model: torch.nn.Module, batchnorm_batch: int) -> None:
    """Shape rules a config check cannot see: they depend on the built model's strides and bins."""
    crop = config.data.crop_size
    stride = getattr(getattr(model, "backbone", None), "output_stride", 32)
    if getattr(model, "zoom_factor", 8) != 8:
        raise ConfigError(f"model.zoom_factor = {model.zoom_factor}: training needs 8 (logits at the label's size); "
                          "other factors are for inference only")
    ppm = getattr(model, "ppm", None)
    if ppm is not None and crop // stride < max(ppm.bins):
        raise ConfigError(f"data.crop_size = {crop}: PSPNet's pyramid pooling needs a layer4 map of at least "
                          f"{max(ppm.bins)}x{max(ppm.bins)} (the largest of model.bins) at output stride {stride}, "
                          f"so expected data.crop_size >= {stride * max(ppm.bins)}")
    cells = min(ppm.bins) ** 2 if ppm is not None else max(crop // stride, 1) ** 2
    if batchnorm_batch * cells < 2:
        raise ConfigError(f"train.batch_size = {config.train.batch_size}: BatchNorm would normalise over "
                          f"{batchnorm_batch} frame(s) of a {int(cells ** 0.5)}x{int(cells ** 0.5)} map, a single "
                          "value per channel; expected at least 2 frames per process (or train.sync_bn=true)")
