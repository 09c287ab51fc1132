"""The Markdown summary of a gpu_check.sh training run, for README: wall time, val mIoU, time per phase.

    python scripts/gpu_summary.py RUN_DIR --wall 58.2 [--exit 0] [--pytest pytest.txt] [--label TEXT]

Reads RUN_DIR/history.json and metrics.json. The per-phase seconds are whatever numeric keys ending in
"_seconds" the records hold (data_seconds, step_seconds, val_seconds, checkpoint_seconds, ...), summed
over the epochs; a run whose history has none shows the epochs and the final evaluation only. A run cut
short (timeout, crash) is summarised from the epochs it finished.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
from pathlib import Path

# Phases named by the phase timing of `sceneseg train`; other *_seconds keys are listed by their key.
PHASE_NAMES = {
    "data_seconds": "waiting for data",
    "step_seconds": "training step",
    "val_seconds": "validation",
    "checkpoint_seconds": "checkpoint writing",
    "startup_seconds": "start-up (data, model; before epoch 1)",
    "eval_seconds": "final evaluation",
    "final_eval_seconds": "final evaluation",
}


def _read_json(path: Path) -> object | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _records(history: object) -> tuple[list[dict], dict[str, float]]:
    """The epochs' records and any run-wide seconds: history.json is a list of records, or an object
    holding that list beside run-wide keys."""
    if isinstance(history, list):
        return [r for r in history if isinstance(r, dict)], {}
    if isinstance(history, dict):
        lists = [v for v in history.values() if isinstance(v, list) and v and isinstance(v[0], dict)]
        return (lists[0] if lists else []), _seconds_keys(history)
    return [], {}


def _seconds_keys(record: dict) -> dict[str, float]:
    return {
        key: float(value)
        for key, value in record.items()
        if key.endswith("_seconds") and isinstance(value, (int, float)) and math.isfinite(value)
    }


def environment() -> str:
    """E.g. "NVIDIA H100 80GB HBM3, torch 2.11.0+cu130 (CUDA 13.0), Python 3.12.3"."""
    try:
        import torch
    except ImportError:
        return f"Python {platform.python_version()}, no torch"
    where = torch.cuda.get_device_name() if torch.cuda.is_available() else "no CUDA GPU"
    return f"{where}, torch {torch.__version__} (CUDA {torch.version.cuda}), Python {platform.python_version()}"


def phase_rows(history: list[dict], metrics: dict, wall: float) -> list[tuple[str, float]]:
    """(phase, seconds) adding up to `wall`: the run's own `phases` (metrics.json) where it has them,
    else the sums of the epochs' records; the rest is what the wall time leaves."""
    phases = metrics.get("phases")
    if isinstance(phases, dict) and isinstance(phases.get("wall_seconds"), (int, float)):
        rows = [(PHASE_NAMES.get(k, k), float(v)) for k, v in _seconds_keys(phases).items() if k in PHASE_NAMES]
        rows.append(("other (inside the run)", float(phases.get("other_seconds", 0.0))))
        # The run's wall starts where training starts; before it: the interpreter and the imports.
        rows.append(("Python start, imports and exit", wall - float(phases["wall_seconds"])))
        return rows
    epochs = sum(float(r.get("seconds", 0.0)) for r in history)
    totals: dict[str, float] = {}
    for record in history:
        for key, value in _seconds_keys(record).items():
            totals[key] = totals.get(key, 0.0) + value
    rows = [(PHASE_NAMES.get(key, key), value) for key, value in totals.items()]
    if totals:
        rows.append(("rest of the epochs", epochs - sum(totals.values())))
    else:  # no phase timing recorded: the epochs as one
        rows.append((f"epochs ({len(history)}, history.json seconds)", epochs))
    outside = {k: v for k, v in _seconds_keys(metrics).items() if k not in totals}
    rows += [(PHASE_NAMES.get(key, key), value) for key, value in outside.items()]
    # Start-up (imports, decoding the frames, building the model) and exit.
    rows.append(("rest of the wall time", wall - epochs - sum(outside.values())))
    return rows


