"""Data-parallel training on PyTorch's own engine: torchrun starts the processes, DDP syncs them.

`torchrun --nproc_per_node=N -m sceneseg train ...` starts N copies of the command and tells each
its place through environment variables (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT).
`init_from_env` reads them and joins the process group; the `Distributed` it returns is passed down
to whatever needs the rank, so there is no module-level state. Without those variables it
describes a single process and every collective below is a no-op.

The global batch (train.batch_size) is split evenly over the processes. Each epoch's shuffle is a
function of (seed, epoch) only, so global batch i holds the same frames for any number of
processes (see `train_sampler`).
"""

from __future__ import annotations

import hashlib
import itertools
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Dataset, DistributedSampler, Sampler

from .errors import SceneSegError
from .inference import resolve_device
from .sampling import RepeatFactorSampler

DEBUG_DIGESTS = "SCENESEG_DEBUG_RANK_DIGESTS"  # folder: every rank writes its weights' digest per epoch


@dataclass(frozen=True)
class Distributed:
    """Where this process stands: rank among world_size, GPU index on its node, its device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    debug_dir: Path | None = None

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 alone writes files and shows progress and logs."""
        return self.rank == 0

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """The element-wise sum over all processes (the tensor itself in a single process)."""
        if self.enabled:
            dist.all_reduce(tensor)
        return tensor

    def any(self, flag: bool) -> bool:
        """True on every rank when `flag` is true on at least one: decisions all ranks must share."""
        return bool(self.all_reduce_sum(torch.tensor([float(flag)], device=self.comm_device)).item())

    def broadcast_buffers(self, model: nn.Module) -> None:
        """Give every rank rank 0's buffers (BatchNorm statistics), so all evaluate the saved model."""
        if self.enabled:
            for buffer in model.buffers():
                dist.broadcast(buffer, src=0)

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier(device_ids=[self.local_rank] if self.device.type == "cuda" else None)

    def shard(self, length: int) -> list[int]:
        """This rank's share of `length` evaluation samples; together the ranks cover each exactly once."""
        return list(range(self.rank, length, self.world_size))

    def train_sampler(
        self,
        dataset: Dataset,
        seed: int,
        epoch: int,
        skip_batches: int = 0,
        batch_per_process: int = 1,
        factors: np.ndarray | None = None,
    ) -> Sampler:
        """This rank's frames of an epoch, from its `skip_batches`-th batch on (resuming mid-epoch).

        DistributedSampler permutes all frames with a generator seeded by seed + epoch, whatever
        the number of processes, and deals rank r every world_size-th frame; drop_last keeps the
        shares equal. Rank r's batch i is therefore part of the same global batch i as in a single
        process, and skipping i batches on every rank skips exactly the first i global batches.
        With repeat `factors` (sampling.py) the epoch's list of (frame, copy) pairs, also a function
        of (seed, epoch) only, is dealt out the same way.
        """
        if factors is not None:
            sampler = RepeatFactorSampler(factors, seed, epoch, self.rank, self.world_size)
        else:
            sampler = DistributedSampler(
                dataset, num_replicas=self.world_size, rank=self.rank, shuffle=True, seed=seed, drop_last=True
            )
            sampler.set_epoch(epoch)
        return _Skip(sampler, skip_batches * batch_per_process)

    def write_debug_digest(self, name: str, state: Mapping[str, torch.Tensor]) -> None:
        # Test aid: lets a test compare the replicas' weights without a second checkpoint format.
        if self.debug_dir is not None:
            self.debug_dir.mkdir(parents=True, exist_ok=True)
            (self.debug_dir / f"{name}.rank{self.rank}.txt").write_text(state_digest(state) + "\n")

    def cleanup(self) -> None:
        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()

    @property
    def comm_device(self) -> torch.device:
        # NCCL reduces CUDA tensors only; gloo takes CPU ones.
        return self.device if self.device.type == "cuda" else torch.device("cpu")


