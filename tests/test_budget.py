"""train.minutes: a run sized by a timed probe is the run a fixed train.epochs trains, and keeps its
epochs when resumed."""

from __future__ import annotations

import functools
import itertools
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml

import sceneseg.training
from sceneseg import budget
from sceneseg.checkpoint import (
    SAME_EXPERIMENT_KEYS,
    checkpoint_to_resume,
    config_differences,
    load_checkpoint,
    run_state,
    save_checkpoint,
    sized_config,
)
from sceneseg.cli import main
from sceneseg.config import config_from_dict, load_config, to_dict
from sceneseg.distributed import Distributed
from sceneseg.errors import ConfigError, SceneSegError
from tests.test_cli import TINY


def test_budget_epochs_by_hand():
    # (15 min - 15 s of probe) / 22 s an epoch = 40.2 epochs
    assert budget.budget_epochs(15, 15.0, 22.0, cap=100) == 40
    assert budget.budget_epochs(15, 15.0, 22.0, cap=36) == 36
    assert budget.budget_epochs(1, 10.0, 50.0, cap=100) == 1  # 50 s of the 60 left
    with pytest.raises(ConfigError, match=r"train.minutes = 0.5: one epoch takes about 50 s"):
        budget.budget_epochs(0.5, 1.0, 50.0, cap=100)


def test_the_pace_is_the_mean_step_after_the_warm_ones():
    assert budget.mean_pace([9.0, 7.0, 5.0, 1.0, 2.0, 6.0]) == 3.0  # a slow step counts
    assert budget.mean_pace([9.0, 2.0]) == 2.0  # an epoch of two steps: the second
    assert budget.mean_pace([9.0]) == 9.0
    run = SimpleNamespace(dist=Distributed(), precision=SimpleNamespace(device=torch.device("cpu")))
    assert budget.agreed(run, [0.5, 2.0]) == [0.5, 2.0]  # one process: its own figures


class _TwoRanks:
    """One of two ranks, the other's figures given: all_reduce_sum sums as gloo would."""

    world_size = 2

    def __init__(self, other: list[float]) -> None:
        self.other = other

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor + torch.tensor(self.other, dtype=tensor.dtype)


def test_every_rank_sizes_the_run_from_the_same_figures():
    # Rank 1 reached the probe 3 s after rank 0, so its own probe took 3 s less: alone, the two
    # would give a 15-minute budget of 21.5-s epochs 40 and 41 epochs.
    assert (budget.budget_epochs(15, 20.0, 21.5, 100), budget.budget_epochs(15, 17.0, 21.5, 100)) == (40, 41)
    mine, theirs = [0.9, 2.0, 20.0], [0.9, 2.0, 17.0]  # pace, validation, probe seconds
    cpu = SimpleNamespace(device=torch.device("cpu"))
    figures = [
        budget.agreed(SimpleNamespace(dist=_TwoRanks(other), precision=cpu), own)
        for own, other in [(mine, theirs), (theirs, mine)]
    ]
    assert figures[0] == figures[1] == pytest.approx([0.9, 2.0, 18.5])


def test_minutes_must_be_positive():
    with pytest.raises(ConfigError, match=r"override train.minutes=0: train.minutes = 0.0: expected null or a number"):
        load_config(None, ["train.minutes=0"])
    assert load_config(None, ["train.minutes=1.5"]).train.minutes == 1.5


def _fake_clock(step: float):
    """A clock that moves `step` seconds at every reading: every probed step then takes `step`."""
    ticks = itertools.count()
    return lambda: next(ticks) * step


def _train(run: Path, *overrides: str) -> int:
    return main(["train", *TINY, *overrides, f"train.out_dir={run}", "--no-progress"])


