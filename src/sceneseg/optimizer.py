"""The optimizer of a training run and its learning-rate schedule.

`train.optimizer` picks the update rule: "sgd" (momentum SGD, the study's) or "adamw" (Adam with
decoupled weight decay; ENet, the best-known from-scratch CamVid recipe, trained with Adam). Both
share the rest: the backbone and the head in two parameter groups (the head at `head_lr_mult` times
the rate), and a per-iteration poly decay after an optional linear warm-up.
"""

from __future__ import annotations

import torch

from .config import TrainConfig
from .train_options import check_optimizer


def build_optimizer(
    model: torch.nn.Module, config: TrainConfig, iters_per_epoch: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """The optimizer over `model`'s trainable parameters and its scheduler, stepped every iteration.

    The warm-up keeps a randomly initialised net from blowing up in its first steps."""
    backbone = [p for n, p in model.named_parameters() if n.startswith("backbone.") and p.requires_grad]
    head = [p for n, p in model.named_parameters() if not n.startswith("backbone.") and p.requires_grad]
    groups = [
        {"params": backbone, "lr": config.lr * config.backbone_lr_mult},
        {"params": head, "lr": config.lr * config.head_lr_mult},
    ]
    fused = True if next(model.parameters()).is_cuda else None  # one kernel per step on GPUs; CPU as before
    check_optimizer(config.optimizer)  # a TrainConfig built in code skips the config check
    if config.optimizer == "adamw":
        # train.momentum is SGD's; Adam's moment decays stay at torch's defaults (0.9, 0.999).
        optimizer = torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay, fused=fused)
    else:
        optimizer = torch.optim.SGD(
            groups, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay, fused=fused
        )
    max_iter = config.epochs * iters_per_epoch

    def factor(it: int) -> float:
        warmup = min(1.0, (it + 1) / config.warmup_iters) if config.warmup_iters else 1.0
        return warmup * max(0.0, 1.0 - it / max_iter) ** config.poly_power

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
