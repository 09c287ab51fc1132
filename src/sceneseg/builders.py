"""Build the datasets a config names, and tell their classes without reading them.

Used by training, evaluation, `sceneseg data check` and model loading alike (the training-only
pieces, optimizer and batch split, are built in training_run). The config's own range checks are
in config.validate.
"""

from __future__ import annotations

import inspect
import typing
from pathlib import Path
from typing import Any

from .config import SAMPLE, DataConfig
from .data import DATASETS, SAMPLE_ROOT, SegmentationDataset, train_transform, val_transform, whole_transform
from .errors import ConfigError
from .typecheck import check_type, did_you_mean


def data_root(config: DataConfig) -> Path:
    """The folder data.root names: the shipped sample for SAMPLE, else the path as given."""
    if config.root == SAMPLE:
        return SAMPLE_ROOT
    if config.root.startswith("builtin:"):  # a mistyped sample name would read as a relative path
        raise ConfigError(f"data.root = {config.root!r}: the only built-in dataset is {SAMPLE!r}")
    return Path(config.root)


def _transform(config: DataConfig, mode: str):
    if mode == "train" and config.data_aug:
        return train_transform(
            config.short_side,
            config.crop_size,
            (config.scale_min, config.scale_max),
            config.rotate,
            config.blur,
            rare_crop_prob=config.rare_crop_prob,
            max_class_share=config.max_class_share,
            photometric=config.photometric,
            from_source=config.scale_from_source,
        )
    if mode in ("train", "crop"):
        return val_transform(config.short_side, config.crop_size)
    return whole_transform(None)


# Constructor arguments build_dataset passes itself; every other argument is a dataset option.
_GENERAL_ARGUMENTS = ("root", "split", "transform", "list_file", "cache", "seed")


def dataset_options(config: DataConfig) -> tuple[type[SegmentationDataset], dict[str, Any]]:
    """The class `data.dataset` names and `data.options` checked against its constructor: every
    option must be one of its arguments, of the annotated type; those without a default are required.
    Left-out options keep the constructor's defaults, which live there only."""
    if config.dataset not in DATASETS:
        raise ConfigError(
            f"data.dataset = {config.dataset!r}: expected one of {', '.join(DATASETS)}"
            f"{did_you_mean(config.dataset, DATASETS)}"
        )
    cls = DATASETS[config.dataset]
    parameters = inspect.signature(cls).parameters
    accepted = [name for name in parameters if name not in _GENERAL_ARGUMENTS]
    for name in config.options:
        if name not in accepted:
            raise ConfigError(
                f"data.options.{name}: dataset {config.dataset!r} has no such option"
                f"{did_you_mean(name, accepted)} (its options: {', '.join(accepted) or 'none'})"
            )
    for name in accepted:
        if parameters[name].default is inspect.Parameter.empty and name not in config.options:
            raise ConfigError(
                f"data.options.{name}: dataset {config.dataset!r} needs it (its options: {', '.join(accepted)})"
            )
    for key in ("train_list", "val_list"):
        if getattr(config, key) is not None and "list_file" not in parameters:
            raise ConfigError(
                f"data.{key} = {getattr(config, key)!r}: dataset {config.dataset!r} takes no list file; expected null"
            )
    hints = typing.get_type_hints(cls.__init__)
    return cls, {name: check_type(value, hints[name], f"data.options.{name}") for name, value in config.options.items()}


def _split_and_list(config: DataConfig, role: str, split: str | None) -> tuple[str, str | None]:
    """The split a role reads and its list file; see build_dataset."""
    by_role = {"train": (config.train_split, config.train_list), "val": (config.val_split, config.val_list)}
    own_split, own_list = by_role[role]
    if split is None or split == own_split:
        return own_split, own_list
    other_split, other_list = by_role["val" if role == "train" else "train"]
    return split, other_list if split == other_split else None


def build_dataset(
    config: DataConfig, role: str, mode: str, seed: int = 0, split: str | None = None
) -> SegmentationDataset:
    """The dataset of a `role`: "train" reads data.train_split with data.train_list, "val" data.val_split
    with data.val_list. `split` names another split to read instead (`sceneseg evaluate --split test`):
    it takes the list file of the role whose split it is, and none if it is neither role's split.

    `mode`: "train" (augmented, or val transform when data_aug is off), "crop", or "whole" (frames at
    their own size: evaluation resizes them itself)."""
    cls, options = dataset_options(config)
    root = data_root(config)
    split, list_file = _split_and_list(config, role, split)
    if list_file is not None:
        options["list_file"] = root / list_file
    return cls(root, split=split, transform=_transform(config, mode), cache=config.cache, seed=seed, **options)


def build_train_val(
    config: DataConfig, seed: int = 0, modes: tuple[str, str] = ("train", "crop")
) -> tuple[SegmentationDataset, SegmentationDataset]:
    """The train and val datasets of a run (transforms by `modes`, see build_dataset), refused when they
    share a frame: validating on training frames would overstate every metric."""
    train_set = build_dataset(config, "train", modes[0], seed=seed)
    val_set = build_dataset(config, "val", modes[1])
    train_images = {image.resolve() for image, _ in train_set.pairs}
    shared = [image for image, _ in val_set.pairs if image.resolve() in train_images]
    if shared:
        raise ConfigError(
            f"the train and val splits share {len(shared)} frame(s), e.g. {shared[0]}; expected "
            "disjoint splits (check data.train_split/val_split, the list files or data.options)"
        )
    return train_set, val_set


def dataset_classes(config: DataConfig) -> tuple[tuple[str, ...], tuple[tuple[int, ...], ...]]:
    """Class names and palette of the configured dataset without reading its files: the dataset class's
    own, or those its options give (folder). The palette is () where the dataset has none."""
    cls, options = dataset_options(config)
    return tuple(options.get("class_names", cls.class_names)), tuple(options.get("palette") or cls.palette)
