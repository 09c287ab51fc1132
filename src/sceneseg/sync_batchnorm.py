"""BatchNorm over the global batch under torchrun (train.sync_bn): torch's SyncBatchNorm on GPUs, and
`CpuSyncBatchNorm`, sceneseg's own over gloo, on CPUs, where torch's does not run."""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn


class _AllReduceSum(torch.autograd.Function):
    """Sum over ranks whose backward sums the incoming gradients over ranks too.

    (torch.distributed.nn.functional.all_reduce does this but is deprecated since torch 2.x, and
    its successor's autograd support is recent; this works on every torch sceneseg supports.)"""

    @staticmethod
    def forward(ctx: object, tensor: torch.Tensor) -> torch.Tensor:
        tensor = tensor.clone()
        dist.all_reduce(tensor)
        return tensor

    @staticmethod
    def backward(ctx: object, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


class CpuSyncBatchNorm(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics span the whole global batch, over gloo on the CPU.

    torch.nn.SyncBatchNorm accepts GPU tensors only. Same parameters and buffers as BatchNorm2d
    (checkpoints do not change); statistics are reduced with the differentiable all_reduce, whose
    backward sums the gradients of every rank, as DDP's averaged gradients need.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        xf = x.float()  # under bf16 autocast the sums need float32 accuracy
        dims = (0, 2, 3)
        local = torch.cat([xf.sum(dims), xf.new_tensor([x.numel() / x.shape[1]])])
        total = _AllReduceSum.apply(local)
        count, mean = total[-1], total[:-1] / total[-1]
        centred = xf - mean[None, :, None, None]
        # Two passes (mean, then squared deviations) as BatchNorm itself, not E[x^2] - E[x]^2.
        var = _AllReduceSum.apply(centred.pow(2).sum(dims)) / count
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1
                factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                self.running_mean.lerp_(mean, factor)
                self.running_var.lerp_(var * count / (count - 1).clamp(min=1), factor)
        out = centred * torch.rsqrt(var + self.eps)[None, :, None, None]
        if self.affine:
            out = out * self.weight[None, :, None, None] + self.bias[None, :, None, None]
        return out.to(x.dtype)


def convert_sync_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """Replace every BatchNorm2d by a synchronised one (torch's on GPUs, CpuSyncBatchNorm on the CPU)."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    if isinstance(module, nn.BatchNorm2d) and not isinstance(module, CpuSyncBatchNorm):
        synced = CpuSyncBatchNorm(
            module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats
        )
        # The same Parameter and buffer objects: requires_grad (frozen backbones) carries over.
        if module.affine:
            synced.weight, synced.bias = module.weight, module.bias
        if module.track_running_stats:
            synced.running_mean, synced.running_var = module.running_mean, module.running_var
            synced.num_batches_tracked = module.num_batches_tracked
        return synced.train(module.training)
    for name, child in module.named_children():
        module.add_module(name, convert_sync_batchnorm(child, device))
    return module