def first_step_line(metrics: dict, wall: float) -> str | None:
    phases = metrics.get("phases")
    if not isinstance(phases, dict) or not isinstance(phases.get("first_step_seconds"), (int, float)):
        return None
    before = wall - float(phases.get("wall_seconds", wall))
    share = phases.get("overhead_share")
    outside = f"; outside the training step and evaluation: {100 * share:.1f} % of the run" if share is not None else ""
    return (
        f"- first training step {phases['first_step_seconds']:.1f} s after training started, "
        f"{phases['first_step_seconds'] + before:.1f} s after the command{outside}"
    )


def _run_row(label: str, hardware: str, history: list[dict], metrics: dict, wall: float) -> str:
    scored = [r for r in history if math.isfinite(r.get("val_mIoU", math.nan))]
    best = max(scored, key=lambda r: r["val_mIoU"], default=None)
    final = metrics.get("mIoU")
    final_text = "-" if final is None else f"{final:.4f}"
    best_text = "-" if best is None else f"{best['epoch']} ({best['val_mIoU']:.4f})"
    return f"| {label} | {hardware} | {len(history)} | {wall:.1f} | {final_text} | {best_text} |"


def summary(run_dir: Path, wall: float, exit_code: int, label: str, pytest_line: str | None) -> str:
    history, run_seconds = _records(_read_json(run_dir / "history.json"))
    metrics = _read_json(run_dir / "metrics.json")
    metrics = {**run_seconds, **(metrics if isinstance(metrics, dict) else {})}
    hardware = metrics.get("hardware") or environment().split(",")[0]
    lines = [f"### GPU check: {hardware}", "", f"{environment()}.", ""]
    if pytest_line:
        lines.append(f"- GPU tests (`pytest tests/gpu`): {pytest_line}")
    finished = exit_code == 0 and "mIoU" in metrics
    state = "finished" if finished else f"did not finish (exit {exit_code})"
    lines.append(f"- {label}: {state}, {len(history)} epochs in {wall:.1f} s")
    lines += [line for line in (first_step_line(metrics, wall), "") if line is not None]
    lines += [
        "| run | hardware | epochs | wall time (s) | val mIoU (final evaluation) | best epoch (its crop mIoU) |",
        "|---|---|---:|---:|---:|---:|",
        _run_row(label, hardware, history, metrics, wall),
        "",
        "| phase | seconds | share of wall time |",
        "|---|---:|---:|",
    ]
    for name, seconds in phase_rows(history, metrics, wall):
        share = f"{100 * seconds / wall:.1f} %" if wall > 0 else "-"
        lines.append(f"| {name} | {seconds:.1f} | {share} |")
    if history and not any(_seconds_keys(r) for r in history):
        lines += ["", "(history.json records no phase seconds: this sceneseg predates the phase timing)"]
    return "\n".join(lines)


def _pytest_line(path: Path | None) -> str | None:
    """The closing line of a pytest run ("7 passed in 41.20s"), from its saved output."""
    if path is None or not path.is_file():
        return None
    lines = [line.strip("= \n") for line in path.read_text().splitlines() if line.strip()]
    outcomes = ("passed", "failed", "skipped", "error")
    return next((line for line in reversed(lines) if " in " in line and any(w in line for w in outcomes)), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--wall", type=float, required=True, help="seconds from the command's start to its exit")
    parser.add_argument("--exit", type=int, default=0, help="the training command's exit status")
    parser.add_argument("--pytest", type=Path, help="saved output of the GPU tests")
    parser.add_argument("--label", default="study row 6, PSPNet-50 (PPM, aux), from scratch")
    args = parser.parse_args()
    print(summary(args.run_dir, args.wall, args.exit, args.label, _pytest_line(args.pytest)))


if __name__ == "__main__":
    main()
