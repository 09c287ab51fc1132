"""Study files and the study runner (sceneseg.study, `sceneseg study`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sceneseg.checkpoint import load_checkpoint
from sceneseg.cli import main
from sceneseg.errors import ConfigError
from sceneseg.study import BUILTIN_STUDIES, DEFAULT_REFERENCE, load_study, row_config, row_state, run_study
from sceneseg.training import train_and_evaluate
from tests.conftest import write_study
from tests.test_cli import TINY


def test_builtin_studies_resolve_every_row():
    names = sorted(p.stem for p in BUILTIN_STUDIES.glob("*.yaml"))
    assert {"camvid_study", "camvid_study_cpu", "camvid_study_cpu_offline"} <= set(names)
    for name in names:
        study = load_study(name)
        for row in study.rows:
            config = row_config(study, row)
            assert config.train.out_dir == str(Path(study.out_dir) / row.name)
            assert "{" not in str(config.train.init_from) + str(config.model.pretrained)


def test_offline_cpu_study_differs_only_by_its_backbone_row():
    online, offline = load_study("camvid_study_cpu"), load_study("camvid_study_cpu_offline")
    assert [r.name for r in offline.rows] == ["kitti_backbone", *(r.name for r in online.rows)]
    for a, b in zip(online.rows, offline.rows[1:]):
        config_a, config_b = row_config(online, a), row_config(offline, b)
        if a.name in ("simple_scratch", "kitti_transfer"):
            assert config_a.model == config_b.model
        else:
            assert (config_a.model.pretrained, config_b.model.pretrained) == (
                "imagenet",
                "runs/camvid_study_cpu_offline/kitti_backbone/best.pt",
            )
        assert config_a.train.epochs == config_b.train.epochs and config_a.data.root == config_b.data.root
    # each row names the original study's row it reproduces; the figures are read from its JSON
    assert {r.name: r.reference_row for r in offline.rows} == {
        "kitti_backbone": None,
        **{r.name: i for i, r in enumerate(online.rows[:6], 1)},
        "kitti_transfer": "kitti_road_transfer",
    }
    assert {r.name: r.reference_row for r in online.rows} == {r.name: r.reference_row for r in offline.rows[1:]}
    assert online.report.reference == offline.report.reference == DEFAULT_REFERENCE


def test_settings_replace_variables_and_out_dir():
    study = load_study("camvid_study_cpu", ["camvid_root=/data/camvid", "out_dir=/tmp/elsewhere"])
    row = study.rows[0]
    config = row_config(study, row, ["train.epochs=1"])
    assert (config.data.root, config.train.out_dir, config.train.epochs) == (
        "/data/camvid",
        "/tmp/elsewhere/simple_scratch",
        1,
    )
    transfer = row_config(study, study.rows[-1])
    assert transfer.train.init_from == "/tmp/elsewhere/pspnet_ppm_aux/best.pt"
    assert load_study("camvid_study_cpu", ["reference=/data/figures.json"]).report.reference == "/data/figures.json"


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda s: s.replace('    label: "1. Simple, from scratch"\n', ""), r"rows\[0\]: missing key\(s\) label"),
        (lambda s: s.replace("name: pspnet", "name: simple"), "row names must be unique"),
        (lambda s: s.replace("pick: worst", "pick: median"), "report.pick = 'median'"),
        (lambda s: s.replace("reference_row: 1", "reference_row: 0"), "row 'simple': reference_row = 0"),
        (lambda s: s.replace("reference_row: 1", "reference_row: [1]"), r"rows\[0\].reference_row"),
        (lambda s: s.replace('reference: "{reference}"', 'reference: "{referenc}"'), "report.reference uses an"),
        (lambda s: s.replace("{backbone}", "{backbon}"), "unknown variable 'backbon'"),
        (lambda s: s.replace("rows:", "rowz:"), "rowz"),
    ],
)
def test_bad_study_files_name_the_problem(tmp_path, edit, message):
    path = write_study(tmp_path, tmp_path / "out", tmp_path / "kitti")
    path.write_text(edit(path.read_text()))
    with pytest.raises(ConfigError, match=message) as error:
        study = load_study(path)
        [row_config(study, row) for row in study.rows]
    assert "small_study.yaml" in str(error.value) or "pspnet" in str(error.value)


def test_unknown_settings_and_studies_are_errors(tmp_path):
    with pytest.raises(
        ConfigError,
        match=r"unknown study setting study.backbon; known: study.out_dir, "
        r"study.backbone, study.camvid_root",
    ):
        load_study("camvid_study_cpu", ["backbon=x"])
    with pytest.raises(ConfigError, match="neither a file nor a built-in study .*camvid_study_cpu"):
        load_study("no_such_study")
    assert main(["study", "camvid_study_cpu", "train.epochz=1", "--no-report"]) == 2


def test_finished_rows_are_skipped(small_study, capsys):
    study_file, out = small_study
    stamps = {row: (out / row / "best.pt").stat().st_mtime_ns for row in ("simple", "pspnet", "kitti")}
    # How data is loaded does not change the experiment: the finished rows still count as done.
    assert main(["study", str(study_file), *TINY, "data.num_workers=1", "--no-report", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert printed.count("already done, skipped") == 3 and "training" not in printed
    assert {row: (out / row / "best.pt").stat().st_mtime_ns for row in stamps} == stamps
    row = json.loads((out / "pspnet" / "row.json").read_text())
    assert (row["label"], row["reference_row"]) == ("2. PSPNet, backbone of row 1", 6)
    # row 2 started from row 1's backbone, row 3 from row 2's whole network
    simple, pspnet = (load_checkpoint(out / r / "best.pt") for r in ("simple", "pspnet"))
    assert pspnet["config"]["model"]["pretrained"] == str(out / "simple" / "best.pt")
    assert load_checkpoint(out / "kitti" / "best.pt")["config"]["train"]["init_from"] == str(out / "pspnet" / "best.pt")
    # A wrong dataset option fails before any row is looked at, naming the row.
    assert main(["study", str(study_file), *TINY, "data.options.resise=[8, 8]", "--no-report"]) == 2
    err = capsys.readouterr().err
    assert "study row 'simple'" in err and "data.options.resise" in err and "already done" not in err
    # a changed experiment is not silently taken for the finished one
    assert main(["study", str(study_file), *TINY, "train.lr=0.5", "--no-report", "--only", "simple"]) == 2
    assert "holds a finished run of another config: train.lr" in capsys.readouterr().err


def test_an_interrupted_row_resumes_and_a_failed_row_does_not_stop_the_others(tmp_path, capsys):
    from sceneseg.stopping import TrainingStopped

    study_file = write_study(tmp_path, tmp_path / "out", tmp_path / "no_kitti_here")
    study = load_study(study_file)
    with pytest.raises(TrainingStopped):
        run_study(
            study,
            TINY,
            lambda config, resume: train_and_evaluate(
                config, Path(config.train.out_dir), resume, show_progress=False, should_stop=lambda: True
            ),
        )
    simple = row_config(study, study.rows[0], TINY)
    assert row_state(simple) == "partial" and "interrupted" in load_checkpoint(tmp_path / "out/simple/last.pt")

    assert main(["study", str(study_file), *TINY, "--no-progress"]) == 2
    captured = capsys.readouterr()
    assert "(resuming)" in captured.out and "resuming" in captured.out
    assert "row kitti failed: dataset root" in captured.err and "no_kitti_here" in captured.err
    assert "1 row(s) failed (kitti)" in captured.err
    assert [r["epoch"] for r in json.loads((tmp_path / "out/simple/history.json").read_text())] == [1, 2]
    assert row_state(simple) == "finished" and (tmp_path / "out/pspnet/metrics.json").is_file()
    # the report still covers the rows that finished
    assert "3. Row 2 on KITTI road" not in (tmp_path / "out/report/README.md").read_text()
    assert "2. PSPNet, backbone of row 1" in (tmp_path / "out/report/README.md").read_text()
