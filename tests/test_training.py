"""Training's decisions outside the epoch loop: the state of a run folder, a run without a best
epoch, and what `sceneseg train` suggests next."""

from __future__ import annotations

from pathlib import Path

import sceneseg.training
from sceneseg.checkpoint import run_state, save_checkpoint
from sceneseg.cli import main
from sceneseg.cli_train import FULL_CAMVID_CONFIG, next_steps
from sceneseg.config import Config, load_config, to_dict
from sceneseg.metrics import ConfusionMatrix
from tests.test_cli import TINY


def _config(epochs: int) -> Config:
    return load_config(None, [f"train.epochs={epochs}"])


def _last(run: Path, epoch: int, epochs: int, **extra) -> None:
    save_checkpoint(run / "last.pt", config=to_dict(_config(epochs)), model={}, epoch=epoch, **extra)


def test_run_state_new_partial_finished(tmp_path):
    run = tmp_path / "run"
    assert run_state(run, _config(2)) == "new"
    _last(run, 1, 2)
    assert run_state(run, _config(2)) == "partial"
    _last(run, 1, 2, interrupted={"epoch": 2, "iteration": 3})
    assert run_state(run, _config(2)) == "partial"
    _last(run, 2, 2)
    assert run_state(run, _config(2)) == "partial"  # the final evaluation has not written metrics.json yet
    (run / "metrics.json").write_text("{}\n")
    assert run_state(run, _config(2)) == "finished"
    assert run_state(run, _config(3)) == "partial"  # asking for more epochs continues it


def test_a_run_without_a_finite_val_miou_ends_with_a_clear_error(tmp_path, monkeypatch, capsys):
    def no_labelled_pixels(model, loader, precision, num_classes, *args, **kwargs):
        return float("nan"), ConfusionMatrix(num_classes)  # what a val split of only ignored pixels gives

    monkeypatch.setattr(sceneseg.training, "evaluate", no_labelled_pixels)
    run = tmp_path / "run"
    assert main(["train", *TINY, "train.epochs=1", f"train.out_dir={run}", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no epoch of" in err and "had a finite val mIoU" in err
    assert "sceneseg data check" in err and "train.lr" in err


def test_next_steps_name_the_commands_on_the_run_s_own_files(tmp_path):
    run = tmp_path / "run"
    sample = next_steps(load_config(None), run).splitlines()
    assert 2 <= len(sample) <= 4
    assert any(
        line.strip().startswith(f"sceneseg predict {run / 'best.pt'} ")
        and line.endswith(f"--out {run / 'predictions'}")
        for line in sample
    )
    assert f"  sceneseg train {FULL_CAMVID_CONFIG}" in sample and "data.root=" in sample[0]
    other = next_steps(load_config(None, ["data.root=/data/camvid"]), run).splitlines()
    assert 2 <= len(other) <= 4 and FULL_CAMVID_CONFIG not in "\n".join(other)
    assert any(line.strip().startswith(f"sceneseg predict {run / 'best.pt'} ") for line in other)
    assert any(line.strip().startswith(f"sceneseg evaluate {run / 'best.pt'}") for line in other)


def test_the_suggested_full_camvid_config_exists():
    assert load_config(FULL_CAMVID_CONFIG).data.dataset == "camvid"


def test_a_run_resumed_for_more_epochs_is_not_finished_until_its_new_evaluation(tmp_path):
    from sceneseg.checkpoint import checkpoint_to_resume

    run = tmp_path / "run"
    assert main(["train", *TINY, "train.epochs=1", f"train.out_dir={run}", "--no-progress"]) == 0
    assert run_state(run, _config(1)) == "finished"
    # Resumed for a second epoch and stopped before its final evaluation (fit alone): the first
    # run's metrics.json must not make the longer run look finished.
    config = load_config(None, [*TINY, "train.epochs=2", f"train.out_dir={run}"])
    sceneseg.training.fit(config, run, resume=checkpoint_to_resume(config, run), show_progress=False)
    assert not (run / "metrics.json").exists()
    assert run_state(run, _config(2)) == "partial"
