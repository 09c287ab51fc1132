"""Experiment configuration: one complete YAML file per experiment, loaded into frozen dataclasses.

Only the CLI calls `load_config`; everything below it receives these plain objects. Overrides are
dotted `key=value` strings (for example `train.epochs=5`), parsed as YAML scalars and type-checked
against the field they replace. Unknown keys are an error, in files and overrides alike, so a typo
never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError

SAMPLE = "builtin:camvid-sample"  # data.root value that names the sample shipped inside the package


@dataclass(frozen=True)
class DataConfig:
    dataset: str = "camvid"  # camvid, kitti_road or folder
    root: str = SAMPLE
    train_list: str | None = None  # list-format files ("<image> <label>" per line), relative to root
    val_list: str | None = None
    # Options of some datasets only: null where the dataset does not take them.
    resize: tuple[int, ...] | None = None  # (height, width) every frame is resized to first
    label_policy: str | None = None  # kitti_road: "kitti" or "cs6476"
    split_mode: str | None = None  # kitti_road: "cs6476" (last 10 of each category) or "ratio"
    val_ratio: float | None = None  # kitti_road with split_mode ratio
    split_seed: int | None = None
    class_names: tuple[str, ...] | None = None  # folder
    palette: tuple[tuple[int, ...], ...] | None = None  # folder with colour masks: RGB per class
    images: str | None = None  # folder: sub-folders of root
    masks: str | None = None
    train_split: str = "train"
    val_split: str = "val"
    short_side: int = 240
    crop_size: int = 201
    scale_min: float = 0.5
    scale_max: float = 2.0
    rotate: float = 10.0
    blur: bool = True
    data_aug: bool = True  # False trains with the val transform, as the study's rows without augmentation
    cache: bool = True  # decode every frame up front: finds bad files before training and saves CPU
    num_workers: int = 0


@dataclass(frozen=True)
class ModelConfig:
    name: str = "simple"
    backbone: str = "resnet18"
    deep_stem: bool = False
    pretrained: str | None = None  # None, "imagenet" (torchvision URL) or a weights file path
    num_classes: int = 11
    # Options of some models only (PSPNet): null leaves the model's default, and setting one that
    # the chosen model does not take is an error.
    use_ppm: bool | None = None
    aux_loss: bool | None = None
    bins: tuple[int, ...] | None = None
    output_stride: int | None = None
    zoom_factor: int | None = None


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10
    # The global batch: under torchrun it is split evenly over the processes (it must be a multiple
    # of their number), so train.lr needs no rescaling and N processes train as one process would.
    batch_size: int = 16
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-4
    poly_power: float = 0.9
    warmup_iters: int = 0  # linear warm-up of the learning rate, then poly; 0 as in the study
    head_lr_mult: float = 10.0
    backbone_lr_mult: float = 1.0  # fine-tuning: e.g. 0.1 keeps a transferred backbone close to its weights
    freeze_backbone: bool = False  # backbone weights and BatchNorm statistics both stay as loaded
    init_from: str | None = None  # checkpoint to start from (transfer); the classifier is replaced if needed
    aux_weight: float = 0.4  # loss = main + aux_weight * aux, for models with an auxiliary head
    bf16: bool | None = None  # None: on where the CPU or GPU supports bf16 well
    channels_last: bool = True
    # Under torchrun: BatchNorm statistics over the global batch instead of each process's share
    # (torch's SyncBatchNorm on GPUs, sceneseg's own over gloo on CPUs). No effect in one process.
    sync_bn: bool = False
    out_dir: str = "runs/sample"


@dataclass(frozen=True)
class EvalConfig:
    # Final evaluation: "whole" frames, a sliding window ("slide") as the study evaluated, or the
    # per-epoch "crop" protocol (short side data.short_side, centre crop data.crop_size).
    mode: str = "whole"
    short_side: int | None = 240  # frames are resized to this short side (null: native size)
    crop_size: int = 201  # sliding window size
    stride_rate: float = 0.6667  # window stride as a fraction of crop_size
    flip: bool = False  # average with the mirrored prediction
    scales: tuple[float, ...] = (1.0,)  # multi-scale: factors on short_side, probabilities averaged
    batch_size: int = 4


@dataclass(frozen=True)
class Config:
    name: str = "experiment"
    seed: int = 0
    device: str = "auto"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


def _check_type(value: Any, annotation: Any, key: str) -> Any:
    """Return `value` converted to `annotation` where that is lossless, else raise ConfigError."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        if value is None and type(None) in options:
            return None
        real = [o for o in options if o is not type(None)]
        if len(real) == 1:  # "X | None": X's own message says more than "X or null"
            return _check_type(value, real[0], key)
        for option in options:
            if option is type(None):
                continue
            try:
                return _check_type(value, option, key)
            except ConfigError:
                pass
        names = " or ".join("null" if o is type(None) else getattr(o, "__name__", str(o)) for o in options)
        raise ConfigError(f"{key}: expected {names}, got {value!r}")
    if origin is tuple:
        item = typing.get_args(annotation)[0]
        if isinstance(value, (list, tuple)):
            return tuple(_check_type(v, item, f"{key}[{i}]") for i, v in enumerate(value))
        raise ConfigError(f"{key}: expected a list of {item.__name__}, got {value!r}")
    if annotation is bool:
        if isinstance(value, bool):
            return value
    elif annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif annotation is float:
        # YAML reads "1e-4" as a string (YAML 1.1), so accept numeric strings for floats.
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    elif annotation is str:
        if isinstance(value, str):
            return value
    raise ConfigError(f"{key}: expected {annotation.__name__}, got {value!r}")


