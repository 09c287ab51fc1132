"""A small real study shared by the study-runner and report tests: three short runs on the
built-in CamVid sample and on a generated KITTI-road tree, made once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from sceneseg.cli import main
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
  backbone: "{{out_dir}}/simple/best.pt"
rows:
  - name: simple
    label: "1. Simple, from scratch"
    config: sample
    overrides: [train.epochs=2]
    reference: {{val_mIoU: 0.3192}}
  - name: pspnet
    label: "2. PSPNet, backbone of row 1"
    config: sample
    overrides: [train.epochs=3, {pspnet}, "model.pretrained={{backbone}}"]
    reference: {{train_mIoU: 0.7, val_mIoU: 0.6167}}
  - name: kitti
    label: "3. Row 2 on KITTI road"
    config: kitti_pspnet18_transfer_cpu
    overrides: ["data.root={{kitti_root}}", data.options.split_mode=ratio, data.options.val_ratio=0.34,
                "data.options.resize=[64,64]",
                train.epochs=2, "train.init_from={{out_dir}}/pspnet/best.pt"]
report:
  compare: [simple, pspnet]
  pick: worst
  count: 2
"""


def write_study(folder: Path, out_dir: Path, kitti_root: Path) -> Path:
    path = folder / "small_study.yaml"
    path.write_text(STUDY.format(out_dir=out_dir, kitti_root=kitti_root, pspnet=", ".join(PSPNET18)))
    return path


@pytest.fixture(scope="session")
def small_study(tmp_path_factory) -> tuple[Path, Path]:
    """(study file, its out_dir) after `sceneseg study` ran every row and built the report."""
    folder = tmp_path_factory.mktemp("study")
    write_kitti(folder / "kitti", counts=(6, 6, 6), size=(64, 96))
    study = write_study(folder, folder / "out", folder / "kitti")
    assert main(["study", str(study), *TINY, "--no-progress"]) == 0
    return study, folder / "out"
