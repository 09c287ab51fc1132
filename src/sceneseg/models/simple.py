"""The simplest segmentation model: a ResNet, a 1x1 conv classifier, bilinear upsampling.

It is the smoke-test and baseline model: fast on a laptop CPU, and the reference point every
stronger head (PSPNet) has to beat.
"""

from __future__ import annotations

from pathlib import Path

import torch.nn.functional as F
from torch import Tensor

from sceneseg.errors import ConfigError
from sceneseg.models.base import SegmentationModel
from sceneseg.models.heads import ConvClassifier
from sceneseg.models.resnet import RESNETS, ResNet
from sceneseg.models.weights import load_backbone_weights


class SimpleSegmentationNet(SegmentationModel):
    """`backbone` (ResNet) -> `classifier` on layer4 -> logits upsampled to the input's H x W.

    State_dict keys: `backbone.<torchvision ResNet key>` (e.g. `backbone.layer1.0.conv1.weight`)
    and `classifier.conv.weight` / `classifier.conv.bias`. The training engine treats everything
    outside `backbone.` as the head.
    """

    final_layers = ("classifier.conv",)

    def __init__(self, backbone: ResNet, num_classes: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.classifier = ConvClassifier(backbone.channels["layer4"], num_classes)
        self.num_classes = num_classes

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        logits = self.classifier(self.backbone(x)["layer4"])
        # align_corners=False samples pixel centres, so odd input sizes (201x201) map evenly.
        logits = F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return {"out": logits}


def simple_segmentation_net(
    num_classes: int,
    backbone: str = "resnet18",
    deep_stem: bool = False,
    pretrained: str | None = None,
    weights_cache: str | None = None,
) -> SimpleSegmentationNet:
    """Build a SimpleSegmentationNet at output stride 32.

    `pretrained` is None (random init), "imagenet" (torchvision's weights for `backbone`, cached in
    `weights_cache`) or the path of a backbone weights file; see `load_backbone_weights`.
    """
    if num_classes < 1:
        raise ConfigError(f"num_classes must be at least 1, got {num_classes}")
    if backbone not in RESNETS:
        raise ConfigError(f"unknown backbone {backbone!r}; choose one of {sorted(RESNETS)}")
    trunk = RESNETS[backbone](deep_stem=deep_stem)
    if pretrained is not None:
        load_backbone_weights(
            trunk, pretrained if pretrained == "imagenet" else Path(pretrained), backbone, cache_dir=weights_cache
        )
    return SimpleSegmentationNet(trunk, num_classes)
