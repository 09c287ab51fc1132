"""ONNX export of segmentation models, and running the exported file with onnxruntime.

The graph takes the normalised image batch "image" (N, 3, H, W) float32, RGB, x / 255 minus the
ImageNet mean divided by its std (sceneseg.api.preprocess), and returns "logits" (N, C, H, W) at
the input's size; N, H and W are dynamic (H and W at least 32). Class names, palette and the
checkpoint's inference settings travel in the file's metadata_props, so `sceneseg predict
model.onnx ...` draws the same pictures as with the checkpoint.

The exporter is torch.onnx.export(dynamo=True), torch.export-based: the default and maintained
one since torch 2.9 (the TorchScript exporter also works but is deprecated). It needs onnxscript.
PSPNet's adaptive pooling exports through ExportableAdaptiveAvgPool2d (models/heads.py).
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
import json
import logging
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .api import describe
from .errors import DataError, SceneSegError, WeightsError
from .inference import InferenceSettings

PREPROCESSING = "RGB, x / 255, minus ImageNet mean (0.485, 0.456, 0.406), divided by std (0.229, 0.224, 0.225), NCHW"
MIN_SIZE = 32  # smallest height and width the exported graph is valid for
_EXAMPLE = (2, 3, 96, 128)  # traced shape: batch > 1 and H != W, so no dimension is taken for a constant
_CHECK = (3, 3, 72, 88)  # a second shape the written file must agree with PyTorch on


class _LogitsOnly(nn.Module):
    """The model with a tensor output: ONNX graphs return tensors, not dicts."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: Tensor) -> Tensor:
        return self.model(image)["out"]


def _require(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise SceneSegError(f"ONNX support needs the {module} package: pip install 'sceneseg[export]'") from None


def export_onnx(model: nn.Module, path: str | Path) -> float:
    """Write `model` (from load_model: eval mode, "out" at the input's size) to the ONNX file `path`.

    Returns the largest difference to PyTorch's logits, relative to their range, at a batch size
    and frame size other than the traced ones; above 1e-3 nothing is written and it raises.
    """
    _require("onnxscript")
    path = Path(path)
    # A copy: the caller's model stays on its device, in its precision and mode.
    wrapper = _LogitsOnly(copy.deepcopy(model)).to("cpu").float().eval()
    example = torch.randn(*_EXAMPLE)
    # Without a lower bound torch.export (2.13) rewrites the feature sizes as multiples of the pooling
    # bins seen in the example, and the graph then fails at other sizes; from 32 up it stays general.
    dims = {
        0: torch.export.Dim("batch"),
        2: torch.export.Dim("height", min=MIN_SIZE),
        3: torch.export.Dim("width", min=MIN_SIZE),
    }
    # The exporter logs skipped torchvision ops and deprecation notes that say nothing about this model.
    exporter_log = logging.getLogger("torch.onnx")
    level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                wrapper,
                (example,),
                dynamo=True,
                dynamic_shapes=({**dims},),
                input_names=["image"],
                output_names=["logits"],
                verbose=False,
            )
    except Exception as exc:  # the exporter raises many types; the first line says what failed
        raise SceneSegError(f"ONNX export of {type(model).__name__} failed: {str(exc).splitlines()[0]}") from None
    finally:
        exporter_log.setLevel(level)
    program.model.metadata_props.update(_metadata(model))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        program.save(tmp, external_data=False)
        error = _compare(wrapper, OnnxModel(tmp))
        if not error <= 1e-3:
            raise SceneSegError(
                f"the exported graph differs from PyTorch by {error:.2g} of the logit range "
                f"at shape {_CHECK}; {path} was not written"
            )
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return error


def _metadata(model: nn.Module) -> dict[str, str]:
    names = getattr(model, "class_names", None) or [f"class_{i}" for i in range(model.num_classes)]
    settings = getattr(model, "inference_settings", None) or InferenceSettings()
    return {
        "sceneseg.class_names": json.dumps(list(names)),
        "sceneseg.palette": json.dumps([list(c) for c in getattr(model, "palette", ())]),
        "sceneseg.inference_settings": json.dumps(dataclasses.asdict(settings)),
        "sceneseg.preprocessing": PREPROCESSING,
    }


