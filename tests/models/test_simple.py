"""SimpleSegmentationNet: output contract, backbone/head split, factory and pretrained loading."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from sceneseg.errors import ConfigError, WeightsError
from sceneseg.models import MODELS, SimpleSegmentationNet, resnet18, simple_segmentation_net

NUM_CLASSES = 19


@pytest.fixture(scope="module")
def model() -> SimpleSegmentationNet:
    torch.manual_seed(0)
    return simple_segmentation_net(NUM_CLASSES).eval()


def test_registered_under_simple() -> None:
    assert MODELS["simple"] is simple_segmentation_net


@pytest.mark.parametrize("height, width", [(201, 201), (180, 240), (64, 96), (33, 47)])
def test_output_matches_input_size(model: SimpleSegmentationNet, height: int, width: int) -> None:
    with torch.no_grad():
        result = model(torch.randn(1, 3, height, width))
    assert list(result) == ["out"]
    assert result["out"].shape == (1, NUM_CLASSES, height, width)
    assert torch.isfinite(result["out"]).all()


def test_trains_in_train_mode() -> None:
    net = simple_segmentation_net(3)
    out = net(torch.randn(2, 3, 65, 97))["out"]
    out.logsumexp(dim=1).mean().backward()
    assert net.classifier.conv.weight.grad is not None
    assert net.backbone.conv1.weight.grad is not None


def test_backbone_and_head_split(model: SimpleSegmentationNet) -> None:
    names = [name for name, _ in model.named_parameters()]
    head = [n for n in names if not n.startswith("backbone.")]
    assert head == ["classifier.conv.weight", "classifier.conv.bias"]
    backbone_keys = [k for k in model.state_dict() if k.startswith("backbone.")]
    assert backbone_keys == [f"backbone.{k}" for k in resnet18().state_dict()]
    assert model.classifier.conv.weight.shape == (NUM_CLASSES, 512, 1, 1)
    assert model.backbone.output_stride == 32


def test_resnet50_deep_stem_head_width() -> None:
    net = simple_segmentation_net(5, backbone="resnet50", deep_stem=True)
    assert net.classifier.conv.weight.shape == (5, 2048, 1, 1)
    assert net.backbone.conv3.weight.shape == (128, 64, 3, 3)


def test_pretrained_file_is_loaded(tmp_path: Path) -> None:
    torch.manual_seed(1)
    source = resnet18()
    for bn in (source.bn1, source.layer4[1].bn2):
        bn.running_mean.uniform_(-1, 1)
    path = tmp_path / "backbone.pth"
    torch.save({"state_dict": source.state_dict()}, path)
    net = simple_segmentation_net(NUM_CLASSES, pretrained=str(path))
    loaded = net.backbone.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in source.state_dict().items())


def test_factory_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="resnet18"):
        simple_segmentation_net(NUM_CLASSES, backbone="vgg16")
    with pytest.raises(ConfigError, match="num_classes"):
        simple_segmentation_net(0)
    with pytest.raises(WeightsError, match="resnet50_v2.pth"):
        simple_segmentation_net(NUM_CLASSES, deep_stem=True, pretrained="imagenet")
    with pytest.raises(WeightsError, match="missing.pth"):
        simple_segmentation_net(NUM_CLASSES, pretrained=str(tmp_path / "missing.pth"))
