"""Using a trained model: load it (sceneseg or reference PSPNet checkpoint), predict a frame.

A loaded model carries what drawing and inference need besides its weights: `class_names`,
`palette` (RGB per class) and `inference_settings` (the checkpoint's eval config).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .builders import dataset_classes
from .checkpoint import FORMAT, is_sceneseg_checkpoint, load_checkpoint, read_weights_file
from .config import Config, config_from_dict
from .data import CAMVID_CLASSES, CAMVID_PALETTE
from .data.files import read_image
from .data.transforms import normalize_images
from .errors import ConfigError, DataError, WeightsError
from .inference import InferenceSettings, Precision, predict_probs
from .models import build_model
from .models.pspnet import pspnet
from .models.reference import from_reference, infer_reference_config, is_reference_pspnet
from .models.weights import load_strict
from .visualize import generated_palette


def load_model(path: str | Path, num_classes: int | None = None, device: str | torch.device = "cpu") -> torch.nn.Module:
    """An eval-mode model from `path`, whose output ["out"] has the input's H and W.

    `path` is a sceneseg checkpoint (`sceneseg train`'s last.pt/best.pt: the model is rebuilt from
    the config stored in it) or a PSPNet checkpoint of the reference implementation hszhao/semseg
    ({"state_dict": ...}, architecture read from its keys, bins assumed (1, 2, 3, 6)). The model
    gets `class_names`, `palette` and `inference_settings` attributes (see `describe`).
    `num_classes`, if given, must equal the file's. Every weight must fit: a WeightsError lists
    missing, unexpected and wrongly shaped keys.
    """
    path = Path(path)
    content = read_weights_file(path)
    if is_sceneseg_checkpoint(content):
        checkpoint = load_checkpoint(path, content)
        model, state, config = _sceneseg_model(checkpoint, path, num_classes)
        names, palette = _dataset_metadata(config, checkpoint.get("class_names"))
        describe(model, names, palette, InferenceSettings.from_eval(config.eval))
    elif is_reference_pspnet(content):
        model, state = _reference_model(content, path, num_classes)
        # The reference's CamVid models have 11 classes in the order sceneseg uses too.
        known = model.num_classes == len(CAMVID_CLASSES)
        describe(model, CAMVID_CLASSES if known else None, CAMVID_PALETTE if known else None)
    else:
        raise WeightsError(
            f"{path} is neither a sceneseg checkpoint (a dict with format={FORMAT!r}, as "
            f"written by `sceneseg train`) nor a PSPNet checkpoint of the reference "
            f"implementation (hszhao/semseg: a state_dict with layer0..layer4, ppm, cls keys)"
        )
    load_strict(model, state, f"the weights in {path} do not fit the model")
    return model.to(device).eval()


def describe(
    model: Any,
    class_names: Sequence[str] | None = None,
    palette: Sequence[Sequence[int]] | None = None,
    settings: InferenceSettings | None = None,
) -> None:
    """Attach `class_names`, `palette` and `inference_settings` to `model` (needs `num_classes`).

    Names or a palette that do not have one entry per class are replaced by generic ones
    ("class_0", ... and generated colours) rather than refused: they only label the pictures.
    """
    n = model.num_classes
    if not (class_names and len(class_names) == n):
        class_names = [f"class_{i}" for i in range(n)]
    if not (palette and len(palette) == n):
        palette = generated_palette(n)
    model.class_names = tuple(class_names)
    model.palette = tuple(tuple(int(c) for c in colour) for colour in palette)
    model.inference_settings = settings or InferenceSettings()


def _dataset_metadata(config: Config, stored_names: Any) -> tuple[Sequence[str] | None, Any]:
    names, palette = dataset_classes(config.data)
    # `sceneseg train` stores the names of the classes it trained on, which is the better source.
    if isinstance(stored_names, (list, tuple)) and all(isinstance(name, str) for name in stored_names):
        names = stored_names
    return names, palette


def _sceneseg_model(
    checkpoint: dict, path: Path, num_classes: int | None
) -> tuple[torch.nn.Module, Mapping[str, Tensor], Config]:
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
        raise WeightsError(
            f"{path} has {config.model.num_classes} classes, but num_classes={num_classes} was asked for"
        )
    return model, checkpoint["model"], config


def _reference_model(
    content: object, path: Path, num_classes: int | None
) -> tuple[torch.nn.Module, Mapping[str, Tensor]]:
    options = infer_reference_config(content)
    if num_classes is not None and num_classes != options["num_classes"]:
        raise WeightsError(
            f"{path} has {options['num_classes']} classes (cls.4.weight), but num_classes={num_classes} was asked for"
        )
    return pspnet(**options), from_reference(content)


def preprocess(images: Sequence[np.ndarray]) -> Tensor:
    """RGB uint8 frames of one size -> the normalised (N, 3, H, W) float batch the models take:
    x / 255, minus the ImageNet mean, divided by the ImageNet std, per channel (normalize_images)."""
    return normalize_images(_uint8_batch(images))


def _uint8_batch(images: Sequence[np.ndarray]) -> Tensor:
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()


def predict_batch(
    model: Any,
    frames: Sequence[np.ndarray],
    settings: InferenceSettings,
    bf16: bool = False,
    return_probs: bool = False,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Label maps (N, H, W) and, if asked, probabilities (N, C, H, W) of same-size RGB frames."""
    parameter = next(iter(model.parameters()), None) if isinstance(model, torch.nn.Module) else None
    precision = Precision(parameter.device if parameter is not None else torch.device("cpu"), bf16=bf16)
    height, width = frames[0].shape[:2]
    probs = predict_probs(model, _uint8_batch(frames), settings, precision, model.num_classes, (height, width))
    # uint8 holds every class index of the usual datasets and is what index PNGs store.
    labels = probs.argmax(1).to(torch.uint8 if model.num_classes <= 256 else torch.int64)
    return labels.cpu().numpy(), probs.cpu().numpy() if return_probs else None


def predict(
    model: Any,
    image: np.ndarray | str | Path,
    settings: InferenceSettings | None = None,
    return_probs: bool = False,
    bf16: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Segment one frame: the label map (H, W) at the image's size, uint8 (int64 beyond 256 classes).

    `model` comes from `load_model` (or `sceneseg.export.load_onnx`); `image` is an RGB uint8
    (H, W, 3) array or an image file. `settings` default to the model's `inference_settings`
    (the checkpoint's eval config). With `return_probs`, returns (label, probabilities (C, H, W)
    float32). `bf16` computes in bfloat16 autocast (PyTorch models; fast on CPUs with AMX).
    """
    if isinstance(image, (str, Path)):
        image = read_image(Path(image))
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise DataError(f"image of shape {image.shape} and type {image.dtype}: expected RGB uint8 (H, W, 3)")
    settings = (settings or getattr(model, "inference_settings", None) or InferenceSettings()).check()
    labels, probs = predict_batch(model, [image], settings, bf16=bf16, return_probs=return_probs)
    return (labels[0], probs[0]) if return_probs else labels[0]
