"""Loading a trained model for inference, from a sceneseg checkpoint or a reference PSPNet one."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import torch
from torch import Tensor

from .checkpoint import FORMAT, is_sceneseg_checkpoint, load_checkpoint, read_weights_file
from .config import config_from_dict
from .errors import ConfigError, WeightsError
from .models.pspnet import pspnet
from .models.reference import from_reference, infer_reference_config, is_reference_pspnet
from .training import build_model


def load_model(
    path: str | Path, num_classes: int | None = None, device: str | torch.device = "cpu"
) -> torch.nn.Module:
    """An eval-mode model from `path`, whose output ["out"] has the input's H and W.

    `path` is a sceneseg checkpoint (`sceneseg train`'s last.pt/best.pt: the model is rebuilt from
    the config stored in it) or a PSPNet checkpoint of the reference implementation hszhao/semseg
    ({"state_dict": ...}, architecture read from its keys, bins assumed (1, 2, 3, 6)).
    `num_classes`, if given, must equal the file's. Every weight must fit: a WeightsError lists
    missing, unexpected and wrongly shaped keys.
    """
    path = Path(path)
    content = read_weights_file(path)
    if is_sceneseg_checkpoint(content):
        model, state = _sceneseg_model(load_checkpoint(path, content), path, num_classes)
    elif is_reference_pspnet(content):
        model, state = _reference_model(content, path, num_classes)
    else:
        raise WeightsError(
            f"{path} is neither a sceneseg checkpoint (a dict with format={FORMAT!r}, as "
            f"written by `sceneseg train`) nor a PSPNet checkpoint of the reference "
            f"implementation (hszhao/semseg: a state_dict with layer0..layer4, ppm, cls keys)"
        )
    _load_strict(model, state, path)
    return model.to(device).eval()


def _sceneseg_model(
    checkpoint: dict, path: Path, num_classes: int | None
) -> tuple[torch.nn.Module, Mapping[str, Tensor]]:
    # The checkpoint holds every weight: fetching ImageNet weights again would be wasted work,
    # or fail on a machine without the file or network.
    overrides = ["model.pretrained=null"]
    tree = checkpoint["config"]
    model_tree = tree.get("model") if isinstance(tree, Mapping) else None
    # zoom_factor is not a weight; 8 gives logits at the input's size, as load_model promises.
    if isinstance(model_tree, Mapping) and model_tree.get("zoom_factor") not in (None, 8):
        overrides.append("model.zoom_factor=8")
    try:
        config = config_from_dict(tree, overrides)
        model = build_model(config.model)
    except ConfigError as exc:
        raise WeightsError(f"{path}: the config stored in it is not valid: {exc}") from None
    if num_classes is not None and num_classes != config.model.num_classes:
        raise WeightsError(f"{path} has {config.model.num_classes} classes, "
                           f"but num_classes={num_classes} was asked for")
    return model, checkpoint["model"]


def _reference_model(
    content: object, path: Path, num_classes: int | None
) -> tuple[torch.nn.Module, Mapping[str, Tensor]]:
    options = infer_reference_config(content)
    if num_classes is not None and num_classes != options["num_classes"]:
        raise WeightsError(f"{path} has {options['num_classes']} classes (cls.4.weight), "
                           f"but num_classes={num_classes} was asked for")
    return pspnet(**options), from_reference(content)


def _load_strict(model: torch.nn.Module, state: Mapping[str, Tensor], path: Path) -> None:
    expected = model.state_dict()
    # Files from PyTorch < 0.4.1 lack BatchNorm's step counter, which is bookkeeping, not a weight.
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    mismatched = [
        f"{k} (file {tuple(v.shape)}, model {tuple(expected[k].shape)})"
        for k, v in state.items() if k in expected and v.shape != expected[k].shape
    ]
    problems = [f"{label}: {_short_list(keys)}" for label, keys in (
        ("missing", missing), ("unexpected", unexpected), ("wrong shape", mismatched)) if keys]
    if problems:
        raise WeightsError(f"the weights in {path} do not fit the model; " + "; ".join(problems))
    model.load_state_dict({**expected, **state}, strict=True)


def _short_list(keys: list[str], limit: int = 20) -> str:
    shown = ", ".join(keys[:limit])
    return shown if len(keys) <= limit else f"{shown}, ... ({len(keys) - limit} more)"
