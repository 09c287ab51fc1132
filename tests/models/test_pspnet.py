"""PSPNet: output sizes, the PPM, the aux head, every switch, the reference's parameter counts."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from sceneseg.errors import ConfigError
from sceneseg.models import MODELS, PSPNet, PyramidPoolingModule, pspnet, resnet18, resnet50

NUM_CLASSES = 5


def small(**options) -> PSPNet:
    """A CPU-sized PSPNet: ResNet-18 with the deep stem, output stride 8."""
    torch.manual_seed(0)
    return pspnet(NUM_CLASSES, **{"backbone": "resnet18", **options})


def test_registered_under_pspnet() -> None:
    assert MODELS["pspnet"] is pspnet


@pytest.mark.parametrize(
    "zoom, height, width",
    [
        (8, 65, 65),
        (8, 97, 129),
        (1, 97, 129),
        (2, 65, 65),
        (4, 65, 65),
        (4, 41, 56),
    ],
)
def test_output_size_per_zoom_factor(zoom: int, height: int, width: int) -> None:
    with torch.no_grad():
        out = small(zoom_factor=zoom).eval()(torch.randn(1, 3, height, width))
    assert list(out) == ["out"]
    # Three stride-2 steps (stem conv, maxpool, layer2) each take ceil(n / 2): ceil(n / 8).
    if zoom == 8:
        expected = (height, width)
    else:
        expected = (math.ceil(height / 8) * zoom, math.ceil(width / 8) * zoom)
    assert out["out"].shape == (1, NUM_CLASSES, *expected)
    assert torch.isfinite(out["out"]).all()


def test_ppm_passes_its_input_through_and_doubles_channels() -> None:
    ppm = PyramidPoolingModule(64, (1, 2, 3, 6)).eval()
    x = torch.randn(2, 64, 9, 11)
    with torch.no_grad():
        y = ppm(x)
    assert y.shape == (2, 64 + 4 * 16, 9, 11) and ppm.out_channels == 128
    assert torch.equal(y[:, :64], x)
    # The 1x1 bin is a constant map, whatever the input's layout.
    assert torch.allclose(y[:, 64:80], y[:, 64:80, :1, :1].expand(-1, -1, 9, 11))
    keys = list(ppm.state_dict())
    assert keys[:2] == ["features.0.1.weight", "features.0.2.weight"] and len(keys) == 4 * 6


def test_aux_only_when_enabled_and_training() -> None:
    x = torch.randn(2, 3, 17, 25)  # two images: BatchNorm cannot train on one 1x1 pooled value
    net = small().train()
    out = net(x)
    assert sorted(out) == ["aux", "out"] and out["aux"].shape == out["out"].shape == (2, 5, 17, 25)
    (out["out"].logsumexp(1).mean() + out["aux"].logsumexp(1).mean()).backward()
    assert net.aux[0].weight.grad is not None and net.backbone.conv1.weight.grad is not None
    # Eval mode gives "out" only: see test_output_size_per_zoom_factor.
    off = small(aux_loss=False)
    assert off.aux is None and not any(k.startswith("aux.") for k in off.state_dict())
    assert list(off.train()(x)) == ["out"]


def test_head_layout_and_widths() -> None:
    # ResNet-18 widths scale the reference's (2048 -> 512 per quarter): see the pspnet docstring.
    net = small()
    assert [type(m).__name__ for m in net.cls] == ["Conv2d", "BatchNorm2d", "ReLU", "Dropout2d", "Conv2d"]
    assert net.cls[0].weight.shape == (128, 1024, 3, 3) and net.cls[0].bias is None
    assert net.cls[4].weight.shape == (NUM_CLASSES, 128, 1, 1) and net.cls[4].bias is not None
    assert net.aux[0].weight.shape == (64, 256, 3, 3) and net.aux[3].p == 0.1
    head = {n.split(".")[0] for n, _ in net.named_parameters() if not n.startswith("backbone.")}
    assert head == {"ppm", "cls", "aux"}


def test_use_ppm_off_feeds_layer4_to_cls() -> None:
    net = small(use_ppm=False)
    assert net.ppm is None and net.cls[0].in_channels == 512
    assert not any(k.startswith("ppm.") for k in net.state_dict())
    with torch.no_grad():
        assert net.eval()(torch.randn(1, 3, 65, 65))["out"].shape == (1, NUM_CLASSES, 65, 65)


@pytest.mark.parametrize("stride", [8, 16, 32])
def test_output_stride(stride: int) -> None:
    net = small(output_stride=stride).eval()
    assert net.backbone.output_stride == stride
    with torch.no_grad():
        feats = net.backbone(torch.randn(1, 3, 64, 64))
    assert feats["layer4"].shape[-2:] == (64 // stride, 64 // stride)
    if stride == 8:  # the reference's scheme: every block dilated, not only the later ones
        assert net.backbone.layer3[0].conv1.dilation == (2, 2)
        assert net.backbone.layer4[0].conv2.dilation == (4, 4)


def test_deep_stem_bins_and_depth() -> None:
    plain = small(deep_stem=False).state_dict()
    assert plain["backbone.conv1.weight"].shape == (64, 3, 7, 7)
    assert "backbone.conv2.weight" not in plain
    deep = small().state_dict()
    assert deep["backbone.conv1.weight"].shape == (64, 3, 3, 3) and "backbone.conv3.weight" in deep
    two = small(bins=(1, 4))
    assert len(two.ppm.features) == 2 and two.ppm.features[1][0].output_size == 4
    assert two.ppm.features[0][1].out_channels == 256 and two.cls[0].in_channels == 1024
    r34 = small(backbone="resnet34")
    assert len(r34.backbone.layer3) == 6 and r34.cls[0].in_channels == 1024


def test_factory_errors() -> None:
    for options, word in [
        ({"output_stride": 4}, "output_stride = 4"),
        ({"zoom_factor": 3}, "zoom_factor = 3"),
        ({"bins": ()}, "bins = []"),
        ({"bins": (1, 0)}, "bins = [1, 0]"),
        ({"bins": (1, 2, 3)}, "[1, 2, 3]"),
        ({"backbone": "vgg16"}, "vgg16"),
    ]:
        with pytest.raises(ConfigError, match=word.replace("[", r"\[").replace("]", r"\]")):
            small(**options)
    small(bins=(1, 2, 3), use_ppm=False)  # bins do not matter without the PPM


# Parameter count of the reference PSPNet-50 (deep stem, OS 8, PPM (1, 2, 3, 6), aux), by hand:
# backbone: torchvision ResNet-50 without fc = 25,557,032 - (2048*1000 + 1000) = 23,508,032;
#   deep stem instead of 7x7 conv1 (9,408) + bn1 (128): 3*64*9 + 128 + 64*64*9 + 128 + 64*128*9
#   + 256 = 112,832, i.e. +103,296; layer1 then starts from 128 instead of 64 channels:
#   layer1.0.conv1 +64*64 and layer1.0.downsample.0 +64*256 = +20,480  ->  23,631,808.
# ppm: 4 x (1x1 conv 2048*512 + BN 2*512) = 4 x 1,049,600 = 4,198,400.
# cls: 3x3 conv 4096*512*9 = 18,874,368 + BN 1,024 + 1x1 conv 512*C + C.
# aux: 3x3 conv 1024*256*9 = 2,359,296 + BN 512 + 1x1 conv 256*C + C.
# C = 11: 23,631,808 + 4,198,400 + 18,881,035 + 2,362,635 = 49,073,878.
# C = 21: 23,631,808 + 4,198,400 + 18,886,165 + 2,365,205 = 49,081,578.
@pytest.mark.parametrize("classes, expected", [(11, 49_073_878), (21, 49_081_578)])
def test_pspnet50_parameter_count_matches_reference(classes: int, expected: int) -> None:
    with torch.device("meta"):  # counting needs shapes only, not 49M initialised numbers
        net = pspnet(classes)
    assert sum(p.numel() for p in net.parameters()) == expected
    assert sum(p.numel() for p in net.backbone.parameters()) == 23_631_808
    assert net.cls[0].weight.shape == (512, 4096, 3, 3)
    assert net.aux[0].weight.shape == (256, 1024, 3, 3)


def test_torchvision_and_reference_backbone_files_load(tmp_path: Path) -> None:
    torch.manual_seed(3)
    # (a) torchvision layout (plain stem, with its fc) into the plain-stem backbone.
    source = {k: torch.rand_like(v) if v.is_floating_point() else v for k, v in resnet18().state_dict().items()}
    torch.save({**source, "fc.weight": torch.zeros(1000, 512), "fc.bias": torch.zeros(1000)}, tmp_path / "r18.pth")
    net = small(deep_stem=False, pretrained=str(tmp_path / "r18.pth"))
    loaded = net.backbone.state_dict()
    assert loaded.keys() == source.keys()  # strict: nothing missing, nothing left over
    assert all(torch.equal(loaded[k], v) for k, v in source.items())
    # (b) the reference's resnet50_v2.pth layout: deep stem, fc, no BN step counters.
    with torch.device("meta"):
        keys = resnet50(deep_stem=True).state_dict()
    v2 = {k: torch.full(v.shape, 0.5) for k, v in keys.items() if not k.endswith("tracked")}
    torch.save({**v2, "fc.weight": torch.zeros(1000, 2048), "fc.bias": torch.zeros(1000)}, tmp_path / "resnet50_v2.pth")
    net = pspnet(19, pretrained=str(tmp_path / "resnet50_v2.pth"), aux_loss=False)
    assert net.backbone.layer4[2].bn3.running_var.eq(0.5).all()
    assert net.backbone.conv3.weight.eq(0.5).all()
