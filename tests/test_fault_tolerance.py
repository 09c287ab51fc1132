"""Killed, stopped and diverging runs: what is kept, how a run resumes, and that it ends exactly as
an uninterrupted run would (on the CPU)."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from sceneseg.checkpoint import load_checkpoint
from sceneseg.cli import main
from sceneseg.history import RUN_TIMING_KEYS, without_timing
from tests.test_cli import TINY

# Batches of 4: six iterations per epoch, so a signal sent as training starts lands mid-epoch.
# device=cpu: the runs must match bit for bit, which only the CPU promises (on a GPU, "auto" would
# pick CUDA, whose kernels need not be deterministic).
RUN = [*TINY, "train.batch_size=4", "train.epochs=2", "device=cpu"]


def _train_args(run: Path, *extra: str) -> list[str]:
    # Flags after the overrides: argparse takes no positional argument after an option.
    return ["train", *RUN, f"train.out_dir={run}", *extra, "--no-progress"]


def _start(run: Path, *extra: str) -> subprocess.Popen:
    # Same thread count as this process, which runs the reference and the resumed part: results
    # on the CPU are bit-identical only for equal thread counts.
    env = dict(os.environ, OMP_NUM_THREADS=str(torch.get_num_threads()), PYTHONUNBUFFERED="1")
    return subprocess.Popen(
        [sys.executable, "-m", "sceneseg", *_train_args(run, *extra)],
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _without_time(run: Path) -> list[dict]:
    return [without_timing(r) for r in json.loads((run / "history.json").read_text())]


def _assert_same_run(run: Path, reference: Path) -> None:
    assert _without_time(run) == _without_time(reference)
    for name in ("last.pt", "best.pt"):
        a, b = load_checkpoint(run / name)["model"], load_checkpoint(reference / name)["model"]
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    metrics = [without_timing(json.loads((d / "metrics.json").read_text()), RUN_TIMING_KEYS) for d in (run, reference)]
    assert metrics[0] == metrics[1]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """An uninterrupted run, trained in this process."""
    run = tmp_path_factory.mktemp("reference") / "run"
    assert main(_train_args(run)) == 0
    return run


def test_resume_after_sigkill_between_epochs_is_exact(tmp_path, reference, capsys):
    run = tmp_path / "run"
    # One DataLoader worker here, none in the reference: augmentation and shuffling depend on
    # (seed, epoch, index) only, not on which process loads a frame.
    process = _start(run, "data.num_workers=1")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        # Without a stop signal, last.pt first appears (atomically) at the end of epoch 1.
        if (run / "last.pt").is_file():
            process.kill()
            break
        time.sleep(0.01)
    process.communicate()
    assert process.returncode == -signal.SIGKILL, "the run ended before it could be killed after epoch 1"
    assert load_checkpoint(run / "last.pt")["epoch"] == 1 and not (run / "metrics.json").exists()
    assert main(_train_args(run, "data.num_workers=1", "--resume")) == 0
    assert "resuming" in capsys.readouterr().out
    _assert_same_run(run, reference)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_stop_signal_saves_a_checkpoint_mid_epoch_and_resume_finishes_exactly(tmp_path, reference, signum):
    run = tmp_path / "run"
    process = _start(run)
    for line in process.stdout:  # the handlers are installed before this line is printed
        if line.startswith("training "):
            process.send_signal(signum)
            break
    _, err = process.communicate(timeout=60)
    assert process.returncode == 128 + signum, err
    assert "Traceback" not in err
    checkpoint = load_checkpoint(run / "last.pt")
    part = checkpoint["interrupted"]
    assert checkpoint["epoch"] == 0 and part["epoch"] == 1 and 1 <= part["iteration"] < 6, part
    assert f"stopped after iteration {part['iteration']} of 6 of epoch 1" in err
    assert not (run / "history.json").exists()
    if signum == signal.SIGINT:
        return  # the same path as SIGTERM from here on
    # The message ends with the command that continues the run; run exactly that.
    command = shlex.split(err.strip().splitlines()[-1])
    assert command[:2] == ["sceneseg", "train"] and "--resume" in command
    assert main(command[1:]) == 0
    _assert_same_run(run, reference)


def test_the_stop_handlers_cover_the_epochs_and_not_the_final_evaluation(tmp_path, monkeypatch):
    # The final evaluation cannot resume part-way: a signal there must end the process as usual.
    import sceneseg.training

    before = signal.getsignal(signal.SIGTERM)
    seen = {}
    real_epoch, real_evaluation = sceneseg.training.train_one_epoch, sceneseg.training.evaluate_weights

    def epoch(*args, **kwargs):
        seen.setdefault("epochs", signal.getsignal(signal.SIGTERM))
        return real_epoch(*args, **kwargs)

    def evaluation(*args, **kwargs):
        seen["evaluation"] = signal.getsignal(signal.SIGTERM)
        return real_evaluation(*args, **kwargs)

    monkeypatch.setattr(sceneseg.training, "train_one_epoch", epoch)
    monkeypatch.setattr(sceneseg.training, "evaluate_weights", evaluation)
    assert main(_train_args(tmp_path / "run")) == 0
    assert seen["epochs"] is not before and seen["evaluation"] is before


def test_a_signal_after_the_last_epoch_stops_before_the_final_evaluation(tmp_path, reference, monkeypatch, capsys):
    import sceneseg.training

    real_fit = sceneseg.training._fit

    def fit_then_signal(*args, **kwargs):
        fitted = real_fit(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGTERM)  # after the last epoch's own check, the handlers still on
        return fitted

    monkeypatch.setattr(sceneseg.training, "_fit", fit_then_signal)
    run = tmp_path / "run"
    assert main(_train_args(run)) == 128 + signal.SIGTERM
    assert "training stopped after its last epoch, before the final evaluation" in capsys.readouterr().err
    assert load_checkpoint(run / "last.pt")["epoch"] == 2 and not (run / "metrics.json").exists()
    monkeypatch.undo()
    assert main(_train_args(run, "--resume")) == 0  # just the evaluation
    _assert_same_run(run, reference)


def test_non_finite_loss_stops_with_epoch_and_iteration_and_keeps_the_last_checkpoint(tmp_path, monkeypatch, capsys):
    import sceneseg.training_run

    calls = []
    real_loss = sceneseg.training_run.segmentation_loss

    def loss_turning_nan(*args, **kwargs):
        calls.append(1)
        loss = real_loss(*args, **kwargs)
        return loss * float("nan") if len(calls) == 8 else loss  # epoch 2, iteration 2

    monkeypatch.setattr(sceneseg.training_run, "segmentation_loss", loss_turning_nan)
    run = tmp_path / "run"
    assert main(_train_args(run)) == 2
    err = capsys.readouterr().err
    assert err.startswith("sceneseg: error: loss became nan at epoch 2, iteration 2 of 6") and err.count("\n") == 1
    assert load_checkpoint(run / "last.pt")["epoch"] == 1 and load_checkpoint(run / "best.pt")["epoch"] == 1
    assert [r["epoch"] for r in json.loads((run / "history.json").read_text())] == [1]
    assert not (run / "metrics.json").exists()


def test_resume_refuses_another_config_and_a_finished_run(reference, capsys):
    assert main(_train_args(reference, "train.lr=0.5", "data.blur=false", "--resume")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "data.blur (run: True, now: False); train.lr (run: 0.01, now: 0.5)" in err
    assert main(_train_args(reference, "--resume")) == 2
    assert f"{reference} already finished its 2 epoch(s)" in capsys.readouterr().err
    assert main(_train_args(reference, "train.epochs=1", "--resume")) == 2
    assert "train.epochs = 1, but" in capsys.readouterr().err
    assert main(_train_args(reference / "nothing-here", "--resume")) == 2
    assert "no checkpoint" in capsys.readouterr().err
