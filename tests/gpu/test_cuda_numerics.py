"""bf16 autocast and SyncBatchNorm on a CUDA GPU, with the model and loss training uses."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from sceneseg.config import load_config
from sceneseg.evaluation import resolve_precision
from sceneseg.inference import Precision
from sceneseg.losses import segmentation_loss
from sceneseg.models.pspnet import pspnet
from sceneseg.sync_batchnorm import convert_sync_batchnorm
from tests.gpu import NEEDS_CUDA

pytestmark = NEEDS_CUDA

CUDA = torch.device("cuda")
# Emulated bf16 (GPUs before Ampere) is slower than fp32: only native bf16 is worth turning on.
NATIVE_BF16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
needs_native_bf16 = pytest.mark.skipif(
    torch.cuda.is_available() and not NATIVE_BF16,
    reason="this GPU has no native bf16 (torch.cuda.is_bf16_supported(including_emulation=False))",
)


def _model() -> nn.Module:
    # PSPNet-18 has every layer kind training meets: dilated convolutions, the pyramid pooling
    # module (BatchNorm over 1x1 maps) and the auxiliary head.
    torch.manual_seed(0)
    return pspnet(num_classes=11, backbone="resnet18", deep_stem=False)


def _batch(size: int = 96) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(4, 3, size, size, generator=generator)
    target = torch.randint(0, 11, (4, size, size), generator=generator)
    return images.to(CUDA), target.to(CUDA)


@needs_native_bf16
def test_bf16_autocast_trains_on_cuda() -> None:
    precision = Precision(CUDA, bf16=True, channels_last=True)
    model = _model().to(CUDA).to(memory_format=torch.channels_last).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    images, target = _batch()
    losses = []
    for _ in range(5):  # the same batch: a working step lowers its loss
        with precision.autocast():
            outputs = model(precision.images(images))
        assert outputs["out"].dtype == torch.bfloat16 and outputs["out"].is_cuda
        loss = segmentation_loss(outputs, target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        # The weights and their gradients stay float32: autocast casts per operation only.
        assert all(p.grad.dtype == torch.float32 and torch.isfinite(p.grad).all() for p in model.parameters())
        optimizer.step()
        losses.append(loss.item())
    assert all(math.isfinite(x) for x in losses) and losses[-1] < losses[0]


def test_bf16_is_chosen_on_cuda_exactly_where_the_gpu_has_it_natively() -> None:
    precision = resolve_precision(load_config(None, ["device=cuda"]), CUDA)
    assert precision.bf16 == NATIVE_BF16


def test_sync_batchnorm_converts_and_trains_on_cuda() -> None:
    plain = _model().to(CUDA).train()
    synced = convert_sync_batchnorm(copy.deepcopy(plain), CUDA).to(CUDA).train()
    kinds = {type(m) for m in synced.modules()}
    assert nn.SyncBatchNorm in kinds and nn.BatchNorm2d not in kinds
    images, target = _batch()
    outputs = []
    for model in (plain, synced):
        torch.manual_seed(1)  # the heads' dropout draws the same masks for both
        outputs.append(model(images))
    out_plain, out_synced = outputs
    # In one process (no group, or a group of one) SyncBatchNorm normalises as BatchNorm does.
    torch.testing.assert_close(out_synced["out"], out_plain["out"], rtol=1e-3, atol=1e-3)
    segmentation_loss(out_synced, target).backward()
    grads = [p.grad for p in synced.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    bn = next(m for m in synced.modules() if isinstance(m, nn.SyncBatchNorm))
    assert bn.num_batches_tracked.item() == 1 and bn.running_mean.is_cuda


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_the_optimizer_is_fused_on_cuda_and_plain_on_cpu(optimizer):
    from sceneseg.optimizer import build_optimizer

    train = load_config(None, [f"train.optimizer={optimizer}"]).train
    on_gpu, _ = build_optimizer(nn.Conv2d(3, 4, 1).cuda(), train, iters_per_epoch=4)
    on_cpu, _ = build_optimizer(nn.Conv2d(3, 4, 1), train, iters_per_epoch=4)
    assert on_gpu.defaults["fused"] is True and not on_cpu.defaults["fused"]


def test_confusion_updates_on_cuda_never_wait_for_the_host() -> None:
    # Issue 13: the matrix accumulates on the GPU and is read once an epoch. Sync debug mode "error"
    # makes any device-to-host wait inside the updates fail; the read afterwards is the one allowed.
    from sceneseg.metrics import ConfusionMatrix

    generator = torch.Generator().manual_seed(0)
    target = torch.randint(0, 12, (6, 3, 40, 50), generator=generator, dtype=torch.uint8)
    target[target == 11] = 255
    pred = torch.randint(0, 11, (6, 3, 40, 50), generator=generator)
    on_gpu, on_cpu = ConfusionMatrix(11), ConfusionMatrix(11)
    torch.cuda.set_sync_debug_mode("error")
    try:
        for t, p in zip(target.to(CUDA), pred.to(CUDA)):
            on_gpu.update(p, t)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    for t, p in zip(target, pred):
        on_cpu.update(p, t)
    assert torch.equal(on_gpu.matrix, on_cpu.matrix) and on_gpu.matrix.sum() == (target != 255).sum()
