"""Transfer learning: head replacement, what is kept, frozen backbones."""

import pytest
import torch

from sceneseg.checkpoint import save_checkpoint
from sceneseg.config import load_config, to_dict
from sceneseg.engine import train_one_epoch
from sceneseg.errors import WeightsError
from sceneseg.inference import Precision
from sceneseg.models import pspnet, simple_segmentation_net, to_reference
from sceneseg.optimizer import build_optimizer
from sceneseg.transfer import init_from

FINAL = ("cls.4.weight", "cls.4.bias", "aux.4.weight", "aux.4.bias")


@pytest.fixture(scope="module")
def camvid_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = pspnet(11, backbone="resnet18", deep_stem=False)
    path = tmp_path_factory.mktemp("ckpt") / "best.pt"
    save_checkpoint(path, config=to_dict(load_config(None)), model=model.state_dict(), epoch=1)
    return path, model.state_dict()


def test_head_replacement_keeps_every_other_tensor_bitwise(camvid_checkpoint):
    path, source = camvid_checkpoint
    torch.manual_seed(1)
    target = pspnet(2, backbone="resnet18", deep_stem=False)
    fresh = {k: v.clone() for k, v in target.state_dict().items()}
    messages = []
    report = init_from(target, path, messages.append)
    state = target.state_dict()
    assert sorted(report["replaced"]) == sorted(FINAL) and report["dropped"] == []
    for key, value in state.items():
        if key in FINAL:
            assert torch.equal(value, fresh[key]) and value.shape[0] == 2
        else:
            assert torch.equal(value, source[key]), key
    assert "kept" in messages[0] and "cls.4.weight" in messages[0]


def test_reference_layout_and_misfits(camvid_checkpoint, tmp_path):
    _, source = camvid_checkpoint
    reference = tmp_path / "ref.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in to_reference(source).items()}}, reference)
    target = pspnet(2, backbone="resnet18", deep_stem=False)
    init_from(target, reference, lambda m: None)
    assert torch.equal(target.state_dict()["backbone.layer4.1.conv2.weight"], source["backbone.layer4.1.conv2.weight"])
    with pytest.raises(WeightsError, match="does not fit the model"):
        init_from(pspnet(2, backbone="resnet34", deep_stem=False), reference, lambda m: None)


def test_frozen_backbone_stays_put_while_heads_train():
    torch.manual_seed(0)
    model = simple_segmentation_net(3, backbone="resnet18")
    model.freeze_backbone()
    model.train()  # must not wake the frozen BatchNorm layers
    assert not model.backbone.training and model.classifier.training
    before = {k: v.clone() for k, v in model.state_dict().items()}
    images, target = torch.randn(4, 3, 64, 64), torch.randint(0, 3, (4, 64, 64))
    config = load_config(None, ["train.epochs=1"]).train
    optimizer, scheduler = build_optimizer(model, config, iters_per_epoch=2)
    assert len(optimizer.param_groups[0]["params"]) == 0  # no backbone parameter to optimise
    train_one_epoch(
        model, [(images, target)] * 2, optimizer, scheduler, Precision(torch.device("cpu")), 3, 1, show_progress=False
    )
    after = model.state_dict()
    for key in before:
        if key.startswith("backbone."):
            assert torch.equal(before[key], after[key]), key  # weights and running statistics
    assert not torch.equal(before["classifier.conv.weight"], after["classifier.conv.weight"])
