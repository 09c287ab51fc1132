"""Segmentation models, built by name through the plain `MODELS` dict of factories.

Every model returns {"out": logits of shape (N, num_classes, H, W)} (plus "aux" for models with
an auxiliary head) and has a `backbone` attribute: parameters outside `backbone.` form the head.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from torch import nn

from sceneseg.errors import ConfigError
from sceneseg.models.deeplab import ASPP, DeepLabV3Plus, deeplabv3plus
from sceneseg.models.heads import (
    ConvClassifier,
    PyramidPoolingModule,
    psp_aux_head,
    psp_classifier,
)
from sceneseg.models.pspnet import PSPNet, pspnet
from sceneseg.models.reference import (
    from_reference,
    infer_reference_config,
    is_reference_pspnet,
    to_reference,
)
from sceneseg.models.resnet import (
    RESNETS,
    BasicBlock,
    Bottleneck,
    ResNet,
    resnet18,
    resnet34,
    resnet50,
    resnet101,
)
from sceneseg.models.simple import SimpleSegmentationNet, simple_segmentation_net
from sceneseg.models.weights import TORCHVISION_URLS, load_backbone_weights
from sceneseg.typecheck import did_you_mean

if TYPE_CHECKING:
    from sceneseg.config import ModelConfig

MODELS: dict[str, Callable[..., nn.Module]] = {
    "simple": simple_segmentation_net,
    "pspnet": pspnet,
    "deeplabv3plus": deeplabv3plus,
}


def model_options(config: ModelConfig) -> tuple[Callable[..., nn.Module], dict[str, Any]]:
    """The factory `MODELS[config.name]` and the options set (not null) in `config`, checked against
    its signature; `sceneseg config` calls this too, so a wrong model shows before any training."""
    if config.name not in MODELS:
        raise ConfigError(
            f"model.name = {config.name!r}: expected one of {', '.join(sorted(MODELS))}"
            f"{did_you_mean(config.name, MODELS)}"
        )
    factory = MODELS[config.name]
    options = {k: v for k, v in dataclasses.asdict(config).items() if k != "name" and v is not None}
    accepted = inspect.signature(factory).parameters
    foreign = sorted(set(options) - set(accepted))
    if foreign:
        raise ConfigError(
            f"model.{foreign[0]} does not apply to model {config.name!r}; set it to null "
            f"(its options: {', '.join(k for k in accepted if k != 'num_classes')})"
        )
    return factory, options


def build_model(config: ModelConfig) -> nn.Module:
    """Call the factory `MODELS[config.name]` with the options set (not null) in `config`."""
    factory, options = model_options(config)
    return factory(**options)


__all__ = [
    "ASPP",
    "MODELS",
    "RESNETS",
    "TORCHVISION_URLS",
    "BasicBlock",
    "Bottleneck",
    "ConvClassifier",
    "DeepLabV3Plus",
    "PSPNet",
    "PyramidPoolingModule",
    "ResNet",
    "SimpleSegmentationNet",
    "build_model",
    "model_options",
    "deeplabv3plus",
    "from_reference",
    "infer_reference_config",
    "is_reference_pspnet",
    "load_backbone_weights",
    "psp_aux_head",
    "psp_classifier",
    "pspnet",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "simple_segmentation_net",
    "to_reference",
]