def _compare(wrapper: nn.Module, exported: OnnxModel) -> float:
    torch.manual_seed(0)
    image = torch.randn(*_CHECK)
    with torch.no_grad():
        expected = wrapper(image)
    try:
        got = exported(image)["out"]
    except Exception as exc:  # onnxruntime's own types: the graph does not run at this shape
        raise SceneSegError(f"the exported graph fails at shape {_CHECK}: {str(exc).splitlines()[0]}") from None
    if got.shape != expected.shape:
        return float("inf")
    spread = float(expected.max() - expected.min()) or 1.0
    return float((got - expected).abs().max()) / spread


class OnnxModel:
    """An exported file run by onnxruntime, usable wherever a loaded model is (sceneseg.predict,
    inference.predict_probs): calling it on a normalised batch returns {"out": logits}."""

    def __init__(self, path: str | Path) -> None:
        ort = _require("onnxruntime")
        self.path = Path(path)
        if not self.path.is_file():
            raise WeightsError(f"ONNX file {self.path} does not exist")
        options = ort.SessionOptions()
        # Follow PyTorch's thread count (OMP_NUM_THREADS) so both runtimes share a machine alike.
        options.intra_op_num_threads = torch.get_num_threads()
        # CUDA when this onnxruntime build has it; the CPU provider is always there.
        available = ort.get_available_providers()
        providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own exception types for bad files
            raise WeightsError(
                f"cannot load {self.path}: not a valid ONNX model ({str(exc).splitlines()[0]})"
            ) from None
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4 or len(outputs[0].shape) != 4:
            raise WeightsError(
                f"{self.path} is not a segmentation graph: expected one (N, 3, H, W) input "
                f"and (N, C, H, W) logits, as `sceneseg export` writes"
            )
        self.input_name = inputs[0].name
        names, palette, settings = self._metadata(self.session.get_modelmeta().custom_metadata_map)
        channels = outputs[0].shape[1]
        self.num_classes = len(names) or (channels if isinstance(channels, int) else 0)
        if not self.num_classes:
            raise WeightsError(f"{self.path} names no classes and its output has no fixed class count")
        describe(self, names, palette, settings)

    def _metadata(self, meta: dict[str, str]) -> tuple[list, list, InferenceSettings | None]:
        """Class names, palette and settings written by export_onnx (empty/None in other files)."""
        try:
            names = json.loads(meta.get("sceneseg.class_names", "[]"))
            palette = json.loads(meta.get("sceneseg.palette", "[]"))
            stored = json.loads(meta.get("sceneseg.inference_settings", "null"))
            settings = None if stored is None else InferenceSettings(**{**stored, "scales": tuple(stored["scales"])})
        except (ValueError, TypeError, KeyError) as exc:  # JSONDecodeError is a ValueError
            raise WeightsError(f"{self.path}: its sceneseg metadata is not valid ({exc})") from None
        return names, palette, settings

    def __call__(self, image: Tensor) -> dict[str, Tensor]:
        if min(image.shape[-2:]) < MIN_SIZE:
            raise DataError(
                f"{self.path} takes frames of at least {MIN_SIZE}x{MIN_SIZE} pixels, got "
                f"{tuple(image.shape[-2:])}; use a larger --short-side or --crop-size"
            )
        array = np.ascontiguousarray(image.detach().float().cpu().numpy())
        logits = self.session.run(None, {self.input_name: array})[0]
        return {"out": torch.from_numpy(logits).to(image.device)}

    def __repr__(self) -> str:
        return f"OnnxModel({str(self.path)!r}, num_classes={self.num_classes})"


def load_onnx(path: str | Path) -> OnnxModel:
    """An exported model, ready for sceneseg.predict (class names and palette from its metadata)."""
    return OnnxModel(path)
