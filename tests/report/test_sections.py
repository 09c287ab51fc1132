"""The report's analysis and reference sections on the small real study (tests/conftest.py): the
study's published figures from its JSON beside ours, per-class differences of the compared pair,
errors by object size and near boundaries; and a reference file that is missing parts or broken."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from sceneseg.cli import main
from sceneseg.data import CAMVID_CLASSES
from sceneseg.report.analysis import BOUNDARY_WIDTHS, size_bin_names
from sceneseg.report.reference import load_published
from sceneseg.study import DEFAULT_REFERENCE
from tests.conftest import REFERENCE
from tests.report.test_report import _table, _tables

FRAME = "0016E5_07987"


@pytest.fixture(scope="module")
def report(small_study) -> tuple[list, dict, str]:
    """(tables of the study's report, each run's metrics by name, the report's HTML)."""
    _, out = small_study
    metrics = {name: json.loads((out / name / "metrics.json").read_text()) for name in ("simple", "pspnet", "kitti")}
    return _tables((out / "report" / "README.md").read_text()), metrics, (out / "report" / "index.html").read_text()


def test_per_class_table_has_the_difference_and_the_studys_columns(report):
    tables, metrics, html = report
    assert "the file says: not a column" in html  # the JSON's own note on its per-class columns
    per_class = _table(tables, "class", "val pixel share")
    assert per_class[0][4:] == ["difference (second - first)", "study: SimpleSegmentationNet", "study: PSPNet"]
    published = REFERENCE["camvid"]
    for i, cells in enumerate(per_class[1:]):
        first, second = (metrics[name]["classes"][i]["iou"] for name in ("simple", "pspnet"))
        assert cells[4] == f"{second - first:+.4f}"
        # the JSON lists its classes in another order: matched by name, not position
        at = published["classes"].index(cells[0])
        assert cells[5:] == [
            f"{published['per_class_val_iou'][m][at]:.4f}" for m in ("SimpleSegmentationNet", "PSPNet")
        ]


def test_kitti_table_and_reference_columns_come_from_the_json(report):
    tables, _, _ = report
    kitti = dict(zip(*_table(tables, "row", "IoU Road")[:2]))
    assert (kitti["reference train mIoU"], kitti["reference val mIoU"]) == ("0.9100", "0.8100")
    published = _table(tables, "original study", "mAcc")
    assert published[0] == [
        "original study",
        "mIoU",
        "mAcc",
        "allAcc",
        "IoU Road",
        "IoU Not_Road",
        "Acc Road",
        "Acc Not_Road",
    ]
    assert published[1] == ["train", "0.9100", "0.9200", "0.9300", "-", "-", "-", "-"]
    assert published[2] == ["val", "0.8100", "0.8200", "0.8300", "0.7100", "0.6100", "0.7200", "0.6200"]


def test_chosen_classes_table_has_every_camvid_row(report, small_study, tmp_path, capsys):
    tables, metrics, _ = report
    chosen = _table(tables, "row", "IoU Column_Pole")
    assert chosen[0] == ["row", "val mIoU", "vs first row", "IoU SignSymbol", "IoU Column_Pole", "epochs"]
    first, second = metrics["simple"], metrics["pspnet"]
    iou = {c["name"]: c["iou"] for c in second["classes"]}
    assert chosen[1][1:3] == [f"{first['mIoU']:.4f}", "-"]
    assert chosen[2][1:] == [
        f"{second['mIoU']:.4f}",
        f"{second['mIoU'] - first['mIoU']:+.4f}",
        f"{iou['SignSymbol']:.3f}",
        f"{iou['Column_Pole']:.3f}",
        "3",  # the PSPNet row trains for 3 epochs
    ]
    assert len(chosen) == 3  # the KITTI row has other classes: not in this table

    # A class no dataset of the runs has is an error that names it, before anything is written.
    _, out = small_study
    runs = [str(out / name) for name in ("simple", "pspnet")]
    command = ["report", *runs, "--out", str(tmp_path / "typo"), "--classes", "Pole", "Car", "--no-progress"]
    assert main(command) == 2
    assert "classes Pole are not all in one dataset" in capsys.readouterr().err
    assert not (tmp_path / "typo").exists()


def test_object_size_table(report):
    tables, _, html = report
    sizes = _table(tables, "class", "object area (px)")
    assert sizes[0][3:] == [
        f"{m}: {r}" for m in ("recall", "IoU") for r in ("1. Simple, from scratch", "2. PSPNet, backbone of row 1")
    ]
    rows = sizes[1:]
    assert {r[0] for r in rows} <= {"all classes", *CAMVID_CLASSES} and {r[1] for r in rows} <= set(size_bin_names())
    # the pooled rows count every object of every class, bin by bin
    for bin_name in size_bin_names():
        pooled = [int(r[2]) for r in rows if r[:2] == ["all classes", bin_name]]
        per_class = sum(int(r[2]) for r in rows if r[1] == bin_name and r[0] != "all classes")
        assert pooled == ([per_class] if per_class else [])
    assert all(c == "-" or 0 <= float(c) <= 1 for r in rows for c in r[3:])
    assert "errors by object size" in html and "accuracy near class boundaries" in html


def test_boundary_table_splits_the_same_pixels_at_every_width(report):
    tables, _, _ = report
    bands = _table(tables, "band width d", "val pixels in the band")
    assert [r[0] for r in bands[1:]] == [f"{d} px" for d in BOUNDARY_WIDTHS]
    shares = [float(r[1].rstrip("%")) / 100 for r in bands[1:]]
    assert shares == sorted(shares) and 0 < shares[0] < shares[-1] < 1
    for run in range(2):
        # band and interior partition the labelled pixels: the overall accuracy is the same for every d
        overall = [s * float(r[2 + 2 * run]) + (1 - s) * float(r[3 + 2 * run]) for s, r in zip(shares, bands[1:])]
        assert max(overall) - min(overall) < 2e-3


def test_broken_or_partial_reference_files_never_stop_the_report(small_study, tmp_path):
    _, out = small_study
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    target = tmp_path / "rep"
    runs = [str(out / "simple"), str(out / "pspnet")]
    assert (
        main(["report", *runs, "--out", str(target), "--reference", str(broken), "--frames", FRAME, "--no-progress"])
        == 0
    )
    markdown = (target / "README.md").read_text()
    assert f"No reference figures: `{os.path.relpath(broken)}` could not be read" in markdown
    assert "reference val mIoU" not in markdown

    # Parts missing or of the wrong type show as '-' or are left out.
    partial = {"camvid": {"classes": list(CAMVID_CLASSES), "rows": "oops", "per_class_val_iou": {"PSPNet": [0.5]}}}
    (tmp_path / "partial.json").write_text(json.dumps(partial))
    note_end = (
        "so the reference columns are left out; give the file with `--reference PATH` (`sceneseg report`) "
        "or `study.reference=PATH` (`sceneseg study`)."
    )
    published, note = load_published(tmp_path / "partial.json")
    assert note.startswith("Reference figures read from") and published.mious(6) == {
        "train_mIoU": None,
        "val_mIoU": None,
    }
    assert published.per_class_iou(list(CAMVID_CLASSES)) == [] and published.loss_curves(list(CAMVID_CLASSES)) == []
    assert published.splits(["Road", "Not_Road"]) == [] and published.mious("kitti_road_transfer")["val_mIoU"] is None
    shown = os.path.relpath(tmp_path)  # reports show paths relative to where the command runs
    assert load_published(tmp_path) == (None, f"No reference figures: `{shown}` is not a file, " + note_end)
    (tmp_path / "list.json").write_text("[1, 2]")
    assert "is not a JSON object" in load_published(tmp_path / "list.json")[1]


def test_the_reference_option_names_its_default(capsys):
    assert main(["report", "--help"]) == 0
    assert f"default: {DEFAULT_REFERENCE}" in " ".join(capsys.readouterr().out.split())


COMMITTED = Path(__file__).resolve().parents[2] / "docs" / "study_cpu_offline"


def _sections(report: Path) -> tuple[set[str], set[str]]:
    """(headings, figure files) of a report folder, run names taken out: `### Transfer: <row> to <row>`
    becomes `### Transfer`, `transfer_<run>.png` becomes `transfer_*.png`."""
    markdown = (report / "README.md").read_text()
    headings = {re.sub(r"^(#+ Transfer):.*", r"\1", line) for line in markdown.splitlines() if line.startswith("##")}
    linked = re.findall(r"\]\(([\w.-]+\.png)\)", markdown)
    assert sorted(linked) == sorted(p.name for p in report.glob("*.png")), f"{report}: links and files differ"
    return headings, {re.sub(r"^transfer_.*", "transfer_*.png", name) for name in linked}


def test_the_committed_study_report_has_every_section_the_code_writes(small_study):
    # The committed CPU study report once went two weeks without the sections added since it was
    # made; a study with the same kinds of rows (CamVid rows, a KITTI row, a transfer) must not
    # produce a heading or a figure that the committed one lacks. Regenerate it when this fails:
    # `sceneseg study camvid_study_cpu_offline`, then copy its report folder to docs/study_cpu_offline.
    _, out = small_study
    headings, figures = _sections(out / "report")
    committed_headings, committed_figures = _sections(COMMITTED)
    assert headings - committed_headings == set()
    assert figures - committed_figures == set()
    assert {"### CamVid: errors by object size", "### CamVid: accuracy near class boundaries"} <= headings
