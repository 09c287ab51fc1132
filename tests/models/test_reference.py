"""Reference PSPNet (hszhao/semseg) compatibility: key layout, config inference, and equal logits.

`RefPSPNet` below re-implements the reference's model/pspnet.py and model/resnet.py (ResNet-50 with
its deep base) independently of sceneseg's modules: the stem as the `layer0` Sequential, undilated
stages, then the reference's module surgery on every `conv2` and `downsample.0` of layer3/layer4.
A checkpoint it accepts strictly and that gives its logits is a checkpoint the reference accepts.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import sceneseg
from sceneseg.errors import WeightsError
from sceneseg.models import PSPNet, from_reference, infer_reference_config, is_reference_pspnet, pspnet, to_reference

CLASSES = 7


def conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride, padding=1, bias=False)


class RefBottleneck(nn.Module):
    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample=None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU()
        self.downsample = downsample

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


def ref_layer(inplanes: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
    down = nn.Sequential(nn.Conv2d(inplanes, planes * 4, 1, stride, bias=False), nn.BatchNorm2d(planes * 4))
    return nn.Sequential(
        RefBottleneck(inplanes, planes, stride, down), *[RefBottleneck(planes * 4, planes) for _ in range(1, blocks)]
    )


def ref_head(cin: int, hidden: int, classes: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, hidden, 3, padding=1, bias=False),
        nn.BatchNorm2d(hidden),
        nn.ReLU(),
        nn.Dropout2d(0.1),
        nn.Conv2d(hidden, classes, 1),
    )


class RefPSPNet(nn.Module):
    def __init__(self, classes: int, bins=(1, 2, 3, 6), zoom_factor: int = 8) -> None:
        super().__init__()
        self.zoom_factor = zoom_factor
        self.layer0 = nn.Sequential(
            conv3x3(3, 64, 2),
            nn.BatchNorm2d(64),
            nn.ReLU(),
            conv3x3(64, 64),
            nn.BatchNorm2d(64),
            nn.ReLU(),
            conv3x3(64, 128),
            nn.BatchNorm2d(128),
            nn.ReLU(),
            nn.MaxPool2d(3, 2, padding=1),
        )
        self.layer1 = ref_layer(128, 64, 3, 1)
        self.layer2 = ref_layer(256, 128, 4, 2)
        self.layer3 = ref_layer(512, 256, 6, 2)
        self.layer4 = ref_layer(1024, 512, 3, 2)
        for layer, d in ((self.layer3, 2), (self.layer4, 4)):
            for name, m in layer.named_modules():
                if "conv2" in name:
                    m.dilation, m.padding, m.stride = (d, d), (d, d), (1, 1)
                elif "downsample.0" in name:
                    m.stride = (1, 1)
        self.ppm = nn.Module()
        self.ppm.features = nn.ModuleList(
            nn.Sequential(nn.AdaptiveAvgPool2d(b), nn.Conv2d(2048, 512, 1, bias=False), nn.BatchNorm2d(512), nn.ReLU())
            for b in bins
        )
        self.cls = ref_head(4096, 512, classes)
        self.aux = ref_head(1024, 256, classes)

    def forward(self, x):
        h, w = ((s - 1) // 8 * self.zoom_factor + 1 for s in x.shape[-2:])
        x = self.layer2(self.layer1(self.layer0(x)))
        x = self.layer4(self.layer3(x))
        x = torch.cat(
            [x] + [F.interpolate(f(x), x.shape[-2:], mode="bilinear", align_corners=True) for f in self.ppm.features], 1
        )
        return F.interpolate(self.cls(x), (h, w), mode="bilinear", align_corners=True)


def randomize(model: nn.Module) -> nn.Module:
    """Non-trivial BN statistics and affine weights, so a swapped or skipped BN shows."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.weight.data.uniform_(0.5, 1.0)
            m.bias.data.normal_(0, 0.1)
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 1.5)
        elif isinstance(m, nn.Conv2d) and m.bias is not None:
            m.bias.data.normal_(0, 0.1)
    return model.eval()


@pytest.fixture(scope="module")
def ours() -> PSPNet:
    torch.manual_seed(0)
    return randomize(pspnet(CLASSES))


