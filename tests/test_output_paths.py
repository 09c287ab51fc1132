"""Output paths that cannot be written: one-line errors raised before any work, nothing left behind."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import torch

from sceneseg.checkpoint import check_output_file, check_output_folder, save_checkpoint, write_text_atomic
from sceneseg.cli import main
from sceneseg.cli_train import next_steps
from sceneseg.config import load_config
from sceneseg.errors import OutputError
from tests.test_cli import TINY


def test_output_checks_name_the_path_and_what_was_expected(tmp_path):
    folder, blocker = tmp_path / "folder", tmp_path / "file.txt"
    folder.mkdir()
    blocker.write_text("x")
    with pytest.raises(OutputError, match=r"^--out .*folder is a folder; expected the path of a file to write$"):
        check_output_file(folder, "--out")
    with pytest.raises(OutputError, match=r"file.txt is a file, so nothing can be created under it"):
        check_output_file(blocker / "deeper" / "model.onnx", "--out")
    with pytest.raises(OutputError, match=r"^train.out_dir .*file.txt is a file; expected a folder"):
        check_output_folder(blocker, "train.out_dir")
    check_output_file(tmp_path / "new" / "deeper" / "model.onnx", "--out")  # can be created: no error
    check_output_folder(folder, "--out")


def test_a_text_file_that_cannot_be_written_is_an_output_error_and_leaves_no_temporary_file(tmp_path):
    (tmp_path / "runs").mkdir()
    with pytest.raises(OutputError, match=r"cannot write .*runs \(.*\); expected a writable file path"):
        write_text_atomic(tmp_path / "runs", "{}")
    assert os.listdir(tmp_path) == ["runs"]


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600)])
def test_checkpoints_get_the_mode_the_umask_gives_other_files(umask, mode, tmp_path):
    old = os.umask(umask)
    try:
        save_checkpoint(tmp_path / "best.pt", config={}, model={"w": torch.ones(1)}, epoch=1)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "best.pt").stat().st_mode) == mode
    assert os.listdir(tmp_path) == ["best.pt"]


def test_the_current_folder_is_a_valid_output_folder_and_a_file_in_the_way_is_an_output_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    check_output_folder(".", "train.out_dir")  # no parents to walk: "." itself is the folder
    check_output_file("eval.json", "--out")
    (tmp_path / "blocker").write_text("x")
    with pytest.raises(OutputError, match=r"cannot write blocker/x.json \(.*\); expected a writable file path"):
        write_text_atomic(Path("blocker") / "x.json", "{}")
    assert os.listdir(tmp_path) == ["blocker"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_a_folder_without_write_permission_is_named(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    try:
        with pytest.raises(OutputError, match=r"--out .*locked/run: no permission to write in .*locked$"):
            check_output_folder(locked / "run", "--out")
    finally:
        locked.chmod(0o700)


def test_bad_out_paths_stop_evaluate_export_report_and_train_before_any_work(small_study, tmp_path, capsys):
    run = small_study[1] / "simple"
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    cases = [
        (["evaluate", str(run / "best.pt"), "--out", str(tmp_path)], "is a folder; expected the path of a file"),
        (["evaluate", str(run / "best.pt"), "--out", str(blocker / "m.json")], "is a file, so nothing can be"),
        (["export", str(run / "best.pt"), "--out", str(tmp_path)], "is a folder; expected the path of a file"),
        (["report", str(run), "--out", str(blocker)], "is a file; expected a folder"),
        (["train", *TINY, f"train.out_dir={blocker}", "--no-progress"], f"train.out_dir {blocker} is a file"),
    ]
    for args, message in cases:
        assert main(args) == 2, args
        out, err = capsys.readouterr()
        assert message in err and "Traceback" not in err, (args, err)
        assert out == "", args  # nothing evaluated, exported, built or trained first
    assert os.listdir(tmp_path) == ["file.txt"]


def test_report_says_whether_a_run_folder_is_missing_a_file_or_a_folder_of_runs(small_study, tmp_path, capsys):
    runs = small_study[1]
    cases = [
        (tmp_path / "nope", f"run folder {tmp_path / 'nope'} does not exist"),
        (runs / "simple" / "best.pt", "best.pt is a file; expected a run folder"),
        (runs, f"{runs} is not a run folder but holds run folders: {runs / 'kitti'}, "),
    ]
    for path, message in cases:
        assert main(["report", str(path), "--out", str(tmp_path / "report")]) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "report").exists()


def test_a_report_never_replaces_a_folder_that_is_not_a_report(small_study, tmp_path, capsys):
    run = small_study[1] / "simple"
    before = sorted(p.name for p in run.iterdir())
    assert main(["report", str(run), "--out", str(run), "--no-progress"]) == 2
    assert f"report folder {run} holds other files and no index.html of an earlier report" in capsys.readouterr().err
    assert sorted(p.name for p in run.iterdir()) == before


def test_the_next_steps_after_the_sample_name_its_val_folder_only_where_there_is_one(tmp_path):
    assert "data/sample/val --out" in next_steps(load_config(None), tmp_path)
    held_out = next_steps(load_config(None, ["data.val_split=heldout"]), tmp_path)
    assert "<images or folders>" in held_out and "heldout" not in held_out.split("\n")[1]
