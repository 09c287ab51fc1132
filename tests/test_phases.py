"""Where a run's time goes (sceneseg.phases): the loader's wait, the epoch's phases, the run's table."""

from __future__ import annotations

import time

import pytest

from sceneseg.history import PHASE_KEYS
from sceneseg.phases import RunTimer, TimedLoader, format_phases


class _SlowLoader:
    def __len__(self) -> int:
        return 3

    def __iter__(self):
        for batch in range(3):
            time.sleep(0.02)
            yield batch


def test_the_wait_for_batches_is_counted_and_the_loop_s_own_time_is_not():
    loader = TimedLoader(_SlowLoader())
    started = time.perf_counter()
    for _ in loader:
        time.sleep(0.05)  # the training step: not waiting for data
    elapsed = time.perf_counter() - started
    assert len(loader) == 3 and loader.first_batch >= started + 0.02
    assert 0.06 <= loader.waited <= elapsed - 3 * 0.05  # the loop's own time is left out


def test_epoch_times_carry_a_stopped_epoch_s_part_and_the_run_adds_up():
    timer = RunTimer()
    timer.end_startup()
    timer.start_epoch({"seconds": 10.0, "phases": {"step_seconds": 4.0}})  # resumed part-way
    loader = TimedLoader(_SlowLoader())
    list(loader)
    timer.add_training(loader.waited + 0.5, loader)
    with timer.phase("val_seconds"):
        time.sleep(0.01)
    times = timer.epoch_times()
    assert times["step_seconds"] == pytest.approx(4.5) and times["data_seconds"] == loader.waited
    assert times["seconds"] >= 10.0 and times["val_seconds"] >= 0.01
    assert timer.totals["step_seconds"] == pytest.approx(0.5)  # this process's part only
    summary = timer.summary(final_eval=0.0)
    parts = ("startup_seconds", *PHASE_KEYS, "final_eval_seconds", "other_seconds")
    assert sum(summary[k] for k in parts) == pytest.approx(summary["wall_seconds"])
    assert summary["epochs"] == 1 and summary["first_step_seconds"] is not None
    table = format_phases(summary)
    assert "training step" in table and "waiting for data" in table and "outside the training step" in table


def test_history_records_and_metrics_hold_the_phases(tmp_path, capsys):
    import json

    from sceneseg.cli import main
    from tests.test_cli import TINY

    run = tmp_path / "run"
    assert main(["train", *TINY, "train.epochs=2", f"train.out_dir={run}", "--no-progress"]) == 0
    assert "where the time went" in capsys.readouterr().out
    for record in json.loads((run / "history.json").read_text()):
        assert all(record[k] >= 0 for k in PHASE_KEYS), record
        assert sum(record[k] for k in PHASE_KEYS) <= record["seconds"] + 1e-3, record
    phases = json.loads((run / "metrics.json").read_text())["phases"]
    assert phases["epochs"] == 2 and 0 <= phases["overhead_share"] < 1
    assert phases["step_seconds"] > 0 and phases["wall_seconds"] >= phases["step_seconds"]
