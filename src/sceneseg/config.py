"""Experiment configuration: one YAML file per experiment, loaded into frozen dataclasses.

A file lists what differs from the defaults below; `sceneseg config NAME` prints the whole resolved
config, and a run folder keeps it as config.yaml. Only the CLI calls `load_config`; everything below
it receives these plain objects. Overrides are
dotted `key=value` strings (for example `train.epochs=5`), parsed as YAML scalars and type-checked
against the field they replace. Unknown keys are an error, in files and overrides alike, so a typo
never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError
from .inference_options import STRIDE_RATE, check_inference_options
from .typecheck import build_dataclass, did_you_mean

SAMPLE = "builtin:camvid-sample"  # data.root value that names the sample shipped inside the package


@dataclass(frozen=True)
class DataConfig:
    dataset: str = "camvid"  # camvid, kitti_road or folder
    root: str = SAMPLE
    # Options of the chosen dataset's constructor (data.DATASETS), e.g. {policy: cs6476, resize: [256, 256]}
    # for kitti_road: checked against its signature when the dataset is built; what is left out keeps
    # the constructor's default.
    options: dict[str, Any] = field(default_factory=dict)
    # List files ("<image> <label>" per line, relative to root) of the train and val roles, for the
    # datasets that take one (camvid, folder).
    train_list: str | None = None
    val_list: str | None = None
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
    stride_rate: float = STRIDE_RATE  # window stride as a fraction of crop_size
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


def _apply_override(tree: dict[str, Any], override: str) -> None:
    if "=" not in override:
        raise ConfigError("expected dotted key=value, e.g. train.epochs=5")
    key, raw = override.split("=", 1)
    parts = key.strip().split(".")
    node = tree
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{part} is not a section")
    node[parts[-1]] = yaml.safe_load(raw) if raw.strip() else None


# Per-dataset data keys of configs stored before data.options existed, and the option each became.
_FLAT_DATA_KEYS = {
    "resize": "resize",
    "label_policy": "policy",
    "split_mode": "split_mode",
    "val_ratio": "val_ratio",
    "split_seed": "split_seed",
    "class_names": "class_names",
    "palette": "palette",
    "images": "images",
    "masks": "masks",
}


def migrate_stored_config(tree: dict[str, Any]) -> dict[str, Any]:
    """A config stored by an older sceneseg (checkpoint, run folder) in today's form: its flat
    per-dataset data keys (`data.resize`, `data.label_policy`, ...) moved into data.options, nulls dropped."""
    data = tree.get("data")
    if not isinstance(data, dict) or not set(data) & set(_FLAT_DATA_KEYS):
        return tree
    data, options = dict(data), dict(data.get("options") or {})
    for old, new in _FLAT_DATA_KEYS.items():
        value = data.pop(old, None)
        if value is not None:
            options[new] = value
    return {**tree, "data": {**data, "options": options}}


def _check_not_flat(tree: dict[str, Any]) -> None:
    """Files and overrides use data.options; name the new place of an old flat key."""
    data = tree.get("data")
    old = sorted(set(data) & set(_FLAT_DATA_KEYS)) if isinstance(data, dict) else []
    if old:
        raise ConfigError(
            f"data.{old[0]}: dataset options go under data.options now, as data.options.{_FLAT_DATA_KEYS[old[0]]}"
        )


def config_from_dict(tree: dict[str, Any], overrides: typing.Sequence[str] = ()) -> Config:
    """Build a validated Config from a checkpoint's stored copy (migrated, see migrate_stored_config)
    or any nested dict, then apply `overrides`."""
    return _build(migrate_stored_config(tree), overrides)


def _build(tree: dict[str, Any], overrides: typing.Sequence[str], source: str = "") -> Config:
    """Config of `tree` with `overrides` applied. An error an override causes names the override;
    any other names `source` (the file), if given."""
    where = f"{source}: " if source else ""
    tree = _deep_copy(tree)
    try:
        _check_not_flat(tree)
        config = build_dataclass(Config, tree, "")
    except ConfigError as exc:
        raise ConfigError(f"{where}{exc}") from None
    for override in overrides:
        try:
            _apply_override(tree, override)
            _check_not_flat(tree)
            config = build_dataclass(Config, tree, "")
        except ConfigError as exc:
            raise ConfigError(f"override {override}: {exc}") from None
    try:
        validate(config)
    except ConfigError as exc:  # "key = value: expected ...": name the override that set the key, if one did
        key = str(exc).split(" ", 1)[0]
        culprit = next((o for o in reversed(overrides) if o.split("=", 1)[0].strip() == key), None)
        raise ConfigError(f"override {culprit}: {exc}" if culprit else f"{where}{exc}") from None
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
    names = sorted(p.stem for p in folder.glob("*.yaml"))
    raise ConfigError(
        f"{kind} {name!r} is neither a file nor a built-in {kind} ({', '.join(names)}){did_you_mean(str(name), names)}"
    )


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
    return _build(tree, overrides, str(path))


def to_dict(config: Config) -> dict[str, Any]:
    """Nested plain dict (tuples as lists), as YAML and checkpoints store it."""
    return dataclasses.asdict(config, dict_factory=lambda items: {k: _plain(v) for k, v in items})


def to_yaml(config: Config) -> str:
    """The complete config as YAML: what `sceneseg config` prints and a run folder's config.yaml holds."""
    return yaml.safe_dump(to_dict(config), sort_keys=False)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return [_plain(v) for v in value] if isinstance(value, tuple) else value


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
        (
            0 < config.data.scale_min <= config.data.scale_max,
            "data.scale_min/scale_max",
            (config.data.scale_min, config.data.scale_max),
            "0 < scale_min <= scale_max",
        ),
        (config.data.num_workers >= 0, "data.num_workers", config.data.num_workers, ">= 0"),
        (config.train.backbone_lr_mult >= 0, "train.backbone_lr_mult", config.train.backbone_lr_mult, ">= 0"),
        (config.model.num_classes >= 2, "model.num_classes", config.model.num_classes, "at least 2"),
        (config.eval.batch_size >= 1, "eval.batch_size", config.eval.batch_size, "at least 1"),
    ]
    for ok, key, value, expected in checks:
        if not ok:
            raise ConfigError(f"{key} = {value!r}: expected {expected}")
    # "crop" is the per-epoch protocol of centre crops: an evaluation mode, not an inference one.
    check_inference_options(config.eval, "eval.", ("whole", "slide", "crop"))


def _deep_copy(tree: Any) -> Any:
    if isinstance(tree, dict):
        return {k: _deep_copy(v) for k, v in tree.items()}
    return tree
