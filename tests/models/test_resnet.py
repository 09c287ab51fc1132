"""ResNet backbone: torchvision key names and counts, stems, dilation, and strict weight loading."""

from __future__ import annotations

import pytest
import torch

from sceneseg.models.resnet import RESNETS, ResNet, resnet18, resnet50

# torchvision's resnet18().state_dict() / resnet50().state_dict() keys in their order, without the
# ImageNet classifier (fc.weight, fc.bias), written out so the test does not trust our own code.
TORCHVISION_RESNET18_KEYS = """
conv1.weight bn1.weight bn1.bias bn1.running_mean bn1.running_var bn1.num_batches_tracked
layer1.0.conv1.weight layer1.0.bn1.weight layer1.0.bn1.bias layer1.0.bn1.running_mean
layer1.0.bn1.running_var layer1.0.bn1.num_batches_tracked layer1.0.conv2.weight layer1.0.bn2.weight
layer1.0.bn2.bias layer1.0.bn2.running_mean layer1.0.bn2.running_var
layer1.0.bn2.num_batches_tracked layer1.1.conv1.weight layer1.1.bn1.weight layer1.1.bn1.bias
layer1.1.bn1.running_mean layer1.1.bn1.running_var layer1.1.bn1.num_batches_tracked
layer1.1.conv2.weight layer1.1.bn2.weight layer1.1.bn2.bias layer1.1.bn2.running_mean
layer1.1.bn2.running_var layer1.1.bn2.num_batches_tracked layer2.0.conv1.weight layer2.0.bn1.weight
layer2.0.bn1.bias layer2.0.bn1.running_mean layer2.0.bn1.running_var
layer2.0.bn1.num_batches_tracked layer2.0.conv2.weight layer2.0.bn2.weight layer2.0.bn2.bias
layer2.0.bn2.running_mean layer2.0.bn2.running_var layer2.0.bn2.num_batches_tracked
layer2.0.downsample.0.weight layer2.0.downsample.1.weight layer2.0.downsample.1.bias
layer2.0.downsample.1.running_mean layer2.0.downsample.1.running_var
layer2.0.downsample.1.num_batches_tracked layer2.1.conv1.weight layer2.1.bn1.weight
layer2.1.bn1.bias layer2.1.bn1.running_mean layer2.1.bn1.running_var
layer2.1.bn1.num_batches_tracked layer2.1.conv2.weight layer2.1.bn2.weight layer2.1.bn2.bias
layer2.1.bn2.running_mean layer2.1.bn2.running_var layer2.1.bn2.num_batches_tracked
layer3.0.conv1.weight layer3.0.bn1.weight layer3.0.bn1.bias layer3.0.bn1.running_mean
layer3.0.bn1.running_var layer3.0.bn1.num_batches_tracked layer3.0.conv2.weight layer3.0.bn2.weight
layer3.0.bn2.bias layer3.0.bn2.running_mean layer3.0.bn2.running_var
layer3.0.bn2.num_batches_tracked layer3.0.downsample.0.weight layer3.0.downsample.1.weight
layer3.0.downsample.1.bias layer3.0.downsample.1.running_mean layer3.0.downsample.1.running_var
layer3.0.downsample.1.num_batches_tracked layer3.1.conv1.weight layer3.1.bn1.weight
layer3.1.bn1.bias layer3.1.bn1.running_mean layer3.1.bn1.running_var
layer3.1.bn1.num_batches_tracked layer3.1.conv2.weight layer3.1.bn2.weight layer3.1.bn2.bias
layer3.1.bn2.running_mean layer3.1.bn2.running_var layer3.1.bn2.num_batches_tracked
layer4.0.conv1.weight layer4.0.bn1.weight layer4.0.bn1.bias layer4.0.bn1.running_mean
layer4.0.bn1.running_var layer4.0.bn1.num_batches_tracked layer4.0.conv2.weight layer4.0.bn2.weight
layer4.0.bn2.bias layer4.0.bn2.running_mean layer4.0.bn2.running_var
layer4.0.bn2.num_batches_tracked layer4.0.downsample.0.weight layer4.0.downsample.1.weight
layer4.0.downsample.1.bias layer4.0.downsample.1.running_mean layer4.0.downsample.1.running_var
layer4.0.downsample.1.num_batches_tracked layer4.1.conv1.weight layer4.1.bn1.weight
layer4.1.bn1.bias layer4.1.bn1.running_mean layer4.1.bn1.running_var
layer4.1.bn1.num_batches_tracked layer4.1.conv2.weight layer4.1.bn2.weight layer4.1.bn2.bias
layer4.1.bn2.running_mean layer4.1.bn2.running_var layer4.1.bn2.num_batches_tracked
""".split()

