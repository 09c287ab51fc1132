"""sceneseg.load_model: sceneseg and reference PSPNet checkpoints in, eval-mode models out."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

import sceneseg
from sceneseg.checkpoint import save_checkpoint
from sceneseg.config import load_config, to_dict
from sceneseg.errors import WeightsError
from sceneseg.models import PSPNet, build_model, pspnet, to_reference

PSP_OPTIONS = [
    "model.name=pspnet",
    "model.backbone=resnet18",
    "model.deep_stem=true",
    "model.num_classes=5",
    "model.bins=[1, 2, 4, 8]",
    "model.zoom_factor=4",
]


def save_sceneseg(path: Path, overrides: list[str]) -> torch.nn.Module:
    """Train nothing, but save a checkpoint as `sceneseg train` does; return its model."""
    config = load_config(None, overrides)
    torch.manual_seed(0)
    model = build_model(config.model)
    # The file names a backbone file that does not exist: load_model must not try to read it.
    tree = to_dict(load_config(None, [*overrides, "model.pretrained=/nowhere/resnet18.pth"]))
    save_checkpoint(path, config=tree, model=model.state_dict(), epoch=1)
    return model.eval()


@pytest.mark.parametrize("overrides", [[], PSP_OPTIONS], ids=["simple", "pspnet"])
def test_sceneseg_checkpoint(overrides: list[str], tmp_path: Path) -> None:
    source = save_sceneseg(tmp_path / "best.pt", overrides)
    model = sceneseg.load_model(tmp_path / "best.pt", device=torch.device("cpu"))
    assert not model.training and type(model) is type(source)
    x = torch.randn(1, 3, 45, 61)
    with torch.no_grad():
        out = model(x)
    assert list(out) == ["out"] and out["out"].shape[-2:] == (45, 61)
    if isinstance(source, PSPNet):
        # Trained at zoom 4; the weights are the same and load_model answers at full size.
        assert source.zoom_factor == 4 and model.zoom_factor == 8 and model.ppm.bins == (1, 2, 4, 8)
        source.zoom_factor = 8
    with torch.no_grad():
        assert torch.equal(out["out"], source(x)["out"])
    with pytest.raises(WeightsError, match="best.pt.*num_classes=3"):
        sceneseg.load_model(str(tmp_path / "best.pt"), num_classes=3)


def test_reference_checkpoint(tmp_path: Path) -> None:
    torch.manual_seed(0)
    source = pspnet(5, "resnet18", use_ppm=False).eval()
    state = {f"module.{k}": v for k, v in to_reference(source.state_dict()).items()}
    torch.save({"epoch": 3, "state_dict": state}, tmp_path / "ref.pth")
    model = sceneseg.load_model(tmp_path / "ref.pth", num_classes=5)
    assert not model.training and model.ppm is None and model.aux is not None
    x = torch.randn(2, 3, 33, 47)
    with torch.no_grad():
        out = model(x)["out"]
        assert out.shape == (2, 5, 33, 47) and torch.equal(out, source(x)["out"])
    with pytest.raises(WeightsError, match=r"ref.pth has 5 classes \(cls.4.weight\)"):
        sceneseg.load_model(tmp_path / "ref.pth", num_classes=19)
    # A key gone or a shape changed: the strict check names them.
    del state["module.layer2.1.bn1.weight"]
    state["module.cls.0.weight"] = torch.zeros(128, 511, 3, 3)
    torch.save({"state_dict": state}, tmp_path / "broken.pth")
    with pytest.raises(WeightsError) as info:
        sceneseg.load_model(tmp_path / "broken.pth")
    message = str(info.value)
    assert "broken.pth" in message and "missing: backbone.layer2.1.bn1.weight" in message
    assert "cls.0.weight (file (128, 511, 3, 3), model (128, 512, 3, 3))" in message


def test_files_that_are_not_models(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"definitely not a checkpoint")
    foreign = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7), "fc.bias": torch.zeros(1000)}, foreign)
    incomplete = tmp_path / "last.pt"
    save_checkpoint(incomplete, model={}, epoch=1)
    for path, words in [
        (junk, "junk.pt"),
        (tmp_path / "none.pt", "does not exist"),
        (foreign, "neither a sceneseg checkpoint"),
        (incomplete, "'config'"),
    ]:
        with pytest.raises(WeightsError) as info:
            sceneseg.load_model(path)
        assert str(path) in str(info.value) and words in str(info.value), str(info.value)
    assert "hszhao/semseg" in str(pytest.raises(WeightsError, sceneseg.load_model, foreign).value)


def test_import_stays_light() -> None:
    code = "import sys, sceneseg; assert 'torch' not in sys.modules; print(sceneseg.__all__)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0 and "load_model" in result.stdout, result.stderr
    assert callable(sceneseg.load_model)
