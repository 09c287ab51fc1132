"""DeepLabV3+: output sizes, ASPP, the layer1 skip, the aux head, weights, config and checkpoint paths.

ONNX parity (two batch and frame sizes) is in tests/test_export.py, which lists deeplabv3plus among its families.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import sceneseg
from sceneseg.checkpoint import read_weights_file
from sceneseg.config import load_config
from sceneseg.errors import ConfigError
from sceneseg.models import MODELS, DeepLabV3Plus, build_model, deeplabv3plus, resnet18
from sceneseg.training_run import check_trainable
from tests.test_predict import write_checkpoint

NUM_CLASSES = 5


def small(**options) -> DeepLabV3Plus:
    """A CPU-sized DeepLabV3+: ResNet-18, narrow ASPP (the decoder keeps the paper's 256)."""
    torch.manual_seed(0)
    return deeplabv3plus(NUM_CLASSES, **{"backbone": "resnet18", "aspp_channels": 32, **options})


def perturb_skip(net: DeepLabV3Plus, skip: torch.nn.Module, cell: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Add 50 to one cell of `skip`'s input on that path only (the trunk above it sees the original).

    Returns the input `skip` read on an unperturbed pass over a 97 x 130 frame and where the logits
    move (an H x W mask) when the cell changes.
    """
    seen = []
    handle = skip.register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    x = torch.randn(1, 3, 97, 130)
    with torch.no_grad():
        base = net(x)["out"]
    handle.remove()
    delta = torch.zeros_like(seen[0])
    delta[:, :, cell[0], cell[1]] = 50.0
    handle = skip.register_forward_pre_hook(lambda m, args: args[0] + delta)
    with torch.no_grad():
        changed = (net(x)["out"] - base).abs().amax(1)[0] > 1e-5
    handle.remove()
    return seen[0], changed


def test_registered_under_deeplabv3plus() -> None:
    assert MODELS["deeplabv3plus"] is deeplabv3plus


@pytest.mark.parametrize("deep_stem", [False, True])
@pytest.mark.parametrize("output_stride, rates", [(16, (6, 12, 18)), (8, (12, 24, 36))])
def test_logits_at_input_size_for_each_stride_and_stem(output_stride: int, rates: tuple, deep_stem: bool) -> None:
    net = small(output_stride=output_stride, deep_stem=deep_stem).eval()
    with torch.no_grad():
        out = net(torch.randn(1, 3, 97, 130))
    assert list(out) == ["out"] and out["out"].shape == (1, NUM_CLASSES, 97, 130)
    assert torch.isfinite(out["out"]).all()
    assert net.backbone.output_stride == output_stride and net.aspp.rates == rates
    atrous = [branch[0] for branch in net.aspp.branches[1:]]
    assert [(c.kernel_size, c.dilation, c.padding) for c in atrous] == [((3, 3), (r, r), (r, r)) for r in rates]
    # Dilation as torchvision's: the dilated layers' first 3x3 conv keeps the previous rate.
    first, second = (block.conv1.dilation[0] for block in net.backbone.layer4)
    assert (first, second) == (16 // output_stride, 32 // output_stride)


def test_aspp_layout_and_image_pooling() -> None:
    aspp = small().aspp.eval()
    assert len(aspp.branches) == 4 and aspp.branches[0][0].kernel_size == (1, 1)
    assert aspp.project[0].in_channels == 5 * 32 and aspp.project[0].out_channels == 32
    assert aspp.project[-1].p == 0.1
    x = torch.randn(2, 512, 5, 7)
    pooled = aspp.pooling(x.mean((2, 3), keepdim=True))
    # Image pooling sees the whole map: a change in one corner moves the pooled feature of every pixel.
    moved = x.clone()
    moved[:, :, 0, 0] += 10
    assert not torch.allclose(aspp.pooling(moved.mean((2, 3), keepdim=True)), pooled)
    with torch.no_grad():
        assert aspp(x).shape == (2, 32, 5, 7)


def test_skip_takes_layer1_and_reaches_the_logits_locally() -> None:
    net = small().eval()
    layer1 = []
    net.backbone.layer1.register_forward_hook(lambda m, i, out: layer1.append(out))
    # The logits change only near the perturbed cell: the decoder's two 3x3 convs at stride 4 reach
    # about 3 cells, 12-16 px.
    read, changed = perturb_skip(net, net.skip, (12, 16))
    assert read is layer1[0] and read.shape == (1, 64, 25, 33)  # stride 4
    rows, cols = changed.nonzero(as_tuple=True)
    assert changed.any() and changed[12 * 4 + 1, 16 * 4 + 1]
    assert rows.min() >= 12 * 4 - 20 and rows.max() <= 12 * 4 + 20
    assert cols.min() >= 16 * 4 - 20 and cols.max() <= 16 * 4 + 20


@pytest.mark.parametrize("deep_stem, stem_channels", [(False, 64), (True, 128)])
def test_decoder_stride_2_reads_the_stem_and_reaches_the_logits_finely(deep_stem: bool, stem_channels: int) -> None:
    net = small(decoder_stride=2, deep_stem=deep_stem).eval()
    assert small().fine is None and not any(k.startswith("fine.") for k in small().state_dict())
    assert {k.split(".")[1] for k in net.state_dict() if k.startswith("fine.")} == {"reduce", "skip", "fuse"}
    assert net.classifier.in_channels == 64 and net.fine.skip[0].in_channels == stem_channels
    stem = []
    net.backbone.maxpool.register_forward_pre_hook(lambda m, args: stem.append(args[0]))
    # A change of one stem cell on the skip path moves the logits within one 3x3 conv at stride 2
    # (and the bilinear upsampling): a few pixels, where the stride-4 skip reaches 12-16.
    read, changed = perturb_skip(net, net.fine.skip, (24, 32))
    assert read is stem[0] and read.shape == (1, stem_channels, 49, 65)  # stride 2
    assert changed.shape == (97, 130)
    rows, cols = changed.nonzero(as_tuple=True)
    assert changed[24 * 2, 32 * 2]
    assert rows.min() >= 48 - 6 and rows.max() <= 48 + 6 and cols.min() >= 64 - 6 and cols.max() <= 64 + 6


@pytest.mark.parametrize("decoder_stride", [4, 2])
def test_decoder_channels_set_the_stride_4_convs_and_what_reads_them(decoder_stride: int) -> None:
    net = small(decoder_channels=24, decoder_stride=decoder_stride)
    widths = [(block[0].in_channels, block[0].out_channels) for block in net.fuse]
    assert widths == [(32 + 48, 24), (24, 24)]  # ASPP's 32 (small()) + layer1's 48-channel skip
    reader = net.classifier if decoder_stride == 4 else net.fine.reduce[0]
    assert reader.in_channels == 24 and small().fuse[1][0].out_channels == 256
    assert net(torch.randn(2, 3, 45, 61))["out"].shape == (2, NUM_CLASSES, 45, 61)


def test_mid_skip_feeds_layer2_into_the_stride_4_decoder() -> None:
    net = small(mid_skip=True).eval()
    assert small().mid is None and not any(k.startswith("mid.") for k in small().state_dict())
    assert net.mid[0].in_channels == 128 and net.fuse[0][0].in_channels == 32 + 48 + 48
    layer2 = []
    net.backbone.layer2.register_forward_hook(lambda m, i, out: layer2.append(out))
    # One layer2 cell on the skip path moves the logits near it only: the bilinear step to stride 4
    # and the decoder's two 3x3 convs reach about 4 stride-4 cells around the cell's 8x8 pixels.
    read, changed = perturb_skip(net, net.mid, (6, 8))
    assert read is layer2[0] and read.shape == (1, 128, 13, 17)  # stride 8
    rows, cols = changed.nonzero(as_tuple=True)
    assert changed[6 * 8 + 4, 8 * 8 + 4]
    assert rows.min() >= 48 - 28 and rows.max() <= 56 + 28 and cols.min() >= 64 - 28 and cols.max() <= 72 + 28


def test_aux_only_when_enabled_and_training() -> None:
    x = torch.randn(2, 3, 33, 41)  # two images: image pooling's BatchNorm cannot train on one value
    net = small(aux_loss=True).train()
    out = net(x)
    assert sorted(out) == ["aux", "out"] and out["aux"].shape == out["out"].shape == (2, NUM_CLASSES, 33, 41)
    (out["out"].logsumexp(1).mean() + out["aux"].logsumexp(1).mean()).backward()
    assert net.aux[0].weight.grad is not None and net.skip[0].weight.grad is not None
    # PSPNet's aux head: 3x3 conv to a quarter of layer3's 256 channels, then the classifier.
    assert [type(m).__name__ for m in net.aux] == ["Conv2d", "BatchNorm2d", "ReLU", "Dropout2d", "Conv2d"]
    assert net.aux[0].out_channels == 64
    assert list(net.eval()(x)) == ["out"]
    off = small()  # the paper has no aux head: off by default
    assert off.aux is None and not any(k.startswith("aux.") for k in off.state_dict())
    assert list(off.train()(x)) == ["out"]


def test_final_layers_are_the_class_convs() -> None:
    net = small(aux_loss=True)
    for name in net.final_layers:
        layer = net.get_submodule(name)
        assert layer.kernel_size == (1, 1) and layer.out_channels == NUM_CLASSES


def test_backbone_has_torchvision_keys_and_loads_its_files(tmp_path: Path) -> None:
    state = small().state_dict()
    backbone = {k.removeprefix("backbone."): v for k, v in state.items() if k.startswith("backbone.")}
    # torchvision's resnet18 state_dict has 122 keys and 11,689,512 parameters; ours lacks fc only.
    assert len(backbone) == 120 and backbone["conv1.weight"].shape == (64, 3, 7, 7)
    assert "layer2.0.downsample.1.running_var" in backbone and "layer4.1.bn2.weight" in backbone
    assert sum(p.numel() for p in small().backbone.parameters()) == 11_689_512 - (512 * 1000 + 1000)
    torch.manual_seed(3)
    source = {k: torch.rand_like(v) if v.is_floating_point() else v for k, v in resnet18().state_dict().items()}
    torch.save({**source, "fc.weight": torch.zeros(1000, 512), "fc.bias": torch.zeros(1000)}, tmp_path / "r18.pth")
    loaded = small(pretrained=str(tmp_path / "r18.pth")).backbone.state_dict()
    assert loaded.keys() == source.keys() and all(torch.equal(loaded[k], v) for k, v in source.items())
    deep = small(deep_stem=True).backbone.state_dict()
    assert deep.keys() == resnet18(deep_stem=True).state_dict().keys()


def test_freeze_backbone_keeps_the_head_trainable() -> None:
    net = small()
    net.freeze_backbone()
    net.train()
    assert not any(p.requires_grad for p in net.backbone.parameters()) and not net.backbone.training
    assert all(p.requires_grad for n, p in net.named_parameters() if not n.startswith("backbone."))


def test_factory_and_build_model_errors() -> None:
    for options, word in [
        ({"output_stride": 32}, "output_stride = 32: expected one of 8 or 16"),
        ({"aspp_channels": 0}, "aspp_channels = 0"),
        ({"decoder_channels": True}, "decoder_channels = True"),
        ({"decoder_stride": 8}, "decoder_stride = 8: expected 4"),
        ({"backbone": "vgg16"}, "vgg16"),
        ({"num_classes": 0}, "num_classes"),
    ]:
        with pytest.raises(ConfigError, match=word):
            deeplabv3plus(**{"num_classes": NUM_CLASSES, **options})
    for key, value in (("use_ppm", "true"), ("bins", "[1, 2]"), ("zoom_factor", "8")):
        config = load_config(None, ["model.name=deeplabv3plus", f"model.{key}={value}"])
        with pytest.raises(ConfigError, match=f"model.{key} does not apply to model 'deeplabv3plus'"):
            build_model(config.model)
    for key in ("aspp_channels", "decoder_stride", "decoder_channels"):
        with pytest.raises(ConfigError, match=f"model.{key} does not apply to model 'pspnet'"):
            build_model(load_config(None, ["model.name=pspnet", f"model.{key}=4"]).model)


def test_check_trainable_needs_two_frames_for_image_pooling() -> None:
    config = load_config(None, ["model.name=deeplabv3plus", "model.aspp_channels=16", "data.crop_size=65"])
    net = build_model(config.model)
    with pytest.raises(ConfigError, match="at least 2 frames per process"):
        check_trainable(config, net, 1)  # a 1x1 pooled map of one frame: one value per channel
    check_trainable(config, net, 2)
    # No crop minimum beyond the config's 32: the atrous branches (rates 6-18 on a 3x3 map here) and
    # the decoder work on maps of any size.
    tiny = load_config(None, ["model.name=deeplabv3plus", "data.crop_size=33"])
    check_trainable(tiny, net, 2)
    net.train()(torch.randn(2, 3, 33, 33))["out"].mean().backward()


def test_load_model_round_trip(tmp_path: Path) -> None:
    overrides = ["model.name=deeplabv3plus", "model.num_classes=5", "model.aspp_channels=48", "model.aux_loss=true"]
    checkpoint = write_checkpoint(tmp_path / "best.pt", overrides)
    model = sceneseg.load_model(checkpoint)
    assert isinstance(model, DeepLabV3Plus) and not model.training and model.aspp.project[0].out_channels == 48
    saved = read_weights_file(checkpoint)["model"]
    assert all(torch.equal(model.state_dict()[k], v) for k, v in saved.items())
    with torch.no_grad():
        out = model(torch.randn(1, 3, 45, 61))
    assert list(out) == ["out"] and out["out"].shape == (1, 5, 45, 61)
