"""Scoring trained weights with a config's evaluation protocol (evaluate_weights), and the facts a
report needs to state how a number was measured (the precision, the hardware)."""

from __future__ import annotations

import dataclasses
import platform
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Subset

from .builders import build_dataset
from .config import Config, EvalConfig
from .distributed import Distributed, single_process
from .engine import evaluate
from .inference import InferenceSettings, Precision, bf16_supported, resolve_device
from .loading import loader_options
from .models import build_model


def resolve_precision(config: Config, device: torch.device | None = None) -> Precision:
    """train.bf16 (None: where `device` supports it well) and train.channels_last, on `device`."""
    device = device or resolve_device(config.device)
    bf16 = bf16_supported(device) if config.train.bf16 is None else config.train.bf16
    return Precision(device, bf16=bf16, channels_last=config.train.channels_last)


def describe_hardware(device: torch.device, processes: int = 1) -> str:
    """E.g. "CPU: Intel(R) Xeon(R) Platinum 8488C, 2 threads" or "2 x NVIDIA H100 80GB HBM3"."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = platform.processor() or platform.machine()
        try:  # Linux names the CPU model in /proc/cpuinfo; platform.processor() often does not
            name = next(
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            )
        except (OSError, StopIteration):
            pass
        name = f"CPU: {name}, {torch.get_num_threads()} threads"
    return f"{processes} x {name}" if processes > 1 else name


def crop_mode_ignores(options: EvalConfig, mode: str | None = None) -> list[str]:
    """The eval settings that `mode` (None: options.mode, as evaluate_weights takes it) leaves out:
    "crop" scores the per-epoch protocol's centre crops as they come (evaluate_weights gives it no
    InferenceSettings), with no flip, scales or class bias; the other modes apply them all."""
    if (mode or options.mode) != "crop":
        return []
    unused = {
        "eval.flip": options.flip,
        "eval.scales": tuple(options.scales) != (1.0,),
        "eval.class_bias": bool(options.class_bias),
    }
    return [key for key, set_ in unused.items() if set_]


def evaluate_weights(
    config: Config,
    model_state: dict,
    split: str,
    mode: str | None = None,
    show_progress: bool = True,
    dist: Distributed | None = None,
) -> dict:
    """Metrics summary (see ConfusionMatrix.summary) of `model_state` on `split`.

    Modes "whole" and "slide" score full frames against their full-resolution labels (see
    inference.predict_probs); "crop" is the per-epoch protocol. Under torchrun each rank scores
    its share of the frames and the confusion matrices are summed.
    """
    dist = dist or single_process(config.device)
    precision = resolve_precision(config, dist.device)
    mode = mode or config.eval.mode
    dataset = build_dataset(config.data, "val", "crop" if mode == "crop" else "whole", split=split)
    model = build_model(dataclasses.replace(config.model, pretrained=None)).to(precision.device)
    model.load_state_dict(model_state)
    if precision.channels_last:
        model = model.to(memory_format=torch.channels_last)
    # "crop" scores the batches as they come; the other modes predict whole frames.
    settings = None if mode == "crop" else InferenceSettings.from_eval(dataclasses.replace(config.eval, mode=mode))
    # Whole frames of different sizes cannot share a batch.
    batch = config.eval.batch_size if mode == "crop" or len(set(dataset.sizes)) == 1 else 1
    loader = DataLoader(
        Subset(dataset, dist.shard(len(dataset))),
        batch_size=batch,
        **loader_options(precision.device, config.data.num_workers),
    )
    loss, confusion = evaluate(
        model,
        loader,
        precision,
        config.model.num_classes,
        settings,
        show_progress and dist.is_main,
        desc=f"evaluate {split} ({mode})",
        dist=dist,
    )
    summary = confusion.summary(dataset.class_names)
    # bf16 moves results: every summary says which precision made it
    summary.update(loss=loss, split=split, mode=mode, frames=len(dataset), precision=precision.describe())
    return summary
