"""What the trainer may rely on in every segmentation model."""

from __future__ import annotations

from torch import nn


class SegmentationModel(nn.Module):
    """A model with a `backbone` (everything else is the head) and named final classifiers.

    `final_layers` names the 1x1 convolutions that map features to classes: the only tensors that
    transfer learning replaces when the number of classes changes.
    """

    final_layers: tuple[str, ...] = ()
    backbone: nn.Module

    def __init__(self) -> None:
        super().__init__()
        self.backbone_frozen = False

    def freeze_backbone(self) -> None:
        """Keep the backbone exactly as loaded: no gradients, and BatchNorm statistics frozen too."""
        for parameter in self.backbone.parameters():
            parameter.requires_grad_(False)
        self.backbone_frozen = True
        self.backbone.eval()

    def train(self, mode: bool = True) -> SegmentationModel:
        super().train(mode)
        if self.backbone_frozen:
            # BatchNorm in train mode would update its running statistics from the new data.
            self.backbone.eval()
        return self
