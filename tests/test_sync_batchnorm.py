"""CpuSyncBatchNorm outside a process group (the 2-process run that syncs it: test_distributed.py)."""

from __future__ import annotations

import torch
from torch import nn

from sceneseg.sync_batchnorm import CpuSyncBatchNorm, convert_sync_batchnorm


def test_sync_batchnorm_keeps_the_checkpoint_layout_and_is_plain_batchnorm_alone():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(2, 3, 8, 8)
    expected = model(x)
    model.load_state_dict(before)
    synced = convert_sync_batchnorm(model, torch.device("cpu"))
    assert isinstance(synced[1], CpuSyncBatchNorm) and synced.state_dict().keys() == before.keys()
    # Outside a process group it is BatchNorm2d itself, running statistics included.
    assert torch.equal(synced(x), expected)
