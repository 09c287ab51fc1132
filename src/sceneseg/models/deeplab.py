"""DeepLabV3+ (Chen et al., ECCV 2018) on the dilated ResNets: ASPP for context, a stride-4 decoder for edges.

Dilated ResNet -> ASPP on layer4 -> upsampled to layer1's stride 4 and concatenated with layer1
reduced to 48 channels -> two 3x3 conv-BN-ReLU (`decoder_channels`, 256) -> 1x1 classifier -> logits
upsampled to the input's H x W. An optional auxiliary head on layer3 (PSPNet's, see
heads.psp_aux_head) adds a second loss in training; the paper has none, so it is off by default.

Choices where the paper leaves room:
- Dilation follows torchvision's convention (a dilated layer's first block keeps the previous
  rate), as torchvision's own DeepLab does, since its ImageNet weights are the usual start.
- ASPP's projection is followed by dropout 0.1: the authors' TensorFlow reference (keep_prob 0.9
  after the concat projection) is the setup behind the paper's numbers; 0.5 is torchvision's own
  choice, not the paper's.
- Upsampling is bilinear with align_corners=False (pixel centres, like SimpleSegmentationNet):
  there is no reference checkpoint whose arithmetic must be matched, unlike PSPNet.

Not in the paper: `decoder_stride=2` adds a second, narrow decoder stage on the stem's stride-2
output (FineStage), for classes a few pixels wide. At short side 240 a pole is 1-3 px wide, and even
exact class probabilities on a stride-4 grid cap its IoU at 0.33 (scripts/resolution_ceiling.py);
on a stride-2 grid at 0.79. The stage is kept narrow (64 channels): on ResNet-18 at output stride 16
a CamVid epoch took about 15 % longer with it (README, thin classes).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sceneseg.errors import ConfigError
from sceneseg.models.backbone import build_backbone
from sceneseg.models.base import SegmentationModel
from sceneseg.models.heads import psp_aux_head
from sceneseg.models.resnet import ResNet
from sceneseg.models.weights import load_backbone_weights

# The paper's atrous rates at output stride 16; at 8 the map is twice as fine, so they double.
ASPP_RATES = {16: (6, 12, 18), 8: (12, 24, 36)}
SKIP_CHANNELS = 48  # the paper's ablation: fewer low-level channels than ASPP's keeps context in charge
ASPP_CHANNELS = 256  # the paper's
DECODER_CHANNELS = 256  # the paper's; at stride 4 its two 3x3 convs cost more than the whole ASPP
ASPP_DROPOUT = 0.1
FINE_SKIP_CHANNELS = 32  # the stem's stride-2 skip, fewer still than layer1's, for the same reason
FINE_CHANNELS = 64
DECODER_STRIDES = (4, 2)
MID_SKIP_CHANNELS = 48  # layer2's stride-8 skip (mid_skip), as wide as layer1's


def conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int = 1, dilation: int = 1) -> nn.Sequential:
    """Conv (no bias: BN follows) -> BN -> ReLU; keys `0.weight` and `1.*`. Padding keeps H x W."""
    padding = dilation * (kernel_size // 2)
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding, dilation=dilation, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class ASPP(nn.Module):
    """Atrous Spatial Pyramid Pooling: a 1x1 branch, one 3x3 branch per rate and image pooling.

    The branches (each conv-BN-ReLU to `out_channels`) are concatenated and projected back to
    `out_channels` by a 1x1 conv-BN-ReLU, then dropout. Keys: `branches.<i>.{0,1}.*` (0 is the
    1x1 branch), `pooling.{0,1}.*` and `project.{0,1}.*`.
    """

    def __init__(self, in_channels: int, out_channels: int, rates: tuple[int, ...], dropout: float) -> None:
        super().__init__()
        self.rates = tuple(rates)
        self.branches = nn.ModuleList(
            [conv_bn_relu(in_channels, out_channels)]
            + [conv_bn_relu(in_channels, out_channels, 3, rate) for rate in self.rates]
        )
        # BN on a 1x1 map: it needs two frames per batch in training (check_trainable says so).
        self.pooling = conv_bn_relu(in_channels, out_channels)
        self.project = nn.Sequential(
            *conv_bn_relu((len(self.branches) + 1) * out_channels, out_channels), nn.Dropout(dropout)
        )

    def forward(self, x: Tensor) -> Tensor:
        # A mean over H and W exports as a plain reduction for any size (adaptive pooling would not),
        # and upsampling a 1x1 map gives the same value everywhere, which expand says directly.
        pooled = self.pooling(x.mean((2, 3), keepdim=True)).expand(-1, -1, x.shape[-2], x.shape[-1])
        return self.project(torch.cat([*(branch(x) for branch in self.branches), pooled], dim=1))


def _resize(x: Tensor, size: tuple[int, int]) -> Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class FineStage(nn.Module):
    """The stride-4 decoder's features, reduced to FINE_CHANNELS (1x1) and upsampled to the stem's
    stride 2, concatenated with the stem reduced to FINE_SKIP_CHANNELS, then one 3x3 conv-BN-ReLU.
    Keys: `reduce.{0,1}.*`, `skip.{0,1}.*`, `fuse.{0,1}.*`."""

    def __init__(self, decoder_channels: int, stem_channels: int) -> None:
        super().__init__()
        self.reduce = conv_bn_relu(decoder_channels, FINE_CHANNELS)
        self.skip = conv_bn_relu(stem_channels, FINE_SKIP_CHANNELS)
        self.fuse = conv_bn_relu(FINE_CHANNELS + FINE_SKIP_CHANNELS, FINE_CHANNELS, 3)

    def forward(self, decoded: Tensor, stem: Tensor) -> Tensor:
        fine = self.skip(stem)
        coarse = _resize(self.reduce(decoded), (fine.shape[-2], fine.shape[-1]))
        return self.fuse(torch.cat([coarse, fine], dim=1))


class DeepLabV3Plus(SegmentationModel):
    """`backbone` -> `aspp` on layer4 -> decoder (`skip` on layer1, `fuse`, `classifier`); `aux` on layer3.

    State_dict keys: `backbone.<torchvision ResNet key>`, `aspp.*` (see ASPP), `skip.{0,1}.*`,
    `fuse.{0,1}.{0,1}.*`, `classifier.{weight,bias}`, with aux_loss `aux.{0,1,4}.*`, and with
    decoder_stride 2 `fine.*` (see FineStage; the classifier then reads its 64 channels), with mid_skip
    `mid.{0,1}.*`.
    """

    final_layers = ("classifier", "aux.4")

    def __init__(
        self,
        backbone: ResNet,
        num_classes: int,
        aux_loss: bool = False,
        aspp_channels: int = ASPP_CHANNELS,
        decoder_stride: int = 4,
        decoder_channels: int = DECODER_CHANNELS,
        mid_skip: bool = False,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.num_classes = num_classes
        rates = ASPP_RATES[backbone.output_stride]
        self.aspp = ASPP(backbone.channels["layer4"], aspp_channels, rates, ASPP_DROPOUT)
        self.skip = conv_bn_relu(backbone.channels["layer1"], SKIP_CHANNELS)
        self.mid = conv_bn_relu(backbone.channels["layer2"], MID_SKIP_CHANNELS) if mid_skip else None
        fuse_in = aspp_channels + SKIP_CHANNELS + (MID_SKIP_CHANNELS if mid_skip else 0)
        self.fuse = nn.Sequential(
            conv_bn_relu(fuse_in, decoder_channels, 3),
            conv_bn_relu(decoder_channels, decoder_channels, 3),
        )
        self.fine = FineStage(decoder_channels, backbone.channels["stem"]) if decoder_stride == 2 else None
        self.classifier = nn.Conv2d(decoder_channels if self.fine is None else FINE_CHANNELS, num_classes, 1)
        self.aux = psp_aux_head(backbone.channels["layer3"], num_classes) if aux_loss else None

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        input_size = (x.shape[-2], x.shape[-1])
        features = self.backbone(x)
        low = self.skip(features["layer1"])
        size = (low.shape[-2], low.shape[-1])
        parts = [_resize(self.aspp(features["layer4"]), size), low]
        if self.mid is not None:
            parts.append(_resize(self.mid(features["layer2"]), size))
        decoded = self.fuse(torch.cat(parts, dim=1))
        if self.fine is not None:
            decoded = self.fine(decoded, features["stem"])
        logits = self.classifier(decoded)
        result = {"out": _resize(logits, input_size)}
        # The aux head is a training signal only; skipping it in eval saves its compute.
        if self.training and self.aux is not None:
            result["aux"] = _resize(self.aux(features["layer3"]), input_size)
        return result


def deeplabv3plus(
    num_classes: int,
    backbone: str = "resnet50",
    deep_stem: bool = False,
    pretrained: str | None = None,
    aux_loss: bool = False,
    output_stride: int = 16,
    aspp_channels: int = ASPP_CHANNELS,
    decoder_stride: int = 4,
    decoder_channels: int = DECODER_CHANNELS,
    mid_skip: bool = False,
) -> DeepLabV3Plus:
    """Build a DeepLabV3+; the defaults are the paper's training setup on ResNet-50 (output stride 16).

    `output_stride` is 16 (layer4 dilated) or 8 (layer3 and layer4; finer, about 3x the compute).
    `decoder_stride` is 4 (the paper's decoder) or 2 (FineStage on the stem as well).
    `mid_skip` adds layer2's stride-8 features (reduced to 48 channels) to the stride-4 decoder's input,
    a U-Net-like middle step between ASPP's stride 16 and layer1 (not in the paper).
    `aspp_channels` and `decoder_channels` (256 each, the paper's) set the widths of ASPP and of the
    stride-4 decoder convs; halving both raised ResNet-18's training rate 1.38x (README, "Speed").
    `pretrained` is None (random init), "imagenet" (torchvision's weights; plain stem only) or the
    path of a backbone weights file, as for the other models (see `load_backbone_weights`).
    """
    if num_classes < 1:
        raise ConfigError(f"num_classes must be at least 1, got {num_classes}")
    for key, value in (("aspp_channels", aspp_channels), ("decoder_channels", decoder_channels)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{key} = {value!r}: expected a positive integer")
    if decoder_stride not in DECODER_STRIDES:
        raise ConfigError(f"decoder_stride = {decoder_stride!r}: expected 4 (the paper's) or 2 (one stage finer)")
    trunk = build_backbone(backbone, deep_stem, output_stride, strides=sorted(ASPP_RATES))
    if pretrained is not None:
        load_backbone_weights(trunk, pretrained, backbone)
    return DeepLabV3Plus(trunk, num_classes, aux_loss, aspp_channels, decoder_stride, decoder_channels, mid_skip)
