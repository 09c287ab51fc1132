"""Segmentation models, built by name through the plain `MODELS` dict of factories.

Every model returns {"out": logits of shape (N, num_classes, H, W)} (plus "aux" for models with
an auxiliary head) and has a `backbone` attribute: parameters outside `backbone.` form the head.
"""

from __future__ import annotations

from typing import Callable

from torch import nn

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
from sceneseg.models.weights import TORCHVISION_URLS, load_backbone_weights
from sceneseg.models.simple import SimpleSegmentationNet, simple_segmentation_net

MODELS: dict[str, Callable[..., nn.Module]] = {
    "simple": simple_segmentation_net,
    "pspnet": pspnet,
}

__all__ = [
    "MODELS",
    "RESNETS",
    "TORCHVISION_URLS",
    "BasicBlock",
    "Bottleneck",
    "ConvClassifier",
    "PSPNet",
    "PyramidPoolingModule",
    "ResNet",
    "SimpleSegmentationNet",
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
