"""How batches reach a training run: one train DataLoader for the whole run, and the settings every
loader of training and evaluation shares.

The train loader is built once and its workers live as long as the run (persistent_workers): no
re-forking and re-reading of the dataset every epoch. Workers keep the copy of the dataset they were
started with, so the epoch cannot reach them through the dataset (SegmentationDataset.set_epoch
in the main process would not be seen). It travels with the samples instead: EpochSampler yields
(frame, copy, epoch) keys, and the dataset derives each sample's augmentation seed from the key
alone, the same seed as before (seed, epoch, index, copy), whichever process loads it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

if TYPE_CHECKING:
    from .distributed import Distributed


def loader_options(device: torch.device, num_workers: int, persistent: bool = False) -> dict[str, Any]:
    """DataLoader arguments of every training and evaluation loader: `num_workers` processes
    (persistent: kept over the iterations of the loader), and page-locked batches for a GPU.

    With workers, this process's OpenCV is set to one thread, which the workers inherit when they
    are forked: each transforms one sample at a time beside the others and the training process,
    and a thread pool of its own in each would only oversubscribe the cores. (Setting it in the
    workers, in a worker_init_fn, can hang them: the pool they inherit lost its threads in the
    fork, and tearing it down waits for them forever. This process's own data work, decoding the
    datasets at start-up, is done before its loaders are built.)
    """
    if num_workers:
        cv2.setNumThreads(1)
    return {
        "num_workers": num_workers,
        "pin_memory": device.type == "cuda",
        "persistent_workers": persistent and num_workers > 0,
    }


class EpochSampler(Sampler[tuple[int, int, int]]):
    """This rank's train samples of the epoch set last (Distributed.train_sampler: the shuffle, or
    the repeat-factor list, of (seed, epoch)), each as the key (frame, copy, epoch)."""

    def __init__(
        self, dataset: Dataset, dist: Distributed, seed: int, batch_per_process: int, factors: np.ndarray | None
    ) -> None:
        self.dataset, self.dist, self.seed = dataset, dist, seed
        self.batch_per_process, self.factors = batch_per_process, factors
        self.set_epoch(1)

    def set_epoch(self, epoch: int, skip_batches: int = 0) -> None:
        """Sample epoch `epoch` from its `skip_batches`-th batch on (resuming part-way)."""
        self.epoch = epoch
        self._frames = self.dist.train_sampler(
            self.dataset, self.seed, epoch, skip_batches, self.batch_per_process, self.factors
        )

    def __iter__(self) -> Iterator[tuple[int, int, int]]:
        for key in self._frames:
            frame, copy = key if isinstance(key, tuple) else (key, 0)  # the repeat-factor sampler's (frame, copy)
            yield frame, copy, self.epoch

    def __len__(self) -> int:
        return len(self._frames)


class PreparedBatches:
    """Batches of a deterministic dataset (the per-epoch val crops), transformed once and kept on
    `device`: every epoch then scores the same tensors without loading, copying or transforming
    anything again. Iterates like a DataLoader over it without shuffling: the same batches, in order."""

    def __init__(self, dataset: Dataset, batch_size: int, device: torch.device) -> None:
        samples = [dataset[index] for index in range(len(dataset))]
        self.batches = [
            tuple(torch.stack(part).to(device) for part in zip(*samples[start : start + batch_size]))
            for start in range(0, len(samples), batch_size)
        ]

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return iter(self.batches)


def train_loader(
    dataset: Dataset,
    dist: Distributed,
    seed: int,
    batch_per_process: int,
    factors: np.ndarray | None,
    device: torch.device,
    num_workers: int,
) -> DataLoader:
    """The run's train loader; call `loader.sampler.set_epoch(epoch, skip_batches)` before each epoch."""
    return DataLoader(
        dataset,
        batch_size=batch_per_process,
        sampler=EpochSampler(dataset, dist, seed, batch_per_process, factors),
        drop_last=True,
        # Seeds only the workers' global generators, which no transform draws from (the sample
        # seeds come with the keys); a generator of its own leaves the main process's untouched.
        generator=torch.Generator().manual_seed(seed),
        **loader_options(device, num_workers, persistent=True),
    )
