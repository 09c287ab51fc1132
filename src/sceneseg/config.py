"""Experiment configuration: one YAML file per experiment, loaded into frozen dataclasses.

A file lists what differs from the defaults below; `sceneseg config NAME` prints the whole resolved
config, and a run folder keeps it as config.yaml. Only the CLI and the study runner call `load_config`;
everything below them receives these plain objects. Overrides are dotted `key=value` strings (for
example `train.epochs=5`), parsed as YAML values and type-checked
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

from .config_migration import check_not_flat, migrate_stored_config
from .data_options import augmentation_checks
from .errors import ConfigError
from .inference_options import EVAL_MODES, MIN_SIZE, STRIDE_RATE, check_inference_options
from .loss_options import loss_checks
from .train_options import check_optimizer, train_checks
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
    # true: resize each training frame once, from its source size to short_side * scale (transforms.ShortSideScale)
    scale_from_source: bool = False
    rotate: float = 10.0
    blur: bool = True
    data_aug: bool = True  # False trains with the val transform, as the study's rows without augmentation
    photometric: float = 0.0  # chance of each colour op (brightness/contrast, gamma, hue/saturation); 0: off
    # Sampling that sees rare classes more often (README, "Sampling"; sampling.py). repeat_threshold:
    # repeat-factor sampling of frames (LVIS) with threshold t, null = off (each frame once per epoch).
    repeat_threshold: float | None = None
    rare_crop_prob: float = 0.0  # chance that a training crop is centred on a pixel of a rare class
    rare_class_share: float = 0.02  # rare: a class under this share of the train split's labelled pixels
    max_class_share: float = 1.0  # a crop where one class covers more of its labelled pixels is redrawn; 1: off
    paste_prob: float = 0.0  # chance that a training frame gets another frame's rare-class pixels (data/paste.py)
    cache: bool = True  # decode every frame up front: finds bad files before training and saves CPU
    num_workers: int = 0


@dataclass(frozen=True)
class ModelConfig:
    name: str = "simple"
    backbone: str = "resnet18"
    deep_stem: bool = False
    pretrained: str | None = None  # None, "imagenet" (torchvision URL) or a weights file path
    num_classes: int = 11
    # Options of some models only (PSPNet, DeepLabV3+): null keeps the model's default; others' are errors.
    use_ppm: bool | None = None
    aux_loss: bool | None = None
    bins: tuple[int, ...] | None = None
    output_stride: int | None = None
    zoom_factor: int | None = None
    aspp_channels: int | None = None
    decoder_stride: int | None = None  # DeepLabV3+: 4 (the paper's) or 2 (a stage on the stem too)
    decoder_channels: int | None = None
    mid_skip: bool | None = None  # DeepLabV3+: layer2's stride-8 features into the stride-4 decoder too


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10  # with train.minutes: the most epochs the budget may give
    # Size the epochs to this many minutes of training on the machine at hand (budget.py): a few
    # timed steps before epoch 1 set train.epochs, which the run folder's config.yaml then records.
    minutes: float | None = None
    # The global batch: under torchrun it is split evenly over the processes (it must be a multiple
    # of their number), so train.lr needs no rescaling and N processes train as one process would.
    batch_size: int = 16
    optimizer: str = "sgd"  # or "adamw" (optimizer.py); weight_decay is then decoupled, momentum unused
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
    # last.pt, the full resume point (with optimizer state), every this many epochs; always after the
    # last epoch and on a stop signal. A hard kill loses the epochs since the last one written.
    checkpoint_every: int = 1
    out_dir: str = "runs/sample"


@dataclass(frozen=True)
class LossConfig:
    # The criterion of each head (loss = main + train.aux_weight * aux, see losses.py): "ce" cross-entropy,
    # "ohem" cross-entropy over the hard pixels only, or "lovasz" Lovász-softmax alone (CE before lovasz_from_epoch).
    name: str = "ce"
    # Cross-entropy class weights: null, "enet" or "median_frequency" (from the train split's label
    # histogram, scaled to a mean weight of 1 per labelled pixel), or one weight per class, used as given.
    class_weights: str | tuple[float, ...] | None = None
    # Factors on named classes' weights after the formula and its scaling, e.g. {Column_Pole: 2.0};
    # needs class_weights
    class_weight_mult: dict[str, float] = field(default_factory=dict)
    enet_c: float = 1.02  # ENet's w_c = 1 / ln(enet_c + p_c)
    ohem_thresh: float = 0.7  # OHEM keeps the pixels whose true class has a lower probability...
    ohem_min_kept: int = 100000  # ...and at least this many of the hardest of each global batch
    lovasz_weight: float = 0.0  # adds lovasz_weight * Lovász-softmax to "ce" or "ohem"
    lovasz_from_epoch: int = 1  # the Lovász term (added, or the whole loss) counts from this epoch on
    lovasz_bins: int = 0  # 0: sort the errors (exact); N: bin them in N levels, within 1/N of it (README, Losses)


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
    # Added to class log-probabilities before the arg-max; -tau*ln(w) curbs class weights w (scripts/class_bias.py)
    class_bias: tuple[float, ...] = ()
    batch_size: int = 4


@dataclass(frozen=True)
class Config:
    name: str = "experiment"
    seed: int = 0
    device: str = "auto"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    loss: LossConfig = field(default_factory=LossConfig)
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
        check_not_flat(tree)
        config = build_dataclass(Config, tree, "")
    except ConfigError as exc:
        raise ConfigError(f"{where}{exc}") from None
    for override in overrides:
        try:
            _apply_override(tree, override)
            check_not_flat(tree)
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
        (config.data.crop_size >= MIN_SIZE, "data.crop_size", config.data.crop_size, f"at least {MIN_SIZE}"),
        (config.data.short_side >= MIN_SIZE, "data.short_side", config.data.short_side, f"at least {MIN_SIZE}"),
        (config.data.num_workers >= 0, "data.num_workers", config.data.num_workers, ">= 0"),
        *train_checks(config.train),
        *augmentation_checks(config.data),
        (config.model.num_classes >= 2, "model.num_classes", config.model.num_classes, "at least 2"),
        (config.eval.batch_size >= 1, "eval.batch_size", config.eval.batch_size, "at least 1"),
        *loss_checks(config.loss, config.model.num_classes),
    ]
    check_optimizer(config.train.optimizer)
    for ok, key, value, expected in checks:
        if not ok:
            raise ConfigError(f"{key} = {value!r}: expected {expected}")
    # "crop" is the per-epoch protocol of centre crops: an evaluation mode, not an inference one.
    check_inference_options(config.eval, "eval.", EVAL_MODES, config.model.num_classes)


def _deep_copy(tree: Any) -> Any:
    if isinstance(tree, dict):
        return {k: _deep_copy(v) for k, v in tree.items()}
    return tree
