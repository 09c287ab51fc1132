"""`sceneseg report` on small real runs: its tables hold the runs' numbers, its pictures exist,
the HTML is self-contained, and headless Chromium renders it."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

from sceneseg.cli import main
from sceneseg.config import config_from_dict
from sceneseg.evaluation import resolve_precision
from sceneseg.report.runs import converged_epoch
from tests.conftest import REFERENCE

ROOT = Path(__file__).resolve().parents[2]
RUNS = ("simple", "pspnet", "kitti")


def _tables(markdown: str) -> list[list[list[str]]]:
    """Every Markdown table as rows of cells (header first, the separator line dropped)."""
    tables, current = [], []
    for line in markdown.splitlines() + [""]:
        if line.startswith("|"):
            if not set(line) <= set("|-: "):
                current.append([c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line)[1:-1]])
        elif current:
            tables.append(current)
            current = []
    return tables


def _table(tables, first_header: str, contains: str) -> list[list[str]]:
    return next(t for t in tables if t[0][0] == first_header and any(contains in h for h in t[0]))


def _load(out: Path, run: str) -> tuple[dict, list[dict], dict]:
    folder = out / run
    return (
        json.loads((folder / "metrics.json").read_text()),
        json.loads((folder / "history.json").read_text()),
        json.loads((folder / "row.json").read_text()),
    )


def test_tables_hold_the_numbers_of_the_runs(small_study):
    _, out = small_study
    markdown = (out / "report" / "README.md").read_text()
    tables = _tables(markdown)
    runs = {name: _load(out, name) for name in RUNS}
    label = {name: row["label"] for name, (_, _, row) in runs.items()}

    camvid = _table(tables, "row", "reference val mIoU")
    for name in ("simple", "pspnet"):
        metrics, history, row = runs[name]
        cells = dict(zip(camvid[0], next(r for r in camvid if r[0] == label[name])))
        best = next(r for r in history if r["epoch"] == metrics["epoch"])
        assert cells["val mIoU"] == f"{metrics['mIoU']:.4f}" and cells["mAcc"] == f"{metrics['mAcc']:.4f}"
        assert cells["allAcc"] == f"{metrics['allAcc']:.4f}" and cells["train mIoU"] == f"{best['train_mIoU']:.4f}"
        # read from the study's reference JSON, for the row the study file names
        published = next(r for r in REFERENCE["camvid"]["rows"] if r["row"] == row["reference_row"])
        for key in ("train_mIoU", "val_mIoU"):
            assert cells[f"reference {key.replace('_', ' ')}"] == f"{published[key]:.4f}"

    protocol = _table(tables, "row", "hardware")
    for name in ("simple", "pspnet"):
        metrics, history, _ = runs[name]
        cells = dict(zip(protocol[0], next(r for r in protocol if r[0] == label[name])))
        minutes = (sum(r["seconds"] for r in history) + metrics["eval_seconds"]) / 60
        assert (cells["epochs"], cells["wall time"]) == (str(len(history)), f"{minutes:.1f} min")
        config = config_from_dict(yaml.safe_load((out / name / "config.yaml").read_text()))
        # the precision the run trained and was scored in, as the one decision resolves it on this machine
        assert metrics["precision"] == resolve_precision(config, torch.device("cpu")).describe()
        assert cells["hardware"] == f"{metrics['hardware']}, {metrics['precision']}"
        assert metrics["hardware"].startswith("CPU: ")
        assert cells["evaluation"] == "whole, short side 64" and cells["crop"] == "64 (short side 64)"
    assert "simple/best.pt" in dict(zip(protocol[0], protocol[2]))["backbone init"]

    per_class = _table(tables, "class", "val pixel share")
    assert per_class[0][2:4] == [f"IoU: {label['simple']}", f"IoU: {label['pspnet']}"]
    confusion = np.asarray(runs["simple"][0]["confusion"], dtype=np.float64)
    share = confusion.sum(1) / confusion.sum()
    for i, cells in enumerate(per_class[1:]):
        assert cells[0] == runs["simple"][0]["classes"][i]["name"] and cells[1] == f"{100 * share[i]:.2f}%"
        assert cells[2:4] == [
            f"{runs[n][0]['classes'][i]['iou']:.4f}" if runs[n][0]["classes"][i]["iou"] is not None else "-"
            for n in ("simple", "pspnet")
        ]

    hardest = [t for t in tables if t[0][:2] == ["rank", "class"]]
    assert len(hardest) == 2
    for table, name in zip(hardest, ("simple", "pspnet")):
        # lowest IoU first; ties keep the dataset's class order
        scored = sorted(
            ((c["iou"], c["name"]) for c in runs[name][0]["classes"] if c["iou"] is not None), key=lambda pair: pair[0]
        )
        assert [r[1] for r in table[1:]] == [n for _, n in scored[:5]]
        assert [r[2] for r in table[1:]] == [f"{iou:.4f}" for iou, _ in scored[:5]]

    convergence = [t for t in tables if t[0][:2] == ["row", "converged epoch"]]
    rows = {r[0]: r for t in convergence for r in t[1:]}
    for name, (metrics, history, _) in runs.items():
        assert rows[label[name]][1] == str(converged_epoch(history)) and rows[label[name]][3] == str(metrics["epoch"])

    kitti = _table(tables, "row", "IoU Road")
    metrics = runs["kitti"][0]
    cells = dict(zip(kitti[0], kitti[1]))
    assert cells["row"] == label["kitti"] and cells["val mIoU"] == f"{metrics['mIoU']:.4f}"
    for c in metrics["classes"]:
        assert (cells[f"IoU {c['name']}"], cells[f"Acc {c['name']}"]) == (f"{c['iou']:.4f}", f"{c['acc']:.4f}")


def test_every_picture_exists_and_the_html_needs_nothing_else(small_study):
    _, out = small_study
    report = out / "report"
    markdown = (report / "README.md").read_text()
    pictures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", markdown)
    # per dataset (2): curves, the study's loss curves beside ours, confusion matrices; per-class
    # bars, object sizes, boundaries, the qualitative grid and the transfer curves
    assert len(pictures) == 11 and len(set(pictures)) == len(pictures)
    for name in pictures:
        image = cv2.imread(str(report / name))
        assert image is not None and min(image.shape[:2]) > 100, name
    assert sorted(p.name for p in report.iterdir()) == sorted(["README.md", "index.html", *pictures])
    assert "transfer_kitti.png" in pictures and "camvid_qualitative.png" in pictures

    page = (report / "index.html").read_text()
    sources = re.findall(r'src="([^"]*)"', page)
    assert len(sources) == len(pictures) and all(s.startswith("data:image/png;base64,") for s in sources)
    assert not re.search(r"(href|src)=\"(https?:|//|[^d#])", page) and "@import" not in page
    assert f"{json.loads((out / 'pspnet' / 'metrics.json').read_text())['mIoU']:.4f}" in page


def test_report_command_and_its_errors(small_study, tmp_path, capsys, monkeypatch):
    _, out = small_study
    monkeypatch.chdir(tmp_path)  # paths in the report are shown relative to where the command runs
    target = tmp_path / "rep"
    args = [
        "report",
        str(out / "simple"),
        str(out / "pspnet"),
        "--out",
        str(target),
        "--frames",
        "0016E5_07987",
        "--compare",
        "pspnet",
        "simple",
        "--reference",
        str(tmp_path / "no_such.json"),
        "--no-progress",
        "--title",
        "Two runs",
    ]
    assert main(args) == 0
    markdown = (target / "README.md").read_text()
    assert markdown.startswith("# Two runs\n") and "KITTI" not in markdown
    # no reference file: a note says so, and the reference columns are left out
    assert "No reference figures: `no_such.json` does not exist" in markdown
    assert f"`{Path('..') / out.relative_to(tmp_path.parent) / 'simple'}`" in markdown and str(out) not in markdown
    assert "reference val mIoU" not in markdown and "study: PSPNet" not in markdown
    assert (
        "| class | val pixel share | IoU: 2. PSPNet, backbone of row 1 | IoU: 1. Simple, from scratch "
        "| difference (second - first) |" in markdown
    )
    assert "Val frames chosen in the study file" in markdown

    before = (target / "README.md").read_text()
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    assert main(["report", str(out / "simple"), str(unfinished), "--out", str(target)]) == 2
    assert f"{unfinished} is not a finished run: it has no metrics.json" in capsys.readouterr().err
    assert main([*args[:-2], "--frames", "no_such_frame"]) == 2
    assert "qualitative frame 'no_such_frame' is not a val frame" in capsys.readouterr().err
    assert main(["report", str(out / "simple"), str(out / "pspnet"), "--out", str(target), "--count", "0"]) == 2
    assert "report count = 0: expected at least 1 frame" in capsys.readouterr().err
    assert (target / "README.md").read_text() == before and sorted(p.name for p in tmp_path.iterdir()) == [
        "rep",
        "unfinished",
    ]


def test_runs_kept_as_records_are_tabled_but_not_compared(small_study, tmp_path, capsys):
    """A run folder without best.pt (docs/ keeps config.yaml, metrics.json, history.json) is read from
    its config.yaml; only a run with weights can be compared, and naming one without is an error."""
    _, out = small_study
    kept = tmp_path / "pspnet_kept"
    kept.mkdir()
    for name in ("config.yaml", "metrics.json", "history.json", "row.json"):
        shutil.copy(out / "pspnet" / name, kept / name)
    target = tmp_path / "rep"
    assert main(["report", str(out / "simple"), str(kept), "--out", str(target), "--no-progress"]) == 0
    markdown = (target / "README.md").read_text()
    results = _table(_tables(markdown), "row", "val mIoU")
    kept_miou = json.loads((kept / "metrics.json").read_text())["mIoU"]
    assert any(r[0] == "2. PSPNet, backbone of row 1" and f"{kept_miou:.4f}" in r for r in results)
    assert "Kept as records without `best.pt` (`pspnet_kept`)" in markdown
    # The per-class sections show the one run that has weights, alone.
    per_class = _table(_tables(markdown), "class", "val pixel share")
    assert per_class[0][:3] == ["class", "val pixel share", "IoU: 1. Simple, from scratch"]
    assert not any("IoU: 2." in h or "difference" in h for h in per_class[0])

    args = ["report", str(out / "simple"), str(kept), "--out", str(tmp_path / "rep2"), "--compare", "simple"]
    assert main([*args, "pspnet_kept", "--no-progress"]) == 2
    assert "--compare pspnet_kept:" in capsys.readouterr().err and not (tmp_path / "rep2").exists()
    (kept / "config.yaml").unlink()
    assert main(["report", str(kept), "--out", str(tmp_path / "rep3")]) == 2
    assert "has neither best.pt nor config.yaml" in capsys.readouterr().err


def test_a_report_of_one_run_has_its_per_class_analysis_and_pictures(small_study, tmp_path, capsys):
    run = small_study[1] / "simple"
    target = tmp_path / "rep"
    assert main(["report", str(run), "--out", str(target), "--count", "2", "--no-progress"]) == 0
    markdown = (target / "README.md").read_text()
    for heading in ("per-class IoU", "hardest classes", "errors by object size", "accuracy near class boundaries"):
        assert f"CamVid: {heading}" in markdown, heading
    metrics = json.loads((run / "metrics.json").read_text())
    per_class = _table(_tables(markdown), "class", "val pixel share")
    assert per_class[0][:3] == ["class", "val pixel share", "IoU: 1. Simple, from scratch"]
    assert not any("IoU: 2." in h or "difference" in h for h in per_class[0])
    assert [row[2] for row in per_class[1:]] == [
        "-" if c["iou"] is None else f"{c['iou']:.4f}" for c in metrics["classes"]
    ]
    assert "the 2 worst by per-image mIoU:" in markdown
    for picture in ("camvid_class_iou.png", "camvid_qualitative.png", "camvid_object_size.png"):
        assert (target / picture).stat().st_size > 1000, picture
    # A frame name that is not a val frame is refused for one run as for two.
    assert main(["report", str(run), "--out", str(tmp_path / "rep2"), "--frames", "nope.png"]) == 2
    assert "qualitative frame 'nope.png' is not a val frame" in capsys.readouterr().err


@pytest.mark.skipif(
    not any(shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome")),
    reason="headless Chromium is not installed (Debian: apt-get install chromium)",
)
def test_headless_chromium_screenshots_the_whole_page(small_study, tmp_path):
    _, out = small_study
    shot = tmp_path / "report.png"
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "screenshot_report.py"),
            str(out / "report" / "index.html"),
            str(shot),
            "--width",
            "1000",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    image = cv2.imread(str(shot))
    assert image.shape[1] == 1000 and image.shape[0] > 3000  # the whole page, not one window
    # the embedded pictures were drawn: many colours, not a blank or broken page
    assert len(np.unique(image.reshape(-1, 3)[::97], axis=0)) > 200
