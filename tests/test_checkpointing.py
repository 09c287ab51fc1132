"""What a run keeps of its epochs (sceneseg.checkpointing): best.pt without optimizer state, last.pt
every train.checkpoint_every epochs, and a resume from such a run that still ends exactly."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import sceneseg
import sceneseg.checkpointing
import sceneseg.training
from sceneseg.checkpoint import load_checkpoint, save_checkpoint
from sceneseg.checkpointing import Checkpoints
from sceneseg.cli import main
from sceneseg.config import load_config
from sceneseg.errors import WeightsError
from sceneseg.history import RUN_TIMING_KEYS, without_timing
from sceneseg.training import fit, train_and_evaluate
from tests.test_cli import TINY

RUN = [*TINY, "train.epochs=3", "train.checkpoint_every=2"]


class _Crash(Exception):
    pass


def _epoch_of(path: Path) -> int | None:
    return load_checkpoint(path)["epoch"] if path.is_file() else None


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> tuple[Path, list[tuple]]:
    """A 3-epoch run with last.pt every 2 epochs, and its checkpoint writes in order: (file, epoch, full)."""
    run = tmp_path_factory.mktemp("straight") / "run"
    writes = []
    real_save = sceneseg.checkpointing.save_checkpoint

    def save(path, **content):
        writes.append((Path(path).name, content["epoch"], "optimizer" in content))
        real_save(path, **content)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sceneseg.checkpointing, "save_checkpoint", save)
        config = load_config(None, [*RUN, f"train.out_dir={run}"])
        train_and_evaluate(config, run, show_progress=False, log=lambda message: None)
    return run, writes


def test_last_pt_every_checkpoint_every_epochs_and_after_the_last(straight):
    run, writes = straight
    history = json.loads((run / "history.json").read_text())
    best = max(history, key=lambda r: r["val_mIoU"])["epoch"]
    # Nothing after epoch 1; last.pt (the only full file) after epoch 2 and after the last epoch,
    # each after best.pt where the best epoch changed.
    assert [(epoch, full) for name, epoch, full in writes if name == "last.pt"] == [(2, True), (3, True)]
    assert writes[0][0] == "best.pt" and writes[0][1] <= 2 and writes[1] == ("last.pt", 2, True)
    assert [w for w in writes if w[0] == "best.pt"][-1] == ("best.pt", best, False)
    assert _epoch_of(run / "best.pt") == best and _epoch_of(run / "last.pt") == 3
    last = load_checkpoint(run / "last.pt")
    assert {"optimizer", "scheduler"} <= set(last) and [r["epoch"] for r in last["history"]] == [1, 2, 3]


def test_best_pt_has_no_optimizer_state_and_serves_evaluate_and_predict(straight, tmp_path):
    run, _ = straight
    best = load_checkpoint(run / "best.pt")
    assert not {"optimizer", "scheduler", "interrupted"} & set(best)
    assert [r["epoch"] for r in best["history"]][-1] == best["epoch"]
    assert main(["evaluate", str(run / "best.pt"), "--out", str(tmp_path / "eval.json"), "--no-progress"]) == 0
    # The final evaluation scored the weights kept in memory: the same as best.pt's.
    metrics = json.loads((run / "metrics.json").read_text())
    assert json.loads((tmp_path / "eval.json").read_text())["mIoU"] == pytest.approx(metrics["mIoU"])
    model = sceneseg.load_model(run / "best.pt")
    frame = torch.randint(0, 256, (64, 80, 3), dtype=torch.uint8).numpy()
    assert sceneseg.predict(model, frame).shape == (64, 80)


def test_a_run_killed_between_checkpoints_resumes_from_the_last_and_ends_the_same(straight, tmp_path, monkeypatch):
    run, _ = straight
    real_validate = sceneseg.training._validate

    def killed_in_epoch_3(run, epoch, progress):
        if epoch == 3:
            raise _Crash
        return real_validate(run, epoch, progress)

    config = load_config(None, [*RUN, f"train.out_dir={tmp_path}"])
    monkeypatch.setattr(sceneseg.training, "_validate", killed_in_epoch_3)
    with pytest.raises(_Crash):
        fit(config, tmp_path, show_progress=False, log=lambda message: None)
    monkeypatch.undo()
    assert _epoch_of(tmp_path / "last.pt") == 2
    train_and_evaluate(config, tmp_path, resume=load_checkpoint(tmp_path / "last.pt"), show_progress=False)
    histories = [json.loads((d / "history.json").read_text()) for d in (tmp_path, run)]
    assert [without_timing(r) for r in histories[0]] == [without_timing(r) for r in histories[1]]
    metrics = [json.loads((d / "metrics.json").read_text()) for d in (tmp_path, run)]
    assert without_timing(metrics[0], RUN_TIMING_KEYS) == without_timing(metrics[1], RUN_TIMING_KEYS)
    for name in ("last.pt", "best.pt"):
        a, b = (load_checkpoint(d / name) for d in (tmp_path, run))
        assert a["epoch"] == b["epoch"] and all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])


def _fake_run(run_dir: Path) -> SimpleNamespace:
    """The parts of a TrainingRun that Checkpoints reads."""
    net = torch.nn.Linear(2, 2)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    return SimpleNamespace(
        run_dir=run_dir,
        dist=SimpleNamespace(is_main=True),
        config=load_config(None, ["train.epochs=3"]),
        net=net,
        optimizer=optimizer,
        scheduler=torch.optim.lr_scheduler.LambdaLR(optimizer, lambda it: 1.0),
        history=SimpleNamespace(records=[{"epoch": 1, "val_mIoU": 0.5}]),
        val_set=SimpleNamespace(class_names=("a", "b")),
    )


def test_files_hold_the_weights_of_when_they_were_asked_for_and_errors_reach_the_training_thread(tmp_path, monkeypatch):
    run = _fake_run(tmp_path)
    checkpoints = Checkpoints(run)
    before = {k: v.clone() for k, v in run.net.state_dict().items()}
    checkpoints.keep_best(run, 1)
    checkpoints.write(run, 1, kept_as_best=True)
    with torch.no_grad():
        run.net.weight.add_(1.0)  # the next step, while the files are written
    checkpoints.wait()
    for name in ("best.pt", "last.pt"):
        saved = load_checkpoint(tmp_path / name)["model"]
        assert all(torch.equal(saved[k], before[k]) for k in before), name
    # A stop part-way through epoch 2: last.pt gets the weights of now, best.pt is not written again.
    checkpoints.write(run, 1, interrupted={"epoch": 2, "iteration": 1})
    checkpoints.wait()
    assert torch.equal(load_checkpoint(tmp_path / "last.pt")["model"]["weight"], run.net.weight.detach())
    assert torch.equal(load_checkpoint(tmp_path / "best.pt")["model"]["weight"], before["weight"])

    def full_disk(path, **content):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(sceneseg.checkpointing, "save_checkpoint", full_disk)
    checkpoints.write(run, 2)
    with pytest.raises(OSError, match="No space left"):
        checkpoints.wait()
    checkpoints.wait()  # raised once
    assert _epoch_of(tmp_path / "last.pt") == 1  # the previous file stays


def test_best_weights_trained_before_a_resume_come_from_best_pt_of_that_epoch(tmp_path):
    weights = {"w": torch.arange(3.0)}
    save_checkpoint(tmp_path / "best.pt", config={}, model=weights, epoch=2)
    checkpoints = Checkpoints(_fake_run(tmp_path))
    assert torch.equal(checkpoints.best_weights(2)["w"], weights["w"])
    with pytest.raises(WeightsError, match="holds epoch 2, but the best epoch of the run's history is 1"):
        checkpoints.best_weights(1)
    checkpoints.best_epoch, checkpoints.best_state = 1, {"w": torch.zeros(3)}  # trained by this process
    assert torch.equal(checkpoints.best_weights(1)["w"], torch.zeros(3))
