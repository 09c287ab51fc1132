"""Loading ImageNet weights into a ResNet backbone, strictly and without running code from files."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import Tensor, nn

from ..checkpoint import is_sceneseg_checkpoint, read_weights_file
from ..errors import WeightsError
from .resnet import ResNet

# torchvision's IMAGENET1K_V1 weights; the 8 hex digits in each name are the start of the file's
# SHA-256, which torch.hub checks when check_hash=True.
TORCHVISION_URLS: dict[str, str] = {
    "resnet18": "https://download.pytorch.org/models/resnet18-f37072fd.pth",
    "resnet34": "https://download.pytorch.org/models/resnet34-b627a593.pth",
    "resnet50": "https://download.pytorch.org/models/resnet50-0676ba61.pth",
    "resnet101": "https://download.pytorch.org/models/resnet101-63fe2227.pth",
}


def load_backbone_weights(model: ResNet, source: str | Path, arch: str, cache_dir: str | Path | None = None) -> None:
    """Load ImageNet weights into `model`, strictly: every key must be present with its shape.

    `source` is a weights file, or the string "imagenet" for torchvision's published file for
    `arch`, downloaded once into `cache_dir` (torch.hub's cache when None). The classifier
    (`fc.*`) is dropped; everything else must match, or a WeightsError lists what does not.
    A sceneseg checkpoint gives its model's backbone: a network pretrained on another
    segmentation task can start any model with the same backbone.
    """
    if isinstance(source, str) and source == "imagenet":
        origin = TORCHVISION_URLS.get(arch, arch)
        state = _download_imagenet(model, arch, cache_dir)
    else:
        origin = str(source)
        state = read_weights_file(source, "model.pretrained")
        if is_sceneseg_checkpoint(state):
            state = _backbone_of(state, origin)
    load_strict(
        model,
        _clean_state_dict(state, origin),
        f"weights {origin} do not fit the backbone (is it for another depth or stem?)",
    )


def _download_imagenet(model: ResNet, arch: str, cache_dir: str | Path | None) -> object:
    if model.deep_stem:
        raise WeightsError(
            "torchvision publishes no ImageNet weights for the deep-stem ResNet (three 3x3 stem "
            "convs); give the PSPNet reference weights file (e.g. resnet50_v2.pth) as a path "
            "instead of 'imagenet', or turn deep_stem off"
        )
    if arch not in TORCHVISION_URLS:
        raise WeightsError(f"no torchvision ImageNet weights for backbone {arch!r}; known: {sorted(TORCHVISION_URLS)}")
    url = TORCHVISION_URLS[arch]
    where = Path(cache_dir) if cache_dir is not None else Path(torch.hub.get_dir()) / "checkpoints"
    # torch.hub loads a cached file without checking it again; one that does not load is named, as
    # downloading again cannot help while it is there.
    cached = where / Path(urlparse(url).path).name
    was_cached = cached.is_file()
    # Network, disk and hash failures surface as many exception types; all mean the same here.
    try:
        return torch.hub.load_state_dict_from_url(
            url,
            model_dir=str(where),
            map_location="cpu",
            weights_only=True,
            check_hash=True,
        )
    except Exception as exc:
        if was_cached:
            raise WeightsError(
                f"cannot read {cached}, the cached copy of ImageNet weights {url} "
                f"({str(exc).split('. ')[0]}); delete it to download it again"
            ) from exc
        raise WeightsError(
            f"could not fetch ImageNet weights {url} into {where}: {exc}. On an offline machine, "
            f"copy the file into that folder or pass its path instead of 'imagenet'"
        ) from exc


def _backbone_of(checkpoint: Mapping, origin: str) -> dict[str, Tensor]:
    model = checkpoint.get("model")
    backbone = {k.removeprefix("backbone."): v for k, v in (model or {}).items() if k.startswith("backbone.")}
    if not backbone:
        raise WeightsError(f"sceneseg checkpoint {origin} holds no backbone weights (no 'backbone.*' keys)")
    return backbone


def _clean_state_dict(obj: object, origin: str) -> dict[str, Tensor]:
    """Unwrap {"state_dict": ...}, strip DataParallel's "module." and drop the ImageNet `fc`."""
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise WeightsError(f"{origin} is not a state_dict (a mapping of names to tensors)")
    state: dict[str, Tensor] = {}
    for key, value in obj.items():
        key = key.removeprefix("module.")
        if not key.startswith("fc."):
            state[key] = value
    return state


def load_strict(model: nn.Module, state: Mapping[str, Tensor], message: str) -> None:
    """Load `state` into `model` only if every key is present with its shape.

    Otherwise a WeightsError starting with `message` lists the missing, unexpected and wrongly
    shaped keys.
    """
    expected = model.state_dict()
    # Checkpoints older than PyTorch 0.4.1 lack BatchNorm's step counter; it is bookkeeping, not
    # a weight, so the model keeps its own.
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    mismatched = [
        f"{k} (file {tuple(v.shape)}, model {tuple(expected[k].shape)})"
        for k, v in state.items()
        if k in expected and v.shape != expected[k].shape
    ]
    problems = [
        f"{label}: {short_list(keys)}"
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", mismatched))
        if keys
    ]
    if problems:
        raise WeightsError(f"{message}; " + "; ".join(problems))
    model.load_state_dict({**expected, **state}, strict=True)


def short_list(keys: list[str], limit: int = 20) -> str:
    """Comma-separated keys, cut after `limit`: a wrong-depth file mismatches hundreds of keys and
    the first few already tell the story."""
    shown = ", ".join(keys[:limit])
    return shown if len(keys) <= limit else f"{shown}, ... ({len(keys) - limit} more)"