def test_a_budgeted_run_is_the_run_of_its_epochs(tmp_path, monkeypatch, capsys):
    fixed = tmp_path / "fixed"
    assert _train(fixed, "train.epochs=2") == 0
    frames = len(json.loads((fixed / "data_split.json").read_text())["train"])
    iters = frames // 8  # TINY's batch, drop_last
    steps = min(budget.PROBE_STEPS, iters)
    # Every clock reading is 1 s later: each step and the validation pass take 1 s, an epoch
    # iters + 1 s (planned PLAN_MARGIN times that), and the probe (its start, a mark per step and
    # one after, two around the validation, its end) steps + 4 s. 2.5 planned epochs fit after it.
    minutes = (steps + 4 + 2.5 * budget.PLAN_MARGIN * (iters + 1)) / 60
    monkeypatch.setattr(
        sceneseg.training, "size_to_budget", functools.partial(budget.size_to_budget, clock=_fake_clock(1.0))
    )
    sized = tmp_path / "sized"
    assert _train(sized, "train.epochs=50", f"train.minutes={minutes}") == 0
    out = capsys.readouterr().out
    assert (
        f"2 epochs of about {iters + 1:.1f} s ({iters} steps of 1.000 s and a 1.0-s validation)" in out
        and "train.minutes=null train.epochs=2" in out
    )

    record = json.loads((sized / "budget.json").read_text())
    assert record["epochs"] == 2 and record["step_seconds"] == [1.0] * steps and record["val_seconds"] == 1.0
    stored = yaml.safe_load((sized / "config.yaml").read_text())["train"]
    assert stored["epochs"] == 2 and stored["minutes"] == pytest.approx(minutes)
    # The probe's steps left no trace: the same weights, losses and schedule as the fixed run.
    one, two = (json.loads((run / "history.json").read_text()) for run in (fixed, sized))
    assert [(r["train_loss"], r["val_mIoU"], r["lr"]) for r in one] == [
        (r["train_loss"], r["val_mIoU"], r["lr"]) for r in two
    ]
    a, b = (load_checkpoint(run / "last.pt")["model"] for run in (fixed, sized))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_budget_too_small_for_one_epoch_stops_before_writing_anything(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(
        sceneseg.training, "size_to_budget", functools.partial(budget.size_to_budget, clock=_fake_clock(60.0))
    )
    run = tmp_path / "run"
    assert _train(run, "train.minutes=1") == 2
    err = capsys.readouterr().err
    assert "train.minutes = 1: one epoch takes about" in err and "train.minutes=null" in err
    assert not run.exists() or not any(run.iterdir())


def _budgeted_last(run: Path, minutes: float | None, epochs: int, epoch: int) -> None:
    config = load_config(None, [f"train.epochs={epochs}", f"train.minutes={'null' if minutes is None else minutes}"])
    save_checkpoint(run / "last.pt", config=to_dict(config), model={}, epoch=epoch)


def test_a_resumed_budgeted_run_keeps_the_epochs_its_budget_gave(tmp_path):
    run = tmp_path / "run"
    _budgeted_last(run, minutes=15, epochs=3, epoch=3)
    given = load_config(None, ["train.epochs=200", "train.minutes=15", f"train.out_dir={run}"])
    assert sized_config(given, load_checkpoint(run / "last.pt")).train.epochs == 3
    assert run_state(run, given) == "partial"  # no metrics.json yet: only the final evaluation is left
    assert checkpoint_to_resume(given, run)["epoch"] == 3
    (run / "metrics.json").write_text("{}\n")
    assert run_state(run, given) == "finished"
    # Without a budget, train.epochs says how far to go, as for any run.
    longer = load_config(None, ["train.epochs=5", f"train.out_dir={run}"])
    assert run_state(run, longer) == "partial" and sized_config(longer, load_checkpoint(run / "last.pt")) == longer
    with pytest.raises(ConfigError, match=r"train.minutes = 20, but .* begun with train.minutes = 15"):
        checkpoint_to_resume(load_config(None, ["train.minutes=20", f"train.out_dir={run}"]), run)


def test_a_budget_cannot_be_added_to_a_run_begun_without_one(tmp_path):
    run = tmp_path / "run"
    _budgeted_last(run, minutes=None, epochs=3, epoch=2)
    with pytest.raises(ConfigError, match=r"begun with train.minutes = null"):
        checkpoint_to_resume(load_config(None, ["train.minutes=15", f"train.out_dir={run}"]), run)


def test_a_stop_during_the_probe_ends_the_run_before_anything_is_written(tmp_path):
    from sceneseg.stopping import TrainingStopped

    run = tmp_path / "run"
    config = load_config(None, [*TINY, "train.minutes=5", f"train.out_dir={run}"])
    with pytest.raises(TrainingStopped, match="during the train.minutes probe.*nothing was written") as stopped:
        sceneseg.training.fit(config, run, show_progress=False, should_stop=lambda: True)
    assert stopped.value.checkpoint is None
    assert not run.exists() or not any(run.iterdir())


def test_a_finished_budgeted_run_is_trained_longer_by_a_count_of_epochs(tmp_path):
    run = tmp_path / "run"
    _budgeted_last(run, minutes=15, epochs=3, epoch=3)
    (run / "metrics.json").write_text("{}\n")
    given = load_config(None, ["train.epochs=200", "train.minutes=15", f"train.out_dir={run}"])
    with pytest.raises(SceneSegError, match=r"give train.minutes=null train.epochs=<more than 3> to train longer"):
        checkpoint_to_resume(given, run)
    # ... and a study sees the budgeted run and the same count of epochs as one experiment.
    stored = config_from_dict(load_checkpoint(run / "last.pt")["config"])
    same = load_config(None, ["train.epochs=3", f"train.out_dir={run}"])
    assert config_differences(stored, same, SAME_EXPERIMENT_KEYS) == []
