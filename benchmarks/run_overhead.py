"""Time outside the training step and evaluation for one training config, with an older commit's code
and with this tree's, trained one after the other with the same seed.

    python benchmarks/run_overhead.py camvid_simple_r18_15min_cpu --before 88b1362 --out /tmp/overhead \
        data.root=../shared/datasets/camvid
    python benchmarks/run_overhead.py camvid_simple_r18_15min_cpu --out /tmp/overhead --reuse  # table only
    python benchmarks/run_overhead.py camvid_simple_r18_15min_cpu --out /tmp/overhead --only after \
        data.root=../shared/datasets/camvid  # one side only, or after a change to this tree: again

Each side is `sceneseg train CONFIG OVERRIDES train.out_dir=OUT/<side>` in a new process: "before" runs
the code of the --before commit (checked out with `git worktree` into OUT/tree for that run and
removed after it), "after" this tree's. A failed training names its log, OUT/<side>.log. The
process's wall time (launch to exit, Python's start and imports included) is kept in OUT/walls.json,
so --reuse prints the table again without training.

Before issue 13 a run recorded only each epoch's seconds and its final evaluation's. The training
step and the validation forward passes are the same operations on both sides (same config and seed,
and the table checks that the per-epoch metrics agree), so the before run's time outside them is
its wall time less the after run's step, validation and final-evaluation seconds.
Prints the CPU model, then Markdown tables. Train on an idle machine: both sides take the config's
full time (a 15-minute config: 25-30 minutes each on a 2-core AMD EPYC).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from data_pipeline import cpu_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
METRIC_KEYS = ("train_loss", "train_mIoU", "val_loss", "val_mIoU", "val_mAcc", "val_allAcc")
COMPUTE_KEYS = ("step_seconds", "val_seconds", "final_eval_seconds")
SIDES = ("after", "before")


def train(source: Path, config: str, overrides: list[str], run: Path) -> float:
    """Train with the package under `source` (a tree's src/) in a new process; its wall seconds.
    A run already in `run` (a side trained again) is moved to `<run>.previous` first."""
    if run.exists():
        previous = run.with_name(run.name + ".previous")
        shutil.rmtree(previous, ignore_errors=True)
        run.rename(previous)
    env = {**os.environ, "PYTHONPATH": str(source)}
    command = [sys.executable, "-m", "sceneseg", "train", config, *overrides, f"train.out_dir={run}"]
    started = time.perf_counter()
    with open(run.with_suffix(".log"), "w") as log:
        code = subprocess.run(command, env=env, stdout=log, stderr=subprocess.STDOUT).returncode
    if code != 0:
        raise SystemExit(f"training with {source} failed (exit status {code}): see {run.with_suffix('.log')}")
    return time.perf_counter() - started


def run_sides(args: argparse.Namespace, sides: tuple[str, ...]) -> dict[str, float]:
    """Train `sides` ("after", "before" or both), keeping the other side's wall time from walls.json."""
    args.out.mkdir(parents=True, exist_ok=True)
    kept = args.out / "walls.json"
    walls = json.loads(kept.read_text()) if kept.is_file() else {}
    if "after" in sides:
        walls["after"] = train(ROOT / "src", args.config, args.overrides, args.out / "after")
    if "before" in sides:
        tree = args.out / "tree"
        git = ["git", "-C", str(ROOT), "worktree"]
        subprocess.run([*git, "add", "--force", "--detach", str(tree), args.before], check=True)
        try:
            walls["before"] = train(tree / "src", args.config, args.overrides, args.out / "before")
        finally:  # the old code is only needed for its run: leave no worktree behind in the repository
            subprocess.run([*git, "remove", "--force", str(tree)], check=True)
    kept.write_text(json.dumps(walls, indent=1))
    return walls


def load(run: Path) -> tuple[list[dict], dict]:
    return json.loads((run / "history.json").read_text()), json.loads((run / "metrics.json").read_text())


def phase_rows(
    after: dict, after_history: list[dict], before: tuple[list[dict], dict] | None, walls: dict[str, float]
) -> list[str]:
    """Markdown rows: seconds and share of the process's wall time, per phase, after and before
    (the before columns empty when only the after side was trained)."""
    history, metrics = before or ([], {})
    compute = sum(after[key] for key in COMPUTE_KEYS)
    outside_after = walls["after"] - compute
    outside_before = walls["before"] - compute if before else None
    rows = [
        ("process wall time (launch to exit)", walls["after"], walls.get("before") if before else None),
        ("epochs (sum of history.json `seconds`)", _epochs(after_history), _epochs(history) if before else None),
        ("start-up (training start to first epoch)", after["startup_seconds"], None),
        ("waiting for data", after["data_seconds"], None),
        ("training step", after["step_seconds"], None),
        ("validation", after["val_seconds"], None),
        ("checkpoints", after["checkpoint_seconds"], None),
        ("final evaluation", after["final_eval_seconds"], metrics.get("eval_seconds")),
        ("**outside the step, validation and final evaluation**", outside_after, outside_before),
    ]
    lines = ["| phase | after (s) | after share | before (s) | before share |", "|---|---:|---:|---:|---:|"]
    for label, now, then in rows:
        lines.append(f"| {label} | {_cell(now, walls['after'])} | {_cell(then, walls.get('before', 0.0))} |")
    return lines


def _epochs(history: list[dict]) -> float:
    return sum(record["seconds"] for record in history)


def _cell(seconds: float | None, wall: float) -> str:
    return "- | -" if seconds is None else f"{seconds:.1f} | {seconds / wall:.1%}"


def metric_difference(after: list[dict], before: list[dict]) -> float:
    """The largest absolute difference of any per-epoch metric between the two histories."""
    if len(after) != len(before):
        raise SystemExit(f"the runs trained {len(after)} and {len(before)} epochs: not the same config")
    return max(abs(a[key] - b[key]) for a, b in zip(after, before) for key in METRIC_KEYS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config")
    parser.add_argument("overrides", nargs="*", help="dotted key=value overrides for both sides")
    parser.add_argument("--before", default="88b1362", help="git revision of the 'before' code")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--reuse", action="store_true", help="print the table of the runs already in --out")
    parser.add_argument("--only", choices=SIDES, help="train only this side (again), keep the other's run if any")
    args = parser.parse_intermixed_args()  # overrides may follow the options, as the docstring shows
    if args.reuse and not (args.out / "walls.json").is_file():
        raise SystemExit(f"--reuse: {args.out / 'walls.json'} does not exist; run once without --reuse first")
    walls = run_sides(args, () if args.reuse else (args.only,) if args.only else SIDES)
    if "after" not in walls:  # only the before side was trained: nothing to compare it with yet
        print(f"{args.out} holds only the before side ({args.out / 'before'}); run --only after for the table")
        return
    after_history, after_metrics = load(args.out / "after")
    before = load(args.out / "before") if "before" in walls else None
    print(f"CPU: {cpu_model()}; config {args.config}, {len(after_history)} epochs, --before {args.before}\n")
    print("\n".join(phase_rows(after_metrics["phases"], after_history, before, walls)))
    if before is None:
        return
    if _epochs(before[0]) < _epochs(after_history) - after_metrics["phases"]["data_seconds"]:
        print(
            "\nthe before run's epochs took less time than the after run's without their data wait: the two"
            " runs' compute differed by more than the overhead, so the before run's outside row is not"
            " meaningful; compare the epochs row, or train both sides again on a quieter machine"
        )
    difference = metric_difference(after_history, before[0])
    print(f"\nlargest per-epoch metric difference (losses, mIoU, accuracies): {difference:.2e}")
    print(f"final val mIoU: after {after_metrics['mIoU']:.6f}, before {before[1]['mIoU']:.6f}")


if __name__ == "__main__":
    main()
