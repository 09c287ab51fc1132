"""Print a Markdown table of finished runs: mIoU and the hardest classes on each split scored.

    python scripts/ablation_table.py RUN_DIR ... [--classes SignSymbol Column_Pole ...]

Each run folder gives its val-role figures (metrics.json, the split it validated on) and every
`eval_<split>.json` that `sceneseg evaluate` wrote beside best.pt; training seconds are the sum of
history.json's per-epoch `seconds`, and the CPU is the one metrics.json names.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HARD = ("SignSymbol", "Column_Pole", "Pedestrian", "Bicyclist", "Fence")


def _scores(run: Path) -> dict[str, dict]:
    """Split name -> metrics summary, for the val role and each separate evaluation."""
    metrics = json.loads((run / "metrics.json").read_text())
    scores = {metrics["split"]: metrics}
    for path in sorted(run.glob("eval_*.json")):
        summary = json.loads(path.read_text())
        scores[summary["split"]] = summary
    return scores


def _row(run: Path, split: str, classes: tuple[str, ...]) -> list[str]:
    history = json.loads((run / "history.json").read_text())
    scores = _scores(run)
    if split not in scores:
        return [run.name, split, "-", *["-"] * len(classes), str(len(history)), "-"]
    summary = scores[split]
    iou = {c["name"]: c["iou"] for c in summary["classes"]}
    minutes = sum(r["seconds"] for r in history) / 60
    return [
        run.name,
        split,
        f"{summary['mIoU']:.4f}",
        *[f"{iou[c]:.3f}" for c in classes],
        str(len(history)),
        f"{minutes:.1f}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--splits", nargs="+", default=["val", "heldout"])
    parser.add_argument("--classes", nargs="+", default=list(HARD))
    args = parser.parse_args()
    classes = tuple(args.classes)
    header = ["run", "split", "mIoU", *classes, "epochs", "train min"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for run in args.runs:
        for split in args.splits:
            print("| " + " | ".join(_row(run, split, classes)) + " |")
    cpus = sorted({json.loads((run / "metrics.json").read_text()).get("hardware", "?") for run in args.runs})
    print(f"\nhardware: {'; '.join(cpus)}")


if __name__ == "__main__":
    main()
