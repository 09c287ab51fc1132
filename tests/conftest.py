"""A small real study shared by the study-runner and report tests: three short runs on the
built-in CamVid sample and on a generated KITTI-road tree, made once per test session, and a small
reference JSON of the published study's shape whose made-up figures the report must show."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sceneseg.cli import main
from sceneseg.data import CAMVID_CLASSES
from tests.data.test_kitti_road import write_kitti
from tests.test_cli import TINY

PSPNET18 = [
    '"model.name=pspnet"',
    '"model.use_ppm=true"',
    '"model.aux_loss=true"',
    '"model.bins=[1,2,3,6]"',
    '"model.output_stride=8"',
    '"model.zoom_factor=8"',
]
STUDY = """
name: small
description: A small study for the tests
out_dir: {out_dir}
variables:
  kitti_root: {kitti_root}
  reference: {reference}
  backbone: "{{out_dir}}/simple/best.pt"
rows:
  - name: simple
    label: "1. Simple, from scratch"
    config: sample
    overrides: [train.epochs=2]
    reference_row: 1
  - name: pspnet
    label: "2. PSPNet, backbone of row 1"
    config: sample
    overrides: [train.epochs=3, {pspnet}, "model.pretrained={{backbone}}"]
    reference_row: 6
  - name: kitti
    label: "3. Row 2 on KITTI road"
    config: kitti_pspnet18_transfer_cpu
    reference_row: kitti_road_transfer
    overrides: ["data.root={{kitti_root}}", data.options.split_mode=ratio, data.options.val_ratio=0.34,
                "data.options.resize=[64,64]",
                train.epochs=2, "train.init_from={{out_dir}}/pspnet/best.pt"]
report:
  compare: [simple, pspnet]
  pick: worst
  count: 2
  reference: "{{reference}}"
  classes: [SignSymbol, Column_Pole]
"""
# The published study's JSON in shape (../shared/reference/cs6476_study.json), with made-up figures:
# every row but 4 published, per-class columns in another class order, curves of rows 5 and 6.
REFERENCE = {
    "about": "Made-up figures for the tests.",
    "camvid": {
        "classes": list(reversed(CAMVID_CLASSES)),
        "rows": [
            {"row": r, "name": f"row {r}", "train_mIoU": r / 10, "val_mIoU": r / 10 + 0.01} for r in (1, 2, 3, 5, 6)
        ],
        "per_class_val_iou": {
            "note": "not a column",
            "SimpleSegmentationNet": [i / 100 for i in range(11)],
            "PSPNet": [i / 50 for i in range(11)],
        },
        "train_loss_per_epoch": {"PSPNet (row 5)": [1.0, 0.5, 0.4, 0.35], "PSPNet with aux loss (row 6)": [1.1, 0.6]},
    },
    "kitti_road_transfer": {
        "classes": ["Road", "Not_Road"],
        "train": {"mIoU": 0.91, "mAcc": 0.92, "allAcc": 0.93},
        "val": {"mIoU": 0.81, "mAcc": 0.82, "allAcc": 0.83},
        "per_class_val": {"Road": {"iou": 0.71, "acc": 0.72}, "Not_Road": {"iou": 0.61, "acc": 0.62}},
        "train_loss_per_epoch": [0.3, 0.2, 0.1],
    },
}


def write_study(folder: Path, out_dir: Path, kitti_root: Path) -> Path:
    """The small study's file in `folder`, and its reference JSON beside it."""
    reference = folder / "reference.json"
    reference.write_text(json.dumps(REFERENCE))
    path = folder / "small_study.yaml"
    path.write_text(
        STUDY.format(out_dir=out_dir, kitti_root=kitti_root, reference=reference, pspnet=", ".join(PSPNET18))
    )
    return path


@pytest.fixture(scope="session")
def small_study(tmp_path_factory) -> tuple[Path, Path]:
    """(study file, its out_dir) after `sceneseg study` ran every row and built the report."""
    folder = tmp_path_factory.mktemp("study")
    write_kitti(folder / "kitti", counts=(6, 6, 6), size=(64, 96))
    study = write_study(folder, folder / "out", folder / "kitti")
    assert main(["study", str(study), *TINY, "--no-progress"]) == 0
    return study, folder / "out"
