"""PSPNet (Zhao et al., CVPR 2017) as in its reference implementation, hszhao/semseg.

Dilated ResNet -> Pyramid Pooling Module on layer4 -> `cls` head; an auxiliary head `aux` on
layer3 adds a second loss in training (the engine weighs it with train.aux_weight).

Differences from the reference, all in what is returned, none in the weights or the arithmetic:
- zoom_factor 8 returns logits at the input's exact H x W (bilinear, align_corners=True), for any
  input size. The reference asks for (H - 1) % 8 == 0 and returns (H - 1) / 8 * 8 + 1 = H, so
  both agree on those sizes (e.g. 473, 65).
- zoom_factor 1, 2 or 4 returns the layer4 feature size times the zoom (e.g. 9 x 9 features of a
  65 x 65 input give 36 x 36 at zoom 4), where the reference returns (f - 1) * zoom + 1 (33).
- "aux" is returned only in training mode and only with aux_loss on; the loss is the engine's.

ResNet-18/34 (BasicBlock, 512 channels at layer4 and 256 at layer3) are supported for CPU-sized
runs. Every width scales with the backbone: PPM branches get C / len(bins) channels, and the
hidden widths of `cls` and `aux` are a quarter of the channels of layer4 and layer3. On ResNet-50/
101 that is exactly the reference's 2048 -> 4 x 512 -> 512 and 1024 -> 256; on ResNet-18/34 it is
512 -> 4 x 128 -> 128 and 256 -> 64.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor

from sceneseg.errors import ConfigError
from sceneseg.models.backbone import build_backbone
from sceneseg.models.base import SegmentationModel
from sceneseg.models.heads import PyramidPoolingModule, psp_aux_head, psp_classifier
from sceneseg.models.resnet import ResNet
from sceneseg.models.weights import load_backbone_weights

ZOOM_FACTORS = (1, 2, 4, 8)


class PSPNet(SegmentationModel):
    """`backbone` -> `ppm` (None when off) -> `cls`; `aux` (None when off) on layer3.

    State_dict keys: `backbone.<ResNet key>`, `ppm.features.<i>.{1,2}.*`, `cls.{0,1,4}.*` and
    `aux.{0,1,4}.*`; `sceneseg.models.reference` maps them to and from the reference's layout.
    """

    final_layers = ("cls.4", "aux.4")

    def __init__(
        self,
        backbone: ResNet,
        num_classes: int,
        use_ppm: bool = True,
        aux_loss: bool = True,
        bins: Sequence[int] = (1, 2, 3, 6),
        zoom_factor: int = 8,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.num_classes = num_classes
        self.zoom_factor = zoom_factor
        channels = backbone.channels["layer4"]
        self.ppm = PyramidPoolingModule(channels, bins) if use_ppm else None
        cls_in = self.ppm.out_channels if self.ppm is not None else channels
        self.cls = psp_classifier(cls_in, num_classes, hidden=channels // 4)
        aux_in = backbone.channels["layer3"]
        self.aux = psp_aux_head(aux_in, num_classes) if aux_loss else None

    def _resize(self, logits: Tensor, input_size: tuple[int, int]) -> Tensor:
        if self.zoom_factor == 8:
            size = input_size
        elif self.zoom_factor == 1:
            return logits
        else:
            size = (logits.shape[-2] * self.zoom_factor, logits.shape[-1] * self.zoom_factor)
        # align_corners=True like the reference, so its checkpoints give its logits.
        return F.interpolate(logits, size=size, mode="bilinear", align_corners=True)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        input_size = (x.shape[-2], x.shape[-1])
        features = self.backbone(x)
        top = features["layer4"]
        if self.ppm is not None:
            top = self.ppm(top)
        result = {"out": self._resize(self.cls(top), input_size)}
        # The aux head is a training signal only; skipping it in eval saves its compute.
        if self.training and self.aux is not None:
            result["aux"] = self._resize(self.aux(features["layer3"]), input_size)
        return result


def pspnet(
    num_classes: int,
    backbone: str = "resnet50",
    deep_stem: bool = True,
    pretrained: str | None = None,
    use_ppm: bool = True,
    aux_loss: bool = True,
    bins: tuple[int, ...] = (1, 2, 3, 6),
    output_stride: int = 8,
    zoom_factor: int = 8,
) -> PSPNet:
    """Build a PSPNet; the defaults are the paper's PSPNet-50 (deep stem, output stride 8).

    `pretrained` is None (random init), "imagenet" (torchvision's weights; plain stem only) or
    the path of a backbone weights file: a torchvision ResNet checkpoint for the plain stem, the
    reference's `resnet50_v2.pth`/`resnet101_v2.pth` for the deep stem. Complete reference PSPNet
    checkpoints load through `sceneseg.load_model` instead.
    """
    if num_classes < 1:
        raise ConfigError(f"num_classes must be at least 1, got {num_classes}")
    if zoom_factor not in ZOOM_FACTORS:
        raise ConfigError(f"zoom_factor = {zoom_factor!r}: expected one of 1, 2, 4 or 8")
    bins = tuple(bins)
    if not bins or any(isinstance(b, bool) or not isinstance(b, int) or b < 1 for b in bins):
        raise ConfigError(f"bins = {list(bins)!r}: expected a non-empty list of positive integers")
    # The reference dilates every block of layer3/layer4 (see ResNet's dilate_all_blocks).
    trunk = build_backbone(backbone, deep_stem, output_stride, dilate_all_blocks=True)
    channels = trunk.channels["layer4"]
    if use_ppm and channels % len(bins):
        raise ConfigError(
            f"bins = {list(bins)!r}: {backbone} has {channels} channels at layer4, which "
            f"{len(bins)} pyramid branches cannot share equally; use 1, 2, 4 or 8 bins"
        )
    if pretrained is not None:
        load_backbone_weights(trunk, pretrained, backbone)
    return PSPNet(trunk, num_classes, use_ppm, aux_loss, bins, zoom_factor)
