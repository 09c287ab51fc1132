"""Loading weights files into a ResNet backbone (sceneseg.models.weights)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from sceneseg.errors import WeightsError
from sceneseg.models.resnet import resnet18
from sceneseg.models.weights import load_backbone_weights


@pytest.fixture(scope="module")
def trained_state() -> dict[str, torch.Tensor]:
    """A resnet18 state_dict with non-default BN statistics, like a real checkpoint."""
    torch.manual_seed(0)
    state = {k: v.clone() for k, v in resnet18().state_dict().items()}
    for value in state.values():
        if value.is_floating_point():
            value.copy_(torch.rand_like(value) + 0.5)
        else:
            value.fill_(7)
    return state


def _save(obj: object, path: Path) -> Path:
    torch.save(obj, path)
    return path


@pytest.mark.parametrize("wrap", ["bare", "state_dict", "module_state_dict", "module"])
def test_load_local_file(wrap: str, trained_state: dict, tmp_path: Path) -> None:
    state = {**trained_state, "fc.weight": torch.zeros(1000, 512), "fc.bias": torch.zeros(1000)}
    if wrap.startswith("module"):
        state = {f"module.{k}": v for k, v in state.items()}
    obj = {"state_dict": state, "epoch": 3} if "state_dict" in wrap else state
    model = resnet18()
    load_backbone_weights(model, _save(obj, tmp_path / "w.pth"), "resnet18")
    loaded = model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in trained_state.items())


def test_missing_bn_counters_are_tolerated(trained_state: dict, tmp_path: Path) -> None:
    # Pre-0.4.1 checkpoints have no num_batches_tracked; they still load.
    state = {k: v for k, v in trained_state.items() if not k.endswith("num_batches_tracked")}
    model = resnet18()
    load_backbone_weights(model, str(_save(state, tmp_path / "old.pth")), "resnet18")
    assert torch.equal(model.layer3[1].bn2.running_var, trained_state["layer3.1.bn2.running_var"])


def test_mismatching_files_are_rejected(trained_state: dict, tmp_path: Path) -> None:
    missing = {k: v for k, v in trained_state.items() if k != "layer2.0.bn1.weight"}
    extra = {**trained_state, "layer5.0.conv1.weight": torch.zeros(3)}
    shape = {**trained_state, "layer1.0.conv1.weight": torch.zeros(64, 64, 1, 1)}
    cases = [
        (missing, ["missing", "layer2.0.bn1.weight"]),
        (extra, ["unexpected", "layer5.0.conv1.weight"]),
        (shape, ["layer1.0.conv1.weight", "(64, 64, 1, 1)", "(64, 64, 3, 3)"]),
    ]
    for i, (state, words) in enumerate(cases):
        path = _save(state, tmp_path / f"bad{i}.pth")
        with pytest.raises(WeightsError) as info:
            load_backbone_weights(resnet18(), path, "resnet18")
        assert str(path) in str(info.value)
        assert all(w in str(info.value) for w in words), str(info.value)


def test_unreadable_sources_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match=r"^model.pretrained .*nowhere.pth does not exist$"):
        load_backbone_weights(resnet18(), tmp_path / "nowhere.pth", "resnet18")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="junk.pth"):
        load_backbone_weights(resnet18(), junk, "resnet18")
    with pytest.raises(WeightsError, match="not a state_dict"):
        load_backbone_weights(resnet18(), _save([1, 2], tmp_path / "list.pth"), "resnet18")


def test_imagenet_needs_a_published_file() -> None:
    with pytest.raises(WeightsError, match="resnet50_v2.pth"):
        load_backbone_weights(resnet18(deep_stem=True), "imagenet", "resnet18")
    with pytest.raises(WeightsError, match="resnet152"):
        load_backbone_weights(resnet18(), "imagenet", "resnet152")


def test_sceneseg_checkpoint_gives_its_backbone(trained_state: dict, tmp_path: Path) -> None:
    """A model trained by sceneseg (here: PSPNet's dilated trunk) starts another model's backbone."""
    from sceneseg.checkpoint import save_checkpoint

    source = {f"backbone.{k}": v for k, v in trained_state.items() if not k.startswith("fc.")}
    source["classifier.weight"] = torch.ones(2, 512, 1, 1)
    save_checkpoint(tmp_path / "best.pt", config={}, model=source, epoch=3)
    dilated = resnet18(replace_stride_with_dilation=(False, True, True))
    load_backbone_weights(dilated, tmp_path / "best.pt", "resnet18")
    assert torch.equal(dilated.state_dict()["layer4.1.bn2.running_var"], trained_state["layer4.1.bn2.running_var"])

    save_checkpoint(tmp_path / "headless.pt", config={}, model={"classifier.weight": torch.ones(1)}, epoch=1)
    with pytest.raises(WeightsError, match="headless.pt holds no backbone weights"):
        load_backbone_weights(resnet18(), tmp_path / "headless.pt", "resnet18")
