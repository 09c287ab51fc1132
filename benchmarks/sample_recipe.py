"""The built-in sample run (`sceneseg train`) against the recipe it replaced, timed in one run.

    python benchmarks/sample_recipe.py                    # seeds 0 1 2, both recipes
    python benchmarks/sample_recipe.py --seeds 0 --repeats 3

Each run is a fresh `sceneseg train` process timed from start to exit (wall clock, so start-up and
the final evaluation count), the recipes alternating so that a busy machine slows both alike.
Prints a Markdown table per run and the mean per recipe: whole-frame val mIoU of best.pt, whether
the train loss ever rose above its first epoch's value, the seconds of the epochs (history.json:
training and per-epoch validation) and of the whole command.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from sceneseg.evaluation import describe_hardware

# The sample config's train section before issue 11: from-scratch heads at 10x a 0.02 learning rate
# with no warm-up, which made the loss jump to ~20 before it fell.
RECIPES = {
    "before (8 epochs, batch 8, lr 0.02, head x10, no warm-up)": [
        "train.epochs=8",
        "train.batch_size=8",
        "train.lr=0.02",
        "train.head_lr_mult=10",
        "train.warmup_iters=0",
    ],
    "now (built-in sample.yaml)": [],
}


def run_once(overrides: list[str], seed: int, out_dir: Path) -> dict:
    command = [
        sys.executable,
        "-m",
        "sceneseg.cli",
        "train",
        f"seed={seed}",
        f"train.out_dir={out_dir}",
        *overrides,
        "--no-progress",
    ]
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    history = json.loads((out_dir / "history.json").read_text())
    metrics = json.loads((out_dir / "metrics.json").read_text())
    losses = [record["train_loss"] for record in history]
    return {
        "seconds": seconds,
        "epoch_seconds": sum(record["seconds"] for record in history),
        "mIoU": metrics["mIoU"],
        "first_loss": losses[0],
        "max_loss": max(losses),
        "rises": max(losses) > losses[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--repeats", type=int, default=1, help="runs per recipe and seed (timing spread)")
    args = parser.parse_args()
    print(f"{describe_hardware(torch.device('cpu'))}\n")
    print("| recipe | seed | val mIoU | train loss epoch 1 / max | loss rises above epoch 1 | epochs s | wall s |")
    print("|---|---:|---:|---|---|---:|---:|")
    results: dict[str, list[dict]] = {name: [] for name in RECIPES}
    with tempfile.TemporaryDirectory() as scratch:
        for seed in args.seeds:
            for repeat in range(args.repeats):
                for index, (name, overrides) in enumerate(RECIPES.items()):
                    result = run_once(overrides, seed, Path(scratch) / f"{index}_{seed}_{repeat}")
                    results[name].append(result)
                    print(
                        f"| {name} | {seed} | {result['mIoU']:.4f} | {result['first_loss']:.2f} / "
                        f"{result['max_loss']:.2f} | {'yes' if result['rises'] else 'no'} | "
                        f"{result['epoch_seconds']:.1f} | {result['seconds']:.1f} |",
                        flush=True,
                    )
    print("\n| recipe | runs | mean val mIoU | min-max | median epochs s | median wall s |")
    print("|---|---:|---:|---|---:|---:|")
    for name, runs in results.items():
        ious = [r["mIoU"] for r in runs]
        print(
            f"| {name} | {len(runs)} | {statistics.mean(ious):.4f} | {min(ious):.4f}-{max(ious):.4f} | "
            f"{statistics.median(r['epoch_seconds'] for r in runs):.1f} | "
            f"{statistics.median(r['seconds'] for r in runs):.1f} |"
        )


if __name__ == "__main__":
    main()
