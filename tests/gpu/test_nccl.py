"""A process group of one over NCCL: the collectives, DDP and SyncBatchNorm that multi-GPU training uses.

One GPU cannot hold two NCCL ranks (NCCL refuses a duplicate GPU), so this is the most of the NCCL
path one GPU can run: the same calls a torchrun job makes, with world size 1.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from sceneseg.distributed import Distributed
from sceneseg.losses import segmentation_loss
from sceneseg.models.pspnet import pspnet
from sceneseg.sync_batchnorm import convert_sync_batchnorm
from tests.gpu import NEEDS_CUDA

pytestmark = NEEDS_CUDA

GPU = torch.device("cuda", 0)


@dataclass(frozen=True)
class _GroupOfOne(Distributed):
    """sceneseg's Distributed skips every collective in a single process (world size 1); claiming
    to be distributed makes it send them through the NCCL group of one instead."""

    @property
    def enabled(self) -> bool:
        return True


@pytest.fixture(scope="module")
def nccl_group(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    if not dist.is_nccl_available():
        pytest.skip("this torch build has no NCCL")
    # A file store: no TCP port to pick, and nothing left behind once the test's folder goes.
    store = Path(tmp_path_factory.mktemp("nccl")) / "store"
    torch.cuda.set_device(GPU)
    dist.init_process_group("nccl", init_method=f"file://{store}", rank=0, world_size=1, device_id=GPU)
    try:
        yield
    finally:
        dist.destroy_process_group()  # the other GPU tests run in this process without a group


def test_all_reduce_over_a_one_process_nccl_group(nccl_group: None) -> None:
    assert dist.get_backend() == "nccl" and dist.get_world_size() == 1
    tensor = torch.arange(4.0, device=GPU)
    dist.all_reduce(tensor)
    assert tensor.tolist() == [0.0, 1.0, 2.0, 3.0]


def test_sceneseg_collectives_run_over_nccl(nccl_group: None) -> None:
    group = _GroupOfOne(rank=0, world_size=1, local_rank=0, device=GPU)
    assert group.comm_device == GPU
    assert group.all_reduce_sum(torch.ones(3, device=GPU)).tolist() == [1.0, 1.0, 1.0]
    assert group.any(True) and not group.any(False)
    model = nn.BatchNorm2d(4).to(GPU)
    model.running_mean.fill_(0.5)
    group.broadcast_buffers(model)
    assert torch.equal(model.running_mean, torch.full((4,), 0.5, device=GPU))
    group.barrier()


def test_ddp_with_sync_batchnorm_trains_over_nccl(nccl_group: None) -> None:
    torch.manual_seed(0)
    net = convert_sync_batchnorm(pspnet(num_classes=11, backbone="resnet18", deep_stem=False), GPU).to(GPU)
    model = DistributedDataParallel(net, device_ids=[GPU.index])
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(4, 3, 96, 96, generator=generator).to(GPU)
    target = torch.randint(0, 11, (4, 96, 96), generator=generator).to(GPU)
    loss = segmentation_loss(model(images), target)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())
    bn = next(m for m in net.modules() if isinstance(m, nn.SyncBatchNorm))
    assert bn.num_batches_tracked.item() == 1
