"""ResNet backbones for segmentation, with torchvision's state_dict key names.

The modules and attribute names follow torchvision's ResNet (v1.5: the stride sits on the 3x3 conv
of the Bottleneck), so torchvision's ImageNet checkpoints load as they are, minus the classifier:
there is no avgpool/fc, and `forward` returns the feature map of every stage instead of logits.

`deep_stem=True` swaps the 7x7 stem for the three 3x3 convs of the PSPNet reference ResNet, whose
keys (conv1/bn1/conv2/bn2/conv3/bn3, then layer1...) match its published `resnet50_v2.pth`.
`sceneseg.models.weights.load_backbone_weights` fills a backbone from such a file or a download.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import Tensor, nn

_STAGES = ("layer1", "layer2", "layer3", "layer4")


def _conv3x3(in_ch: int, out_ch: int, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
    # padding == dilation keeps H and W at stride 1 for every dilation rate.
    return nn.Conv2d(in_ch, out_ch, 3, stride, padding=dilation, dilation=dilation, bias=False)


def _conv1x1(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convs (ResNet-18/34). Keys: conv1, bn1, conv2, bn2[, downsample.0, downsample.1]."""

    expansion = 1

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        dilation: int = 1,
    ) -> None:
        super().__init__()
        # torchvision refuses dilation here; we dilate both 3x3 convs (as dilated residual networks
        # do) so ResNet-18/34 can also run at output stride 8 or 16. Weight shapes do not change.
        self.conv1 = _conv3x3(inplanes, planes, stride, dilation)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(planes, planes, 1, dilation)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided, dilated), 1x1 expand x4 (ResNet-50/101). Keys: conv1..3, bn1..3."""

    expansion = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        dilation: int = 1,
    ) -> None:
        super().__init__()
        self.conv1 = _conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes, stride, dilation)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = _conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """ResNet trunk returning {"stem": ..., "layer1": ..., "layer4": ...}; see `channels` and `output_stride`.

    "stem" is the stem's stride-2 output before the max pool (for decoders that predict finer than
    stride 4).

    `replace_stride_with_dilation` has torchvision's meaning: one flag each for layer2, layer3 and
    layer4; a flagged layer keeps stride 1 and doubles the dilation, which carries over to the
    layers after it, while its first block still uses the previous dilation.

    `dilate_all_blocks=True` gives the first block of a flagged layer the new dilation too, as the
    PSPNet reference (hszhao/semseg) does by module surgery: with flags (False, True, True) every
    3x3 conv of layer3 has dilation 2 and of layer4 dilation 4. Same weights, different outputs,
    so reference checkpoints need it to reproduce the reference's logits.
    """

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        layers: Sequence[int],
        deep_stem: bool = False,
        replace_stride_with_dilation: Sequence[bool] = (False, False, False),
        zero_init_residual: bool = False,
        dilate_all_blocks: bool = False,
    ) -> None:
        super().__init__()
        if len(replace_stride_with_dilation) != 3:
            raise ValueError(
                f"replace_stride_with_dilation needs 3 flags (layer2, layer3, layer4), "
                f"got {tuple(replace_stride_with_dilation)}"
            )
        self.deep_stem = deep_stem
        self.dilate_all_blocks = dilate_all_blocks
        if deep_stem:
            self.conv1 = _conv3x3(3, 64, stride=2)
            self.bn1 = nn.BatchNorm2d(64)
            self.conv2 = _conv3x3(64, 64)
            self.bn2 = nn.BatchNorm2d(64)
            self.conv3 = _conv3x3(64, 128)
            self.bn3 = nn.BatchNorm2d(128)
            self.inplanes = 128
        else:
            self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
            self.bn1 = nn.BatchNorm2d(64)
            self.inplanes = 64
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)

        self.dilation = 1
        self.output_stride = 4  # stem conv and maxpool
        stem_channels = self.inplanes
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], 2, replace_stride_with_dilation[0])
        self.layer3 = self._make_layer(block, 256, layers[2], 2, replace_stride_with_dilation[1])
        self.layer4 = self._make_layer(block, 512, layers[3], 2, replace_stride_with_dilation[2])
        self.channels: dict[str, int] = {"stem": stem_channels}
        self.channels.update({name: planes * block.expansion for name, planes in zip(_STAGES, (64, 128, 256, 512))})
        self._init_weights(zero_init_residual)

    def _make_layer(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        planes: int,
        blocks: int,
        stride: int = 1,
        dilate: bool = False,
    ) -> nn.Sequential:
        previous_dilation = self.dilation
        if dilate:
            self.dilation *= stride
            stride = 1
        self.output_stride *= stride
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                _conv1x1(self.inplanes, planes * block.expansion, stride),
                nn.BatchNorm2d(planes * block.expansion),
            )
        first_dilation = self.dilation if dilate and self.dilate_all_blocks else previous_dilation
        layers = [block(self.inplanes, planes, stride, downsample, first_dilation)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes, dilation=self.dilation) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def _init_weights(self, zero_init_residual: bool) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:
            # Each residual branch then starts as the identity, which helps deep nets early on.
            for m in self.modules():
                if isinstance(m, Bottleneck):
                    nn.init.zeros_(m.bn3.weight)
                elif isinstance(m, BasicBlock):
                    nn.init.zeros_(m.bn2.weight)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        x = self.relu(self.bn1(self.conv1(x)))
        if self.deep_stem:
            x = self.relu(self.bn2(self.conv2(x)))
            x = self.relu(self.bn3(self.conv3(x)))
        features: dict[str, Tensor] = {"stem": x}
        x = self.maxpool(x)
        for name in _STAGES:
            x = getattr(self, name)(x)
            features[name] = x
        return features


# One flag per stage (layer2, layer3, layer4): trade that stage's stride for dilation.
Dilation = tuple[bool, bool, bool]
_NO_DILATION: Dilation = (False, False, False)


def resnet18(
    deep_stem: bool = False,
    replace_stride_with_dilation: Dilation = _NO_DILATION,
    *,
    zero_init_residual: bool = False,
    dilate_all_blocks: bool = False,
) -> ResNet:
    return ResNet(
        BasicBlock, (2, 2, 2, 2), deep_stem, replace_stride_with_dilation, zero_init_residual, dilate_all_blocks
    )


def resnet34(
    deep_stem: bool = False,
    replace_stride_with_dilation: Dilation = _NO_DILATION,
    *,
    zero_init_residual: bool = False,
    dilate_all_blocks: bool = False,
) -> ResNet:
    return ResNet(
        BasicBlock, (3, 4, 6, 3), deep_stem, replace_stride_with_dilation, zero_init_residual, dilate_all_blocks
    )


def resnet50(
    deep_stem: bool = False,
    replace_stride_with_dilation: Dilation = _NO_DILATION,
    *,
    zero_init_residual: bool = False,
    dilate_all_blocks: bool = False,
) -> ResNet:
    return ResNet(
        Bottleneck, (3, 4, 6, 3), deep_stem, replace_stride_with_dilation, zero_init_residual, dilate_all_blocks
    )


def resnet101(
    deep_stem: bool = False,
    replace_stride_with_dilation: Dilation = _NO_DILATION,
    *,
    zero_init_residual: bool = False,
    dilate_all_blocks: bool = False,
) -> ResNet:
    return ResNet(
        Bottleneck, (3, 4, 23, 3), deep_stem, replace_stride_with_dilation, zero_init_residual, dilate_all_blocks
    )


RESNETS: dict[str, Callable[..., ResNet]] = {
    "resnet18": resnet18,
    "resnet34": resnet34,
    "resnet50": resnet50,
    "resnet101": resnet101,
}