TORCHVISION_RESNET50_KEYS = """
conv1.weight bn1.weight bn1.bias bn1.running_mean bn1.running_var bn1.num_batches_tracked
layer1.0.conv1.weight layer1.0.bn1.weight layer1.0.bn1.bias layer1.0.bn1.running_mean
layer1.0.bn1.running_var layer1.0.bn1.num_batches_tracked layer1.0.conv2.weight layer1.0.bn2.weight
layer1.0.bn2.bias layer1.0.bn2.running_mean layer1.0.bn2.running_var
layer1.0.bn2.num_batches_tracked layer1.0.conv3.weight layer1.0.bn3.weight layer1.0.bn3.bias
layer1.0.bn3.running_mean layer1.0.bn3.running_var layer1.0.bn3.num_batches_tracked
layer1.0.downsample.0.weight layer1.0.downsample.1.weight layer1.0.downsample.1.bias
layer1.0.downsample.1.running_mean layer1.0.downsample.1.running_var
layer1.0.downsample.1.num_batches_tracked layer1.1.conv1.weight layer1.1.bn1.weight
layer1.1.bn1.bias layer1.1.bn1.running_mean layer1.1.bn1.running_var
layer1.1.bn1.num_batches_tracked layer1.1.conv2.weight layer1.1.bn2.weight layer1.1.bn2.bias
layer1.1.bn2.running_mean layer1.1.bn2.running_var layer1.1.bn2.num_batches_tracked
layer1.1.conv3.weight layer1.1.bn3.weight layer1.1.bn3.bias layer1.1.bn3.running_mean
layer1.1.bn3.running_var layer1.1.bn3.num_batches_tracked layer1.2.conv1.weight layer1.2.bn1.weight
layer1.2.bn1.bias layer1.2.bn1.running_mean layer1.2.bn1.running_var
layer1.2.bn1.num_batches_tracked layer1.2.conv2.weight layer1.2.bn2.weight layer1.2.bn2.bias
layer1.2.bn2.running_mean layer1.2.bn2.running_var layer1.2.bn2.num_batches_tracked
layer1.2.conv3.weight layer1.2.bn3.weight layer1.2.bn3.bias layer1.2.bn3.running_mean
layer1.2.bn3.running_var layer1.2.bn3.num_batches_tracked layer2.0.conv1.weight layer2.0.bn1.weight
layer2.0.bn1.bias layer2.0.bn1.running_mean layer2.0.bn1.running_var
layer2.0.bn1.num_batches_tracked layer2.0.conv2.weight layer2.0.bn2.weight layer2.0.bn2.bias
layer2.0.bn2.running_mean layer2.0.bn2.running_var layer2.0.bn2.num_batches_tracked
layer2.0.conv3.weight layer2.0.bn3.weight layer2.0.bn3.bias layer2.0.bn3.running_mean
layer2.0.bn3.running_var layer2.0.bn3.num_batches_tracked layer2.0.downsample.0.weight
layer2.0.downsample.1.weight layer2.0.downsample.1.bias layer2.0.downsample.1.running_mean
layer2.0.downsample.1.running_var layer2.0.downsample.1.num_batches_tracked layer2.1.conv1.weight
layer2.1.bn1.weight layer2.1.bn1.bias layer2.1.bn1.running_mean layer2.1.bn1.running_var
layer2.1.bn1.num_batches_tracked layer2.1.conv2.weight layer2.1.bn2.weight layer2.1.bn2.bias
layer2.1.bn2.running_mean layer2.1.bn2.running_var layer2.1.bn2.num_batches_tracked
layer2.1.conv3.weight layer2.1.bn3.weight layer2.1.bn3.bias layer2.1.bn3.running_mean
layer2.1.bn3.running_var layer2.1.bn3.num_batches_tracked layer2.2.conv1.weight layer2.2.bn1.weight
layer2.2.bn1.bias layer2.2.bn1.running_mean layer2.2.bn1.running_var
layer2.2.bn1.num_batches_tracked layer2.2.conv2.weight layer2.2.bn2.weight layer2.2.bn2.bias
layer2.2.bn2.running_mean layer2.2.bn2.running_var layer2.2.bn2.num_batches_tracked
layer2.2.conv3.weight layer2.2.bn3.weight layer2.2.bn3.bias layer2.2.bn3.running_mean
layer2.2.bn3.running_var layer2.2.bn3.num_batches_tracked layer2.3.conv1.weight layer2.3.bn1.weight
layer2.3.bn1.bias layer2.3.bn1.running_mean layer2.3.bn1.running_var
layer2.3.bn1.num_batches_tracked layer2.3.conv2.weight layer2.3.bn2.weight layer2.3.bn2.bias
layer2.3.bn2.running_mean layer2.3.bn2.running_var layer2.3.bn2.num_batches_tracked
layer2.3.conv3.weight layer2.3.bn3.weight layer2.3.bn3.bias layer2.3.bn3.running_mean
layer2.3.bn3.running_var layer2.3.bn3.num_batches_tracked layer3.0.conv1.weight layer3.0.bn1.weight
layer3.0.bn1.bias layer3.0.bn1.running_mean layer3.0.bn1.running_var
layer3.0.bn1.num_batches_tracked layer3.0.conv2.weight layer3.0.bn2.weight layer3.0.bn2.bias
layer3.0.bn2.running_mean layer3.0.bn2.running_var layer3.0.bn2.num_batches_tracked
layer3.0.conv3.weight layer3.0.bn3.weight layer3.0.bn3.bias layer3.0.bn3.running_mean
layer3.0.bn3.running_var layer3.0.bn3.num_batches_tracked layer3.0.downsample.0.weight
layer3.0.downsample.1.weight layer3.0.downsample.1.bias layer3.0.downsample.1.running_mean
layer3.0.downsample.1.running_var layer3.0.downsample.1.num_batches_tracked layer3.1.conv1.weight
layer3.1.bn1.weight layer3.1.bn1.bias layer3.1.bn1.running_mean layer3.1.bn1.running_var
layer3.1.bn1.num_batches_tracked layer3.1.conv2.weight layer3.1.bn2.weight layer3.1.bn2.bias
layer3.1.bn2.running_mean layer3.1.bn2.running_var layer3.1.bn2.num_batches_tracked
layer3.1.conv3.weight layer3.1.bn3.weight layer3.1.bn3.bias layer3.1.bn3.running_mean
layer3.1.bn3.running_var layer3.1.bn3.num_batches_tracked layer3.2.conv1.weight layer3.2.bn1.weight
layer3.2.bn1.bias layer3.2.bn1.running_mean layer3.2.bn1.running_var
layer3.2.bn1.num_batches_tracked layer3.2.conv2.weight layer3.2.bn2.weight layer3.2.bn2.bias
layer3.2.bn2.running_mean layer3.2.bn2.running_var layer3.2.bn2.num_batches_tracked
layer3.2.conv3.weight layer3.2.bn3.weight layer3.2.bn3.bias layer3.2.bn3.running_mean
layer3.2.bn3.running_var layer3.2.bn3.num_batches_tracked layer3.3.conv1.weight layer3.3.bn1.weight
layer3.3.bn1.bias layer3.3.bn1.running_mean layer3.3.bn1.running_var
layer3.3.bn1.num_batches_tracked layer3.3.conv2.weight layer3.3.bn2.weight layer3.3.bn2.bias
layer3.3.bn2.running_mean layer3.3.bn2.running_var layer3.3.bn2.num_batches_tracked
layer3.3.conv3.weight layer3.3.bn3.weight layer3.3.bn3.bias layer3.3.bn3.running_mean
layer3.3.bn3.running_var layer3.3.bn3.num_batches_tracked layer3.4.conv1.weight layer3.4.bn1.weight
layer3.4.bn1.bias layer3.4.bn1.running_mean layer3.4.bn1.running_var
layer3.4.bn1.num_batches_tracked layer3.4.conv2.weight layer3.4.bn2.weight layer3.4.bn2.bias
layer3.4.bn2.running_mean layer3.4.bn2.running_var layer3.4.bn2.num_batches_tracked
layer3.4.conv3.weight layer3.4.bn3.weight layer3.4.bn3.bias layer3.4.bn3.running_mean
layer3.4.bn3.running_var layer3.4.bn3.num_batches_tracked layer3.5.conv1.weight layer3.5.bn1.weight
layer3.5.bn1.bias layer3.5.bn1.running_mean layer3.5.bn1.running_var
layer3.5.bn1.num_batches_tracked layer3.5.conv2.weight layer3.5.bn2.weight layer3.5.bn2.bias
layer3.5.bn2.running_mean layer3.5.bn2.running_var layer3.5.bn2.num_batches_tracked
layer3.5.conv3.weight layer3.5.bn3.weight layer3.5.bn3.bias layer3.5.bn3.running_mean
layer3.5.bn3.running_var layer3.5.bn3.num_batches_tracked layer4.0.conv1.weight layer4.0.bn1.weight
layer4.0.bn1.bias layer4.0.bn1.running_mean layer4.0.bn1.running_var
layer4.0.bn1.num_batches_tracked layer4.0.conv2.weight layer4.0.bn2.weight layer4.0.bn2.bias
layer4.0.bn2.running_mean layer4.0.bn2.running_var layer4.0.bn2.num_batches_tracked
layer4.0.conv3.weight layer4.0.bn3.weight layer4.0.bn3.bias layer4.0.bn3.running_mean
layer4.0.bn3.running_var layer4.0.bn3.num_batches_tracked layer4.0.downsample.0.weight
layer4.0.downsample.1.weight layer4.0.downsample.1.bias layer4.0.downsample.1.running_mean
layer4.0.downsample.1.running_var layer4.0.downsample.1.num_batches_tracked layer4.1.conv1.weight
layer4.1.bn1.weight layer4.1.bn1.bias layer4.1.bn1.running_mean layer4.1.bn1.running_var
layer4.1.bn1.num_batches_tracked layer4.1.conv2.weight layer4.1.bn2.weight layer4.1.bn2.bias
layer4.1.bn2.running_mean layer4.1.bn2.running_var layer4.1.bn2.num_batches_tracked
layer4.1.conv3.weight layer4.1.bn3.weight layer4.1.bn3.bias layer4.1.bn3.running_mean
layer4.1.bn3.running_var layer4.1.bn3.num_batches_tracked layer4.2.conv1.weight layer4.2.bn1.weight
layer4.2.bn1.bias layer4.2.bn1.running_mean layer4.2.bn1.running_var
layer4.2.bn1.num_batches_tracked layer4.2.conv2.weight layer4.2.bn2.weight layer4.2.bn2.bias
layer4.2.bn2.running_mean layer4.2.bn2.running_var layer4.2.bn2.num_batches_tracked
layer4.2.conv3.weight layer4.2.bn3.weight layer4.2.bn3.bias layer4.2.bn3.running_mean
layer4.2.bn3.running_var layer4.2.bn3.num_batches_tracked
""".split()