def build_dataclass(cls: type, values: dict[str, Any], prefix: str) -> Any:
    """`cls(**values)` once every key is known and every value has its field's type (nested
    dataclasses from nested mappings); errors name the key as `prefix` + key."""
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        where = prefix.rstrip(".") or "top level"
        raise ConfigError(
            f"unknown key(s) {', '.join(prefix + k for k in unknown)} in {where}; "
            f"known keys: {', '.join(sorted(known))}"
        )
    kwargs = {}
    for name, value in values.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            if not isinstance(value, dict):
                raise ConfigError(f"{prefix}{name}: expected a mapping of keys, got {value!r}")
            kwargs[name] = build_dataclass(hint, value, f"{prefix}{name}.")
        else:
            kwargs[name] = _check_type(value, hint, prefix + name)
    return cls(**kwargs)


def _apply_override(tree: dict[str, Any], override: str) -> None:
    if "=" not in override:
        raise ConfigError(f"override {override!r}: expected dotted key=value, e.g. train.epochs=5")
    key, raw = override.split("=", 1)
    parts = key.strip().split(".")
    node = tree
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {override!r}: {part} is not a section")
    node[parts[-1]] = yaml.safe_load(raw) if raw.strip() else None


def config_from_dict(tree: dict[str, Any], overrides: typing.Sequence[str] = ()) -> Config:
    """Build a validated Config from a nested dict (a parsed YAML file or a checkpoint's copy)."""
    tree = _deep_copy(tree)
    for override in overrides:
        _apply_override(tree, override)
    config = build_dataclass(Config, tree, "")
    validate(config)
    return config


BUILTIN_CONFIGS = Path(__file__).parent / "configs"


def resolve_config_path(name: str | Path | None) -> Path:
    """A YAML path as given, or the name of a config shipped with sceneseg (None: the sample)."""
    return BUILTIN_CONFIGS / "sample.yaml" if name is None else resolve_builtin(name, BUILTIN_CONFIGS, "config")


def resolve_builtin(name: str | Path, folder: Path, kind: str) -> Path:
    """`name` as a path if it is one (exists, or ends in .yaml), else `folder`/`name`.yaml."""
    path = Path(name)
    if path.exists() or path.suffix in (".yaml", ".yml"):
        return path
    builtin = folder / f"{name}.yaml"
    if builtin.is_file():
        return builtin
    names = ", ".join(sorted(p.stem for p in folder.glob("*.yaml")))
    raise ConfigError(f"{kind} {name!r} is neither a file nor a built-in {kind} ({names})")


def load_config(path: str | Path | None, overrides: typing.Sequence[str] = ()) -> Config:
    """Read a YAML experiment file (None: the built-in sample experiment) and apply overrides."""
    path = resolve_config_path(path)
    try:
        tree = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        # PyYAML's own text spans several lines, quoting the source; keep the problem and its place.
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or " ".join(str(exc).split())
        raise ConfigError(f"config file {path} is not valid YAML: {problem}{where}") from None
    if not isinstance(tree, dict):
        raise ConfigError(f"config file {path}: expected a mapping of sections at the top level")
    try:
        return config_from_dict(tree, overrides)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def to_dict(config: Config) -> dict[str, Any]:
    """Nested plain dict (tuples as lists), as YAML and checkpoints store it."""
    return dataclasses.asdict(config, dict_factory=lambda items: {k: _plain(v) for k, v in items})


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def validate(config: Config) -> None:
    """Range checks that a type check cannot do."""
    checks = [
        (config.seed >= 0, "seed", config.seed, ">= 0"),
        (config.train.epochs >= 1, "train.epochs", config.train.epochs, "at least 1"),
        (config.train.batch_size >= 1, "train.batch_size", config.train.batch_size, "at least 1"),
        (config.train.lr > 0, "train.lr", config.train.lr, "positive"),
        (config.train.warmup_iters >= 0, "train.warmup_iters", config.train.warmup_iters, ">= 0"),
        (config.data.crop_size >= 32, "data.crop_size", config.data.crop_size, "at least 32"),
        (config.data.short_side >= 32, "data.short_side", config.data.short_side, "at least 32"),
        (0 < config.data.scale_min <= config.data.scale_max, "data.scale_min/scale_max",
         (config.data.scale_min, config.data.scale_max), "0 < scale_min <= scale_max"),
        (config.data.num_workers >= 0, "data.num_workers", config.data.num_workers, ">= 0"),
        (config.data.resize is None or (len(config.data.resize) == 2 and min(config.data.resize) >= 32),
         "data.resize", config.data.resize, "null or [height, width], each at least 32"),
        (config.train.backbone_lr_mult >= 0, "train.backbone_lr_mult", config.train.backbone_lr_mult, ">= 0"),
        (config.model.num_classes >= 2, "model.num_classes", config.model.num_classes, "at least 2"),
        (config.eval.mode in ("whole", "slide", "crop"), "eval.mode", config.eval.mode,
         "'whole', 'slide' or 'crop'"),
        (config.eval.crop_size >= 32, "eval.crop_size", config.eval.crop_size, "at least 32"),
        (0 < config.eval.stride_rate <= 1, "eval.stride_rate", config.eval.stride_rate, "in (0, 1]"),
        (len(config.eval.scales) > 0 and min(config.eval.scales) > 0, "eval.scales", config.eval.scales,
         "a non-empty list of positive factors"),
        (config.eval.batch_size >= 1, "eval.batch_size", config.eval.batch_size, "at least 1"),
    ]
    for ok, key, value, expected in checks:
        if not ok:
            raise ConfigError(f"{key} = {value!r}: expected {expected}")


def _deep_copy(tree: Any) -> Any:
    if isinstance(tree, dict):
        return {k: _deep_copy(v) for k, v in tree.items()}
    return tree