@pytest.fixture(scope="module")
def reference_file(ours: PSPNet, tmp_path_factory: pytest.TempPathFactory) -> Path:
    # As the reference's train.py saves a DataParallel model.
    state = {f"module.{k}": v for k, v in to_reference(ours.state_dict()).items()}
    path = tmp_path_factory.mktemp("ref") / "train_epoch_100.pth"
    torch.save({"epoch": 100, "state_dict": state, "optimizer": {}}, path)
    return path


def test_key_layout(ours: PSPNet) -> None:
    ref = to_reference(ours.state_dict())
    for key in [
        "layer0.0.weight",
        "layer0.1.running_var",
        "layer0.3.weight",
        "layer0.4.bias",
        "layer0.6.weight",
        "layer0.7.num_batches_tracked",
        "layer1.0.downsample.0.weight",
        "layer4.2.bn3.weight",
        "ppm.features.0.1.weight",
        "ppm.features.3.2.running_mean",
        "cls.0.weight",
        "cls.1.weight",
        "cls.4.weight",
        "cls.4.bias",
        "aux.0.weight",
        "aux.1.running_var",
        "aux.4.bias",
    ]:
        assert key in ref, key
    assert not any(k.startswith(("backbone.", "layer0.2", "layer0.9")) for k in ref)
    assert ref["layer0.6.weight"].shape == (128, 64, 3, 3)
    assert list(from_reference(ref)) == list(ours.state_dict())
    wrapped = {"state_dict": {f"module.{k}": v for k, v in ref.items()}}
    assert all(v is ref[to] for (k, v), to in zip(from_reference(wrapped).items(), ref))


def test_independent_reference_forward_matches(ours: PSPNet, reference_file: Path) -> None:
    ref = RefPSPNet(CLASSES)
    state = torch.load(reference_file, weights_only=True)["state_dict"]
    ref.load_state_dict({k.removeprefix("module."): v for k, v in state.items()}, strict=True)
    loaded = sceneseg.load_model(reference_file)
    assert not loaded.training and loaded.aux is not None
    torch.manual_seed(1)
    x = torch.randn(1, 3, 41, 57)  # (H - 1) % 8 == 0 for H and W: a size the reference accepts
    with torch.no_grad():
        expected = ref.eval()(x)
        got = loaded(x)["out"]
        mine = ours(x)["out"]
    assert got.shape == expected.shape == (1, CLASSES, 41, 57)
    assert expected.std() > 0.1  # not a degenerate comparison of constants
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert torch.equal(got, mine)


def test_infer_reference_config(ours: PSPNet, reference_file: Path) -> None:
    checkpoint = torch.load(reference_file, weights_only=True)
    assert is_reference_pspnet(checkpoint) and is_reference_pspnet(checkpoint["state_dict"])
    assert infer_reference_config(checkpoint) == {
        "num_classes": CLASSES,
        "backbone": "resnet50",
        "deep_stem": True,
        "use_ppm": True,
        "aux_loss": True,
        "bins": (1, 2, 3, 6),
        "output_stride": 8,
    }
    with torch.device("meta"):  # shapes are enough to read the architecture
        r101 = to_reference(pspnet(3, backbone="resnet101").state_dict())
        r18 = to_reference(pspnet(4, "resnet18", deep_stem=False, use_ppm=False, aux_loss=False).state_dict())
        two = to_reference(pspnet(4, "resnet18", bins=(1, 3)).state_dict())
    assert infer_reference_config(r101)["backbone"] == "resnet101"
    assert infer_reference_config(r18) == {
        "num_classes": 4,
        "backbone": "resnet18",
        "deep_stem": False,
        "use_ppm": False,
        "aux_loss": False,
        "bins": (1, 2, 3, 6),
        "output_stride": 8,
    }
    with pytest.raises(WeightsError, match="2 branches"):
        infer_reference_config(two)
    assert infer_reference_config(two, bins=(1, 3))["bins"] == (1, 3)


def test_recognition_and_conversion_errors(ours: PSPNet) -> None:
    state = ours.state_dict()
    assert not is_reference_pspnet(state)
    assert not is_reference_pspnet({"state_dict": [1, 2]}) and not is_reference_pspnet("junk")
    assert not is_reference_pspnet({**to_reference(state), "decoder.weight": torch.zeros(1)})
    with pytest.raises(WeightsError, match="decoder.weight"):
        from_reference({**to_reference(state), "decoder.weight": torch.zeros(1)})
    with pytest.raises(WeightsError, match="classifier.conv.weight"):
        to_reference({"classifier.conv.weight": torch.zeros(1)})