TORCHVISION_PARAMS = {"resnet18": 11_689_512, "resnet50": 25_557_032}  # published, incl. fc
FC_PARAMS = {"resnet18": 512 * 1000 + 1000, "resnet50": 2048 * 1000 + 1000}
BN_KEYS = ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]


@pytest.fixture(scope="module")
def r18() -> ResNet:
    return resnet18()


@pytest.fixture(scope="module")
def r50() -> ResNet:
    return resnet50()


def test_state_dict_keys_match_torchvision(r18: ResNet, r50: ResNet) -> None:
    assert len(TORCHVISION_RESNET18_KEYS) == 120 and len(TORCHVISION_RESNET50_KEYS) == 318
    assert list(r18.state_dict().keys()) == TORCHVISION_RESNET18_KEYS
    assert list(r50.state_dict().keys()) == TORCHVISION_RESNET50_KEYS


def test_parameter_counts_are_torchvision_minus_fc(r18: ResNet, r50: ResNet) -> None:
    for arch, model in (("resnet18", r18), ("resnet50", r50)):
        count = sum(p.numel() for p in model.parameters())
        assert count == TORCHVISION_PARAMS[arch] - FC_PARAMS[arch], arch


def test_shapes_and_channels(r18: ResNet, r50: ResNet) -> None:
    sd18, sd50 = r18.state_dict(), r50.state_dict()
    assert sd18["conv1.weight"].shape == (64, 3, 7, 7)
    assert sd18["layer1.0.conv1.weight"].shape == (64, 64, 3, 3)
    assert sd18["layer4.1.conv2.weight"].shape == (512, 512, 3, 3)
    assert sd50["layer1.0.conv1.weight"].shape == (64, 64, 1, 1)
    assert sd50["layer1.0.downsample.0.weight"].shape == (256, 64, 1, 1)
    assert sd50["layer4.2.conv3.weight"].shape == (2048, 512, 1, 1)
    # v1.5: a Bottleneck strides on its 3x3 conv, not on the first 1x1.
    assert r50.layer2[0].conv1.stride == (1, 1) and r50.layer2[0].conv2.stride == (2, 2)
    assert r18.channels == {"stem": 64, "layer1": 64, "layer2": 128, "layer3": 256, "layer4": 512}
    assert r50.channels == {"stem": 64, "layer1": 256, "layer2": 512, "layer3": 1024, "layer4": 2048}
    assert not hasattr(r50, "fc") and not hasattr(r50, "avgpool")


