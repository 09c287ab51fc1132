"""A segmentation model's ResNet trunk, built by name at an output stride: shared by the model families."""

from __future__ import annotations

from collections.abc import Sequence

from sceneseg.errors import ConfigError
from sceneseg.models.resnet import RESNETS, Dilation, ResNet

# Which of layer2, layer3, layer4 trade their stride for dilation at each output stride.
DILATION_FLAGS: dict[int, Dilation] = {
    8: (False, True, True),
    16: (False, False, True),
    32: (False, False, False),
}


def build_backbone(
    name: str,
    deep_stem: bool,
    output_stride: int = 32,
    *,
    strides: Sequence[int] = tuple(DILATION_FLAGS),
    dilate_all_blocks: bool = False,
) -> ResNet:
    """ResNet `name` at `output_stride` (one of `strides`, those the model supports), randomly initialised.

    Pretrained weights go in afterwards with `load_backbone_weights`, once the model has checked
    its own options against the trunk (a bad option should not cost a download first).
    """
    if name not in RESNETS:
        raise ConfigError(f"unknown backbone {name!r}; choose one of {sorted(RESNETS)}")
    if output_stride not in strides:
        *rest, last = (str(s) for s in strides)
        allowed = f"{', '.join(rest)} or {last}" if rest else last
        raise ConfigError(f"output_stride = {output_stride!r}: expected one of {allowed}")
    return RESNETS[name](
        deep_stem=deep_stem,
        replace_stride_with_dilation=DILATION_FLAGS[output_stride],
        dilate_all_blocks=dilate_all_blocks,
    )
