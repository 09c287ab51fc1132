"""The state_dict layout of the PSPNet reference implementation (hszhao/semseg) and ours.

The reference keeps the ResNet stem as `layer0`, an nn.Sequential of (conv1, bn1, relu, conv2,
bn2, relu, conv3, bn3, relu, maxpool), and the stages as top-level `layer1`...`layer4`; its
`ppm`, `cls` and `aux` have exactly our keys. Its training script saves
{"state_dict": model.state_dict(), ...} of a DataParallel model, hence the `module.` prefixes.

    reference                        sceneseg
    layer0.0.* / layer0.1.*          backbone.conv1.* / backbone.bn1.*
    layer0.3.* / layer0.4.*          backbone.conv2.* / backbone.bn2.*   (deep stem only)
    layer0.6.* / layer0.7.*          backbone.conv3.* / backbone.bn3.*   (deep stem only)
    layerN.*                         backbone.layerN.*
    ppm.* / cls.* / aux.*            the same
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from torch import Tensor

from sceneseg.errors import WeightsError
from sceneseg.models.weights import short_list

# Our stem module name -> its index in the reference's layer0 Sequential (2, 5, 8: ReLU; 9: pool).
_STEM = {"conv1": "0", "bn1": "1", "conv2": "3", "bn2": "4", "conv3": "6", "bn3": "7"}
_STEM_INDEX = {index: name for name, index in _STEM.items()}
_STAGES = ("layer1", "layer2", "layer3", "layer4")
_HEADS = ("ppm", "cls", "aux")
REFERENCE_BINS = (1, 2, 3, 6)  # not stored in the weights; the paper's and reference's default
# (Bottleneck?, blocks in layer3) -> backbone name.
_DEPTHS = {(False, 2): "resnet18", (False, 6): "resnet34", (True, 6): "resnet50", (True, 23): "resnet101"}


def reference_state_dict(obj: Any) -> dict[str, Tensor] | None:
    """The bare state_dict of a reference checkpoint: unwrap {"state_dict": ...}, drop `module.`.

    None when `obj` is not a mapping of names to tensors.
    """
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not obj:
        return None
    if not all(isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items()):
        return None
    return {k.removeprefix("module."): v for k, v in obj.items()}


def is_reference_pspnet(obj: Any) -> bool:
    """True if `obj` (a checkpoint or state_dict) has the reference PSPNet's keys and only those."""
    state = reference_state_dict(obj)
    if state is None or "layer0.0.weight" not in state or "cls.4.weight" not in state:
        return False
    tops = {key.split(".", 1)[0] for key in state}
    return tops <= {"layer0", *_STAGES, *_HEADS}


def from_reference(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Reference keys (a checkpoint, with or without `module.`) -> sceneseg PSPNet keys."""
    bare = reference_state_dict(state)
    if bare is None:
        raise WeightsError("expected a reference PSPNet state_dict (a mapping of names to tensors)")
    return _rename_keys(bare, _from_reference_key, "reference")


def to_reference(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """sceneseg PSPNet keys -> the reference's (without `module.`; add it for DataParallel)."""
    return _rename_keys(state, _to_reference_key, "sceneseg")


def _from_reference_key(key: str) -> str | None:
    top, _, rest = key.partition(".")
    if top == "layer0":
        index, _, param = rest.partition(".")
        return f"backbone.{_STEM_INDEX[index]}.{param}" if index in _STEM_INDEX else None
    if top in _STAGES:
        return f"backbone.{key}"
    return key if top in _HEADS else None


def _to_reference_key(key: str) -> str | None:
    top, _, rest = key.partition(".")
    if top == "backbone":
        module, _, param = rest.partition(".")
        if module in _STEM:
            return f"layer0.{_STEM[module]}.{param}"
        return rest if module in _STAGES else None
    return key if top in _HEADS else None


def _rename_keys(state: Mapping[str, Tensor], rename: Callable[[str], str | None], layout: str) -> dict[str, Tensor]:
    """`state` with every key renamed; keys that `rename` does not know (None) are an error."""
    converted: dict[str, Tensor] = {}
    unknown: list[str] = []
    for key, value in state.items():
        new = rename(key)
        if new is None:
            unknown.append(key)
        else:
            converted[new] = value
    if unknown:
        raise WeightsError(f"keys not in the {layout} PSPNet layout: {short_list(unknown)}")
    return converted


def _block_count(state: Mapping[str, Tensor], prefix: str) -> int:
    return len({key[len(prefix) :].split(".", 1)[0] for key in state if key.startswith(prefix)})


def infer_reference_config(obj: Any, bins: Sequence[int] | None = None) -> dict[str, Any]:
    """The `pspnet` factory options that a reference checkpoint's keys and shapes determine.

    The PPM's bin sizes are not in the weights (AdaptiveAvgPool2d has none): `bins` if given,
    else the reference's (1, 2, 3, 6), which must then match the number of branches stored.
    """
    state = reference_state_dict(obj)
    if state is None or not is_reference_pspnet(state):
        raise WeightsError("expected a reference PSPNet state_dict (layer0..layer4, cls, ...)")
    bottleneck = "layer1.0.conv3.weight" in state
    layer3 = _block_count(state, "layer3.")
    backbone = _DEPTHS.get((bottleneck, layer3))
    if backbone is None:
        kind = "Bottleneck" if bottleneck else "BasicBlock"
        raise WeightsError(f"unsupported backbone: {layer3} {kind} blocks in layer3 (supported: ResNet-18/34/50/101)")
    use_ppm = any(key.startswith("ppm.") for key in state)
    branches = _block_count(state, "ppm.features.")
    chosen = tuple(bins) if bins is not None else REFERENCE_BINS
    if use_ppm and len(chosen) != branches:
        raise WeightsError(
            f"the checkpoint's pyramid pooling has {branches} branches but bins {chosen} has "
            f"{len(chosen)}; the bin sizes are not stored in the weights, so give them"
        )
    return {
        "num_classes": int(state["cls.4.weight"].shape[0]),
        "backbone": backbone,
        "deep_stem": "layer0.3.weight" in state,
        "use_ppm": use_ppm,
        "aux_loss": any(key.startswith("aux.") for key in state),
        "bins": chosen,
        "output_stride": 8,  # the reference always dilates layer3 and layer4
    }
