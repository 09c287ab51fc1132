"""How closely `train.minutes` keeps its budget: the probe's estimate of an epoch against the epochs
each run recorded, and the budget against the time the run took.

    python benchmarks/budget_accuracy.py RUN_DIR ...      # finished runs trained with train.minutes
    sceneseg train camvid_thin_15min_cpu train.out_dir=/tmp/b15   # makes one (15 minutes + evaluation)

Reads each run folder's budget.json (written by the probe, sceneseg/budget.py), history.json and
metrics.json (the hardware the run named); trains nothing. Columns: the epochs the budget gave, the
probe's estimate of one epoch (mean step after the warm ones x steps + one validation pass), the
mean of the epochs history.json records (training, loading, validation, checkpoints) and its first
epoch apart, the estimate's error, and the time used: the probe plus the epochs' seconds, against
the budget. A run that shared its CPU with other work measures that sharing too.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def read_run(run: Path) -> dict:
    """The figures of one run folder, or SystemExit naming what it lacks."""
    files = {name: run / f"{name}.json" for name in ("budget", "history", "metrics")}
    missing = [str(path) for path in files.values() if not path.is_file()]
    if missing:
        raise SystemExit(
            f"{run}: no {', '.join(missing)}; expected a finished run trained with train.minutes "
            "(budget.json is written by its probe)"
        )
    budget, history, metrics = (json.loads(path.read_text()) for path in files.values())
    seconds = [record["seconds"] for record in history]
    return {"run": run, "budget": budget, "seconds": seconds, "hardware": metrics.get("hardware", "?")}


def row(figures: dict) -> str:
    budget, seconds = figures["budget"], figures["seconds"]
    mean = sum(seconds) / len(seconds)
    used = (budget["probe_seconds"] + sum(seconds)) / 60
    cells = [
        f"`{figures['run'].name}`",
        figures["hardware"],
        f"{budget['epochs']}" + (f" (of {len(seconds)} run)" if len(seconds) != budget["epochs"] else ""),
        f"{budget['epoch_seconds']:.1f}",
        f"{mean:.1f}",
        f"{seconds[0]:.1f}",
        f"{(budget['epoch_seconds'] / mean - 1) * 100:+.1f} %",
        f"{budget['minutes']:g}",
        f"{used:.2f}",
        f"{(used / budget['minutes'] - 1) * 100:+.1f} %",
    ]
    return "| " + " | ".join(cells) + " |"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders trained with train.minutes")
    args = parser.parse_args(argv)
    figures = [read_run(run) for run in args.runs]
    print(
        "| run | hardware | epochs | estimated epoch (s) | mean epoch (s) | first epoch (s) | estimate's error "
        "| budget (min) | used: probe + epochs (min) | against the budget |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for one in figures:
        print(row(one))
    return 0


if __name__ == "__main__":
    sys.exit(main())
