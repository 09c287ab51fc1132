"""The rules of a config's train section, kept apart from optimizer.py and budget.py (which need
torch) so that config.py checks them at load time without importing the training code."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from .errors import ConfigError

if TYPE_CHECKING:
    from .config import TrainConfig

OPTIMIZERS = ("sgd", "adamw")  # train.optimizer, built by optimizer.py


def check_optimizer(name: str) -> None:
    """train.optimizer names an update rule optimizer.py builds (validate and build_optimizer call it)."""
    if name not in OPTIMIZERS:
        raise ConfigError(f"train.optimizer = {name!r}: expected one of {OPTIMIZERS}")


def train_checks(train: TrainConfig) -> list[tuple[bool, str, Any, str]]:
    """validate's rows for the train section."""
    minutes = train.minutes
    return [
        (train.epochs >= 1, "train.epochs", train.epochs, "at least 1"),
        (train.batch_size >= 1, "train.batch_size", train.batch_size, "at least 1"),
        (train.lr > 0, "train.lr", train.lr, "positive"),
        (train.warmup_iters >= 0, "train.warmup_iters", train.warmup_iters, ">= 0"),
        (train.checkpoint_every >= 1, "train.checkpoint_every", train.checkpoint_every, "at least 1"),
        (train.backbone_lr_mult >= 0, "train.backbone_lr_mult", train.backbone_lr_mult, ">= 0"),
        (minutes is None or 0 < minutes < math.inf, "train.minutes", minutes, "null or a number of minutes > 0"),
    ]
