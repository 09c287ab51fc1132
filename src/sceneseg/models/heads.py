"""Segmentation heads: modules that turn backbone features into per-pixel class logits.

Heads return logits at the resolution of the features they are given; upsampling to the input
size is the model's job, so one head can serve backbones of any output stride.
"""

from __future__ import annotations

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
