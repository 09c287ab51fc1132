"""Starting a model from a trained checkpoint of another task (transfer learning).

Every tensor whose name and shape fit is kept. The model's final classifier convolutions
(`model.final_layers`) keep their fresh initialisation when their shape differs, which is what a
change in the number of classes does. Anything else that does not fit is an error listing the keys:
silently training half a model from scratch is worse than stopping.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from .checkpoint import is_sceneseg_checkpoint, load_checkpoint, read_weights_file
from .errors import WeightsError
from .models.base import SegmentationModel
from .models.reference import from_reference, is_reference_pspnet, reference_state_dict
from .models.weights import short_list


def source_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Model weights of a sceneseg checkpoint or a reference PSPNet checkpoint, in sceneseg's names."""
    content = read_weights_file(path)
    if is_sceneseg_checkpoint(content):
        return dict(load_checkpoint(path, content)["model"])
    if is_reference_pspnet(content):
        return from_reference(reference_state_dict(content))
    raise WeightsError(f"init_from {path}: expected a sceneseg checkpoint or a reference PSPNet checkpoint")


def init_from(model: SegmentationModel, path: str | Path, log: Callable[[str], None] = print) -> dict[str, list[str]]:
    """Load what fits of `path` into `model`; returns (and logs) what was kept, replaced and dropped."""
    source = source_state_dict(path)
    target = model.state_dict()
    final = tuple(f"{name}." for name in model.final_layers)
    kept, replaced, misfit = [], [], []
    for key, value in target.items():
        if key in source and source[key].shape == value.shape:
            kept.append(key)
        elif key.startswith(final):
            replaced.append(key)
        else:
            found = f"file {tuple(source[key].shape)}" if key in source else "missing in file"
            misfit.append(f"{key} (model {tuple(value.shape)}, {found})")
    if misfit:
        raise WeightsError(
            f"init_from {path} does not fit the model (another backbone or head?): " + short_list(misfit)
        )
    dropped = sorted(set(source) - set(target))
    model.load_state_dict({**target, **{k: source[k] for k in kept}})
    log(
        f"init_from {path}: kept {len(kept)} tensors, replaced {len(replaced)} "
        f"({', '.join(replaced) or 'none'}), dropped {len(dropped)} ({', '.join(dropped[:8]) or 'none'}"
        f"{', ...' if len(dropped) > 8 else ''})"
    )
    return {"kept": kept, "replaced": replaced, "dropped": dropped}