def test_deep_stem_keys_and_shapes() -> None:
    sd = resnet50(deep_stem=True).state_dict()
    stem = []
    for i in (1, 2, 3):
        stem += [f"conv{i}.weight"] + [f"bn{i}.{k}" for k in BN_KEYS]
    assert list(sd)[: len(stem)] == stem
    assert list(sd)[len(stem)] == "layer1.0.conv1.weight"
    assert sd["conv1.weight"].shape == (64, 3, 3, 3)
    assert sd["conv2.weight"].shape == (64, 64, 3, 3)
    assert sd["conv3.weight"].shape == (128, 64, 3, 3)
    assert sd["bn3.running_var"].shape == (128,)
    assert sd["layer1.0.conv1.weight"].shape == (64, 128, 1, 1)
    assert sd["layer1.0.downsample.0.weight"].shape == (256, 128, 1, 1)
    assert list(sd)[len(stem) :] == TORCHVISION_RESNET50_KEYS[6:]


@pytest.mark.parametrize("arch", ["resnet18", "resnet50"])
@pytest.mark.parametrize(
    "flags, stride",
    [
        ((False, False, False), 32),
        ((False, False, True), 16),
        ((False, True, True), 8),
    ],
)
def test_output_stride_and_feature_shapes(arch: str, flags: tuple, stride: int) -> None:
    # OS 8 also runs the deep stem, so its forward pass is covered for both block types.
    model = RESNETS[arch](deep_stem=stride == 8, replace_stride_with_dilation=flags).eval()
    assert model.output_stride == stride
    with torch.no_grad():
        feats = model(torch.randn(1, 3, 64, 96))
    assert list(feats) == ["stem", "layer1", "layer2", "layer3", "layer4"]
    assert model.channels["stem"] == (128 if stride == 8 else 64)  # the deep stem ends with 128
    sizes = {"stem": 2, "layer1": 4, "layer2": 8, "layer3": min(16, stride), "layer4": stride}
    for name, f in feats.items():
        assert f.shape == (1, model.channels[name], 64 // sizes[name], 96 // sizes[name]), name


def test_dilation_follows_torchvision() -> None:
    model = resnet50(replace_stride_with_dilation=(False, True, True))
    # The first block of a dilated layer keeps the previous layer's dilation.
    assert model.layer3[0].conv2.dilation == (1, 1) and model.layer3[1].conv2.dilation == (2, 2)
    assert model.layer4[0].conv2.dilation == (2, 2) and model.layer4[2].conv2.dilation == (4, 4)
    assert model.layer4[0].conv2.stride == (1, 1) and model.layer4[0].downsample[0].stride == (1, 1)
    r18 = resnet18(replace_stride_with_dilation=(False, True, True))
    assert r18.layer4[1].conv1.dilation == (4, 4) and r18.layer4[1].conv1.padding == (4, 4)
    with pytest.raises(ValueError, match="3 flags"):
        resnet18(replace_stride_with_dilation=(True, True))  # type: ignore[arg-type]


def test_zero_init_residual_flag() -> None:
    assert resnet18().layer1[0].bn2.weight.eq(1).all()
    assert resnet18(zero_init_residual=True).layer1[0].bn2.weight.eq(0).all()
