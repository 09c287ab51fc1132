"""The GPU runbook's parts that a CPU can check: the packing step, the summary, the GPU tests' skips,
and that the tests which promise bit-exact results pin the CPU (on a GPU, device "auto" picks CUDA)."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import shutil
import subprocess
import zipfile
from pathlib import Path
from types import ModuleType

import cv2
import numpy as np
import pytest

from sceneseg.cli import main

ROOT = Path(__file__).resolve().parents[1]
# Markers of a test that compares two training runs record for record or weight for weight.
RUN_EQUALITY = ("without_time", "DEBUG_DIGESTS")


def _script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tests_that_compare_runs_exactly_pin_the_cpu():
    from tests.test_cli import test_resume_gives_the_same_result_as_an_uninterrupted_run as resume_test
    from tests.test_distributed import RUN as distributed_run
    from tests.test_fault_tolerance import RUN as fault_tolerance_run

    assert "device=cpu" in distributed_run and "device=cpu" in fault_tolerance_run
    assert '"device=cpu"' in inspect.getsource(resume_test)
    # A new test file comparing runs must pin the device as well.
    comparing = [p for p in ROOT.glob("tests/**/*.py") if any(m in p.read_text() for m in RUN_EQUALITY)]
    assert comparing and all('"device=cpu"' in p.read_text() for p in comparing), comparing


def test_every_gpu_test_module_skips_without_cuda_and_says_why():
    modules = sorted((ROOT / "tests" / "gpu").glob("test_*.py"))
    assert len(modules) >= 3
    for path in modules:
        module = importlib.import_module(f"tests.gpu.{path.stem}")
        mark = module.pytestmark
        assert mark.name == "skipif" and "needs a CUDA GPU" in mark.kwargs["reason"], path.name


def _history(with_phases: bool) -> tuple[list[dict], dict]:
    phases = {"data_seconds": 1.0, "step_seconds": 20.0, "val_seconds": 3.0, "checkpoint_seconds": 1.0}
    records = [
        {"epoch": e, "val_mIoU": 0.3 + e / 100, "seconds": 25.0, **(phases if with_phases else {})} for e in (1, 2)
    ]
    metrics = {"mIoU": 0.41, "eval_seconds": 4.0, "hardware": "NVIDIA H100 80GB HBM3"}
    if with_phases:
        metrics["phases"] = {
            "epochs": 2,
            "startup_seconds": 2.0,
            **{k: 2 * v for k, v in phases.items()},
            "final_eval_seconds": 4.0,
            "other_seconds": 0.5,
            "wall_seconds": 56.5,
            "first_step_seconds": 2.5,
            "overhead_share": 0.1,
        }
    return records, metrics


@pytest.mark.parametrize("with_phases", [True, False])
def test_summary_accounts_for_the_whole_wall_time(tmp_path, with_phases):
    summary = _script("gpu_summary")
    records, metrics = _history(with_phases)
    (tmp_path / "history.json").write_text(json.dumps(records))
    (tmp_path / "metrics.json").write_text(json.dumps(metrics))
    rows = summary.phase_rows(records, metrics, wall=60.0)
    assert sum(seconds for _, seconds in rows) == pytest.approx(60.0)
    text = summary.summary(tmp_path, 60.0, 0, "row 6", "7 passed in 40.0s")
    assert "NVIDIA H100 80GB HBM3" in text and "| 0.4100 |" in text and "2 (0.3200)" in text
    assert ("| training step |" in text) == ("first training step" in text) == with_phases
    assert ("predates the phase timing" in text) != with_phases


def test_summary_of_a_run_without_files_says_it_did_not_finish(tmp_path):
    text = _script("gpu_summary").summary(tmp_path, 12.0, 124, "row 6", None)
    assert "did not finish (exit 124)" in text and "| row 6 |" in text


def _segnet_tree(root: Path) -> None:
    rng = np.random.default_rng(0)
    for split, count in (("train", 2), ("val", 1)):
        for folder in (split, f"{split}annot"):
            (root / folder).mkdir(parents=True)
        for i in range(count):
            cv2.imwrite(str(root / split / f"f{i}.png"), rng.integers(0, 256, (24, 32, 3), dtype=np.uint8))
            cv2.imwrite(str(root / f"{split}annot" / f"f{i}.png"), rng.integers(0, 12, (24, 32), dtype=np.uint8))


def test_pack_writes_jpeg_frames_and_the_same_labels_that_the_readers_take(tmp_path, capsys):
    _segnet_tree(tmp_path / "png")
    pack = _script("pack_for_gpu")
    assert pack.pack_camvid(tmp_path / "png", tmp_path / "jpg", quality=95) == 3
    assert sorted(p.name for p in (tmp_path / "jpg" / "train").iterdir()) == ["f0.jpg", "f1.jpg"]
    label = "valannot/f0.png"
    assert (tmp_path / "jpg" / label).read_bytes() == (tmp_path / "png" / label).read_bytes()
    assert main(["data", "check", str(tmp_path / "jpg")]) == 0
    assert "pairs: 2" in capsys.readouterr().out


def _wheel(folder: Path, name: str, version: str, requires: tuple[str, ...] = ()) -> None:
    lines = [f"Name: {name}", f"Version: {version}", *(f"Requires-Dist: {r}" for r in requires)]
    with zipfile.ZipFile(folder / f"{name}-{version}-py3-none-any.whl", "w") as archive:
        archive.writestr(f"{name}-{version}.dist-info/METADATA", "\n".join(lines) + "\n")


def test_closure_check_names_what_neither_a_wheel_nor_the_gpu_machine_has(tmp_path):
    pack = _script("pack_for_gpu")
    old_python_only = 'eval-type-backport; python_version < "3.10"'  # not needed on 3.12: not reported
    _wheel(tmp_path, "albumentations", "2.0.8", ("numpy>=1.24", "pydantic>=2.9", old_python_only))
    assert pack.check_closure(tmp_path) == ["albumentations-2.0.8-py3-none-any.whl needs pydantic>=2.9, found nothing"]
    _wheel(tmp_path, "pydantic", "2.8.0")
    assert pack.check_closure(tmp_path) == ["albumentations-2.0.8-py3-none-any.whl needs pydantic>=2.9, found 2.8.0"]
    (tmp_path / "pydantic-2.8.0-py3-none-any.whl").unlink()
    _wheel(tmp_path, "pydantic", "2.14.4")
    assert pack.check_closure(tmp_path) == []
    # Against an interpreter's real versions (--verify, there), the machine's packages count only if new enough.
    assert pack.check_closure(tmp_path, {"numpy": "1.23.0"})[0].endswith("needs numpy>=1.24, found 1.23.0")


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_gpu_check_script_parses():
    done = subprocess.run(["bash", "-n", str(ROOT / "scripts" / "gpu_check.sh")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