class _Skip(Sampler):
    def __init__(self, sampler: Sampler, skip: int) -> None:
        self.sampler, self.skip = sampler, skip

    def __iter__(self) -> Iterator:
        return itertools.islice(iter(self.sampler), self.skip, None)

    def __len__(self) -> int:
        return max(len(self.sampler) - self.skip, 0)


def _env_int(environ: Mapping[str, str], name: str, default: int) -> int:
    value = environ.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise SceneSegError(
            f"environment variable {name}={value!r}: expected an integer (as torchrun sets it)"
        ) from None


def threads_per_process(environ: Mapping[str, str], cores: int) -> int | None:
    """Torch threads for one of this node's torchrun processes, or None to keep the caller's choice.

    torchrun (torch 2.13) sets OMP_NUM_THREADS=1 for its processes when its caller did not set the
    variable, and warns: right for GPU jobs, but a CPU job of N processes then leaves all but N
    cores idle. That 1 is replaced by the process's share of the cores (LOCAL_WORLD_SIZE processes
    on this node); any other value was the caller's and is kept. (A 1 given on purpose looks the
    same as torchrun's default and is replaced too.)
    """
    given = environ.get("OMP_NUM_THREADS")
    if given is not None and given.strip() != "1":
        return None
    return max(1, cores // max(1, _env_int(environ, "LOCAL_WORLD_SIZE", 1)))


def _usable_cores() -> int:
    # The cores this process may run on (a container or taskset may allow fewer than the machine has).
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def single_process(device: str = "auto") -> Distributed:
    """This process alone, on the device a config names: what callers get without torchrun."""
    return Distributed(device=resolve_device(device))


def init_from_env(device: str = "auto", environ: Mapping[str, str] | None = None) -> Distributed:
    """Join the process group torchrun describes in the environment; a single process without it.

    `device` is the config's: "auto" takes the GPU numbered LOCAL_RANK where CUDA is available
    (backend NCCL) and the CPU otherwise (backend gloo). Under torchrun it also sets torch's
    thread count of CPU jobs (see threads_per_process).
    """
    environ = os.environ if environ is None else environ
    world = _env_int(environ, "WORLD_SIZE", 1)
    rank, local_rank = _env_int(environ, "RANK", 0), _env_int(environ, "LOCAL_RANK", 0)
    debug = environ.get(DEBUG_DIGESTS)
    debug_dir = Path(debug) if debug else None
    chosen = resolve_device(device)
    if world <= 1:
        return Distributed(device=chosen, debug_dir=debug_dir)
    if not 0 <= rank < world:
        raise SceneSegError(f"RANK={rank} with WORLD_SIZE={world}: expected 0 <= RANK < WORLD_SIZE")
    missing = [key for key in ("MASTER_ADDR", "MASTER_PORT") if key not in environ]
    if missing:
        raise SceneSegError(
            f"WORLD_SIZE={world} but {' and '.join(missing)} not set; start distributed "
            "training with torchrun (see README, 'Training on several processes')"
        )
    threads = threads_per_process(environ, _usable_cores()) if chosen.type == "cpu" else None
    if threads is not None:  # GPU jobs keep torchrun's 1: their host threads only feed the GPU
        torch.set_num_threads(threads)
    if chosen.type == "cuda":
        if chosen.index is not None:
            raise SceneSegError(
                f"device = {device!r}: under torchrun each process takes the GPU numbered by its "
                "LOCAL_RANK; set device to 'cuda' or 'auto'"
            )
        if local_rank >= torch.cuda.device_count():
            raise SceneSegError(
                f"LOCAL_RANK={local_rank} but this machine has {torch.cuda.device_count()} "
                "GPU(s); start at most that many processes per node"
            )
        torch.cuda.set_device(local_rank)
        chosen, backend = torch.device("cuda", local_rank), "nccl"
    else:
        backend = "gloo"
    dist.init_process_group(backend, rank=rank, world_size=world, device_id=chosen if backend == "nccl" else None)
    return Distributed(rank, world, local_rank, chosen, debug_dir)


def state_digest(state: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 of the names and exact bytes of a state dict's tensors."""
    digest = hashlib.sha256()
    for key, value in state.items():
        digest.update(key.encode())
        digest.update(value.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
