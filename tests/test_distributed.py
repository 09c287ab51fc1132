"""Data-parallel training through torchrun on the CPU (gloo): two processes train as one would."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest

from sceneseg.checkpoint import load_checkpoint
from sceneseg.cli import main
from sceneseg.distributed import DEBUG_DIGESTS, Distributed, state_digest
from tests.test_cli import TINY

# Two processes compute what one does on the same global batches, up to float rounding: they sum
# in another order, as a different thread count would. Training from scratch amplifies rounding
# step by step, so a small learning rate keeps the run out of its chaotic first phase; the
# tolerances below are then 3-4x what this run shows (and 3-10x below the differences of the
# same run without SyncBatchNorm, where each process normalises its half-batch on its own).
# SyncBatchNorm makes BatchNorm see the whole global batch of 8, as the single process does.
# The schedule is pinned here (not taken from the sample config) because the tolerances were measured with it.
RUN = [
    *TINY,
    "train.epochs=2",
    "train.lr=0.0001",
    "train.head_lr_mult=10",
    "train.warmup_iters=0",
    "train.sync_bn=true",
    "device=cpu",
]
LOSS_REL, METRIC_ABS = 1e-3, 2e-3


def test_torchrun_two_processes_match_one_process(tmp_path):
    single, multi, digests = tmp_path / "single", tmp_path / "multi", tmp_path / "digests"
    env = dict(os.environ, OMP_NUM_THREADS="1", **{DEBUG_DIGESTS: str(digests)})
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "sceneseg",
        "train",
        *RUN,
        f"train.out_dir={multi}",
        "--no-progress",
    ]
    done = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    assert main(["train", *RUN, f"train.out_dir={single}", "--no-progress"]) == 0

    # One set of files, written by rank 0 alone, and one copy of the log.
    tensorboard = ["tensorboard"] if importlib.util.find_spec("tensorboard") else []  # optional
    assert (
        sorted(p.name for p in multi.iterdir())
        == sorted(p.name for p in single.iterdir())
        == [
            "best.pt",
            "config.yaml",
            "data_split.json",
            "history.csv",
            "history.json",
            "last.pt",
            "metrics.json",
            *tensorboard,
        ]
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["digests", "multi", "single"]
    assert done.stdout.count("epoch   1 ") == 1 and done.stdout.count("evaluating best.pt") == 1
    assert "= 2 processes x 4" in done.stdout

    # Every rank holds the same weights after every epoch, and rank 0 saved exactly those.
    for epoch in (1, 2):
        ranks = [(digests / f"epoch{epoch}.rank{r}.txt").read_text() for r in (0, 1)]
        assert ranks[0] == ranks[1], f"replicas differ after epoch {epoch}"
    assert (digests / "epoch2.rank0.txt").read_text().strip() == state_digest(
        load_checkpoint(multi / "last.pt")["model"]
    )

    # Metrics from the confusion matrix summed over ranks (train and val) match the single run.
    one, two = (json.loads((run / "history.json").read_text()) for run in (single, multi))
    for a, b in zip(one, two, strict=True):
        assert a["lr"] == pytest.approx(b["lr"], rel=1e-9)
        for key in ("train_loss", "val_loss"):
            assert a[key] == pytest.approx(b[key], rel=LOSS_REL), (a["epoch"], key)
        for key in ("train_mIoU", "val_mIoU", "val_mAcc", "val_allAcc"):
            assert a[key] == pytest.approx(b[key], abs=METRIC_ABS), (a["epoch"], key)
    final = [json.loads((run / "metrics.json").read_text()) for run in (single, multi)]
    assert final[0]["frames"] == final[1]["frames"] == 8  # each val frame scored once over the ranks
    assert final[0]["mIoU"] == pytest.approx(final[1]["mIoU"], abs=METRIC_ABS)


@pytest.mark.parametrize("world", [1, 2, 3])
def test_ranks_share_each_global_batch_and_skip_whole_batches(world):
    frames, per_process = list(range(25)), 2
    batch = per_process * world

    def global_batches(skip: int) -> list[set[int]]:
        shares = [
            list(Distributed(rank=r, world_size=world).train_sampler(frames, 7, 3, skip, per_process))
            for r in range(world)
        ]
        count = min(len(s) for s in shares) // per_process
        return [set().union(*(s[i * per_process : (i + 1) * per_process] for s in shares)) for i in range(count)]

    single = list(Distributed().train_sampler(frames, 7, 3))
    expected = [set(single[i * batch : (i + 1) * batch]) for i in range(len(frames) // batch)]
    assert global_batches(0) == expected
    assert global_batches(2) == expected[2:]  # resuming after two iterations


@pytest.mark.parametrize(
    "environ, cores, threads",
    [
        ({"OMP_NUM_THREADS": "1", "LOCAL_WORLD_SIZE": "2"}, 16, 8),  # torchrun's default: replaced by the share
        ({"LOCAL_WORLD_SIZE": "2"}, 16, 8),  # no OMP_NUM_THREADS at all (another launcher)
        ({"OMP_NUM_THREADS": "1", "LOCAL_WORLD_SIZE": "4"}, 2, 1),  # more processes than cores: at least one
        ({"OMP_NUM_THREADS": "3", "LOCAL_WORLD_SIZE": "2"}, 16, None),  # the caller's own choice is kept
        ({}, 6, 6),
    ],
)
def test_threads_per_process_share_the_cores_unless_the_caller_chose(environ, cores, threads):
    from sceneseg.distributed import threads_per_process

    assert threads_per_process(environ, cores) == threads
