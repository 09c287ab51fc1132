"""The run's one train loader (sceneseg.loading): persistent workers see every epoch, and the batches
are those of the per-epoch loaders it replaced, for any number of workers."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from sceneseg.builders import build_train_val
from sceneseg.config import load_config
from sceneseg.data import SAMPLE_ROOT, CamVid, val_transform
from sceneseg.distributed import Distributed
from sceneseg.loading import EpochSampler, PreparedBatches, loader_options, train_loader
from tests.test_cli import TINY

SEED, BATCH = 7, 4


@pytest.fixture(scope="module")
def train_set():
    config = load_config(None, TINY)
    return build_train_val(config.data, seed=config.seed)[0]


def _epochs(loader: DataLoader, epochs=(1, 2), skip: int = 0) -> list[list[torch.Tensor]]:
    batches = []
    for epoch in epochs:
        loader.sampler.set_epoch(epoch, skip if epoch == epochs[0] else 0)
        batches += [[images, target] for images, target in loader]
    return batches


def _per_epoch_loaders(train_set, epochs=(1, 2), skip: int = 0) -> list[list[torch.Tensor]]:
    # What training did before the persistent loader: the dataset's epoch set in this process, and
    # a new DataLoader over the epoch's sampler every epoch.
    batches = []
    for epoch in epochs:
        train_set.set_epoch(epoch)
        sampler = Distributed().train_sampler(train_set, SEED, epoch, skip if epoch == epochs[0] else 0, BATCH)
        batches += [list(batch) for batch in DataLoader(train_set, batch_size=BATCH, sampler=sampler, drop_last=True)]
    train_set.set_epoch(0)
    return batches


def _assert_same(a: list, b: list) -> None:
    assert len(a) == len(b) > 0
    for x, y in zip(a, b, strict=True):
        assert all(torch.equal(u, v) for u, v in zip(x, y, strict=True))


def test_persistent_workers_give_the_batches_of_one_process_and_of_the_old_loaders(train_set):
    device = torch.device("cpu")
    single = train_loader(train_set, Distributed(), SEED, BATCH, None, device, num_workers=0)
    workers = train_loader(train_set, Distributed(), SEED, BATCH, None, device, num_workers=2)
    assert workers.persistent_workers and not single.persistent_workers
    expected = _per_epoch_loaders(train_set)
    _assert_same(_epochs(single), expected)
    # The workers are started in epoch 1 and keep their copy of the dataset: the epoch reaches
    # them through the sampler's keys, so epoch 2 is augmented as epoch 2.
    _assert_same(_epochs(workers), expected)
    # Resuming part-way: the first epoch from its second batch on.
    _assert_same(_epochs(workers, (2, 3), skip=1), _per_epoch_loaders(train_set, (2, 3), skip=1))


def test_the_sampler_tags_repeat_factor_copies_with_the_epoch(train_set):
    factors = np.linspace(1.0, 2.5, len(train_set))
    sampler = EpochSampler(train_set, Distributed(), SEED, BATCH, factors)
    sampler.set_epoch(3)
    pairs = list(Distributed().train_sampler(train_set, SEED, 3, 0, BATCH, factors))
    assert list(sampler) == [(frame, copy, 3) for frame, copy in pairs] and len(sampler) == len(pairs)
    # A key with its epoch gets the seed the dataset's own epoch would give it.
    frame, copy, _ = next(iter(sampler))
    train_set.set_epoch(3)
    try:
        expected = train_set[(frame, copy)]
    finally:
        train_set.set_epoch(0)
    assert all(torch.equal(a, b) for a, b in zip(train_set[(frame, copy, 3)], expected, strict=True))


class _Threads(Dataset):
    def __len__(self) -> int:
        return 2

    def __getitem__(self, index: int) -> int:
        return cv2.getNumThreads()


def test_workers_run_opencv_on_one_thread_and_gpu_batches_are_pinned():
    threads = cv2.getNumThreads()
    try:
        options = loader_options(torch.device("cpu"), 2)
        assert list(DataLoader(_Threads(), batch_size=1, **options)) == [torch.tensor([1])] * 2
    finally:
        cv2.setNumThreads(threads)
    assert not options["pin_memory"] and not options["persistent_workers"]
    assert loader_options(torch.device("cuda"), 0, persistent=True) == {
        "num_workers": 0,
        "pin_memory": True,
        "persistent_workers": False,  # DataLoader refuses persistent workers without workers
    }


def test_prepared_batches_are_the_dataloaders_batches():
    # The per-epoch val crops, prepared once: the batches a plain DataLoader gives, in order, with the
    # short last one; an empty shard (more ranks than frames) gives none.
    dataset = CamVid(SAMPLE_ROOT, "val", transform=val_transform(120, 96))
    prepared = PreparedBatches(dataset, 3, torch.device("cpu"))
    expected = list(DataLoader(dataset, batch_size=3))
    assert len(prepared) == len(expected) == 3 and len(list(prepared)[-1][0]) == 2
    for (images, labels), (want_images, want_labels) in zip(prepared, expected):
        assert images.dtype == torch.uint8 and torch.equal(images, want_images) and torch.equal(labels, want_labels)
    assert len(PreparedBatches(Subset(dataset, []), 3, torch.device("cpu"))) == 0
