"""Segmentation heads: modules that turn backbone features into per-pixel class logits.

Heads return logits at the resolution of the features they are given; upsampling to the input
size is the model's job, so one head can serve backbones of any output stride.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class ConvClassifier(nn.Module):
    """A per-pixel linear classifier: one 1x1 conv from `in_channels` features to class logits.

    State_dict keys (under the model's attribute name, e.g. `classifier.`):
    `conv.weight` of shape (num_classes, in_channels, 1, 1) and `conv.bias` of shape (num_classes,).
    """

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.num_classes = num_classes
        # The bias matters here: it lets the head learn class priors (road vs. traffic light)
        # independently of the features; nothing normalises after this layer.
        self.conv = nn.Conv2d(in_channels, num_classes, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


def adaptive_avg_pool2d_sliced(x: Tensor, output_size: int | tuple[int, int]) -> Tensor:
    """F.adaptive_avg_pool2d written with slices of the input, for export with dynamic H and W.

    Output cell i of n along a side of length s averages input rows floor(i*s/n) to
    ceil((i+1)*s/n), PyTorch's own bounds, so the result equals adaptive pooling up to float
    rounding (about 1e-7: the sums run in another order). The bounds are integer arithmetic on
    the input's shape, which exporters record as shape computations instead of constants. The
    2D mean is taken one side at a time (rows, then columns), 2n slices instead of n*n.
    """
    out_h, out_w = (output_size, output_size) if isinstance(output_size, int) else output_size
    return _mean_cells(_mean_cells(x, -2, out_h), -1, out_w)


def _mean_cells(x: Tensor, dim: int, cells: int) -> Tensor:
    size = x.shape[dim]
    parts = []
    for i in range(cells):
        start = (i * size) // cells
        end = ((i + 1) * size + cells - 1) // cells  # ceil division
        parts.append(x.narrow(dim, start, end - start).mean(dim, keepdim=True))
    return torch.cat(parts, dim)


def _exporting() -> bool:
    is_exporting = getattr(torch.compiler, "is_exporting", None)  # torch >= 2.4
    return torch.onnx.is_in_onnx_export() or (is_exporting is not None and is_exporting())


class ExportableAdaptiveAvgPool2d(nn.AdaptiveAvgPool2d):
    """nn.AdaptiveAvgPool2d that switches to `adaptive_avg_pool2d_sliced` while being exported.

    Exporters turn adaptive pooling into a fixed kernel computed from the example input's size
    (the TorchScript exporter refuses dynamic sizes, torch.export bakes the example's indices in
    and the graph fails at other sizes). Eager runs keep PyTorch's kernel, so predictions stay
    bit-identical to the reference implementation; exported graphs differ by float rounding only.
    """

    def forward(self, x: Tensor) -> Tensor:
        size = self.output_size
        sizes = (size, size) if isinstance(size, int) else tuple(size)
        # None ("keep that side") cannot be unrolled into slices; PPM bins never use it.
        if _exporting() and None not in sizes:
            return adaptive_avg_pool2d_sliced(x, sizes)
        return super().forward(x)


class PyramidPoolingModule(nn.Module):
    """PSPNet's Pyramid Pooling Module: the input, concatenated with one pooled branch per bin.

    Branch i is AdaptiveAvgPool2d(bins[i]) -> 1x1 conv to in_channels // len(bins) (no bias, BN
    follows) -> BN -> ReLU, upsampled back bilinearly with align_corners=True as the reference
    does. The output has in_channels + len(bins) * (in_channels // len(bins)) = 2 * in_channels
    channels, its first in_channels being the input unchanged. The pooling is
    ExportableAdaptiveAvgPool2d, so exported graphs take inputs of any size.

    State_dict keys match the reference's `ppm.` exactly: `features.<i>.1.weight` (conv) and
    `features.<i>.2.{weight,bias,running_mean,running_var,num_batches_tracked}` (BN); index 0 is
    the pooling and 3 the ReLU, which hold no weights.
    """

    def __init__(self, in_channels: int, bins: Sequence[int] = (1, 2, 3, 6)) -> None:
        super().__init__()
        if not bins or any(b < 1 for b in bins):
            raise ValueError(f"bins must be a non-empty list of positive sizes, got {tuple(bins)}")
        if in_channels % len(bins):
            raise ValueError(f"in_channels {in_channels} is not divisible by {len(bins)} bins")
        reduction = in_channels // len(bins)
        self.in_channels = in_channels
        self.bins = tuple(bins)
        self.out_channels = in_channels + reduction * len(bins)
        self.features = nn.ModuleList(
            nn.Sequential(
                ExportableAdaptiveAvgPool2d(size),
                nn.Conv2d(in_channels, reduction, kernel_size=1, bias=False),
                nn.BatchNorm2d(reduction),
                nn.ReLU(inplace=True),
            )
            for size in self.bins
        )

    def forward(self, x: Tensor) -> Tensor:
        size = x.shape[-2:]
        pooled = [F.interpolate(branch(x), size, mode="bilinear", align_corners=True) for branch in self.features]
        return torch.cat([x, *pooled], dim=1)


def conv_bn_relu_classifier(in_channels: int, hidden: int, num_classes: int, dropout: float = 0.1) -> nn.Sequential:
    """3x3 conv (no bias) -> BN -> ReLU -> Dropout2d -> 1x1 conv with bias: PSPNet's `cls`/`aux`.

    A Sequential so the keys are the reference's: `0.weight` (3x3 conv), `1.*` (BN) and
    `4.weight`/`4.bias` (the classifier); 2 (ReLU) and 3 (dropout) hold no weights.
    """
    return nn.Sequential(
        nn.Conv2d(in_channels, hidden, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(hidden),
        nn.ReLU(inplace=True),
        nn.Dropout2d(p=dropout),
        nn.Conv2d(hidden, num_classes, kernel_size=1),
    )


def psp_classifier(in_channels: int, num_classes: int, hidden: int = 512) -> nn.Sequential:
    """PSPNet's main head: `in_channels` (4096 with the PPM on ResNet-50/101) -> 512 -> classes."""
    return conv_bn_relu_classifier(in_channels, hidden, num_classes)


def psp_aux_head(in_channels: int, num_classes: int, hidden: int | None = None) -> nn.Sequential:
    """PSPNet's auxiliary head on layer3 (1024 channels on ResNet-50/101) -> 256 -> classes.

    `hidden` defaults to a quarter of `in_channels`: the reference's 1024 -> 256, scaled to any
    backbone (256 -> 64 on ResNet-18/34). DeepLabV3+ uses the same head on its layer3.
    """
    return conv_bn_relu_classifier(in_channels, in_channels // 4 if hidden is None else hidden, num_classes)
