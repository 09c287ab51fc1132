"""ONNX export: one file serves every batch and frame size, for SimpleSegmentationNet, PSPNet and DeepLabV3+."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import sceneseg
from sceneseg.cli import main
from sceneseg.data import CAMVID_CLASSES
from sceneseg.errors import DataError, WeightsError
from sceneseg.inference import InferenceSettings
from sceneseg.models.heads import PyramidPoolingModule, adaptive_avg_pool2d_sliced
from tests.test_predict import write_checkpoint

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")
from sceneseg.export import load_onnx  # noqa: E402  (needs onnxruntime)

FAMILIES = {
    "simple": [],
    "pspnet": [
        "model.name=pspnet",
        "model.backbone=resnet18",
        "model.num_classes=5",
        "model.bins=[1, 2, 3, 6]",
        "eval.mode=slide",
        "eval.flip=true",
    ],
    # Output stride 8: atrous rates 12/24/36 reach past the traced 12x16 layer4 map, and the graph must
    # still follow every frame size. A narrow ASPP keeps the test quick (stride 16: tests/models).
    "deeplabv3plus": [
        "model.name=deeplabv3plus",
        "model.num_classes=5",
        "model.output_stride=8",
        "model.aspp_channels=32",
    ],
    # The stride-2 stage on the stem (decoder_stride 2), at output stride 16.
    "deeplabv3plus_fine": [
        "model.name=deeplabv3plus",
        "model.num_classes=5",
        "model.decoder_stride=2",
        "model.aspp_channels=32",
    ],
}


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    """(checkpoint, ONNX file) per model family, exported once through the CLI."""
    folder = tmp_path_factory.mktemp("export")
    files = {}
    for family, overrides in FAMILIES.items():
        checkpoint = write_checkpoint(folder / f"{family}.pt", overrides)
        assert main(["export", str(checkpoint), "--out", str(folder / f"{family}.onnx")]) == 0
        files[family] = (checkpoint, folder / f"{family}.onnx")
    return files


@pytest.mark.parametrize("family", FAMILIES)
def test_one_file_matches_pytorch_at_every_batch_and_size(family: str, exported: dict) -> None:
    checkpoint, onnx_file = exported[family]
    model, runner = sceneseg.load_model(checkpoint), load_onnx(onnx_file)
    torch.manual_seed(0)
    for batch in (1, 3):
        for size in ((64, 96), (75, 51)):
            image = torch.randn(batch, 3, *size)
            with torch.no_grad():
                expected = model(image)["out"]
            got = runner(image)["out"]
            assert got.shape == expected.shape == (batch, model.num_classes, *size)
            spread = float(expected.max() - expected.min())
            assert float((got - expected).abs().max()) < 1e-3 * spread, (batch, size)


def test_metadata_travels_and_predict_takes_onnx(exported: dict, tmp_path: Path) -> None:
    runner = load_onnx(exported["simple"][1])
    assert runner.class_names == CAMVID_CLASSES and runner.num_classes == 11
    psp = load_onnx(exported["pspnet"][1])
    assert psp.class_names == tuple(f"class_{i}" for i in range(5))
    assert psp.inference_settings.mode == "slide" and psp.inference_settings.flip
    image = np.random.default_rng(0).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "frame.png"), image)
    code = main(
        [
            "predict",
            str(exported["simple"][1]),
            str(tmp_path / "frame.png"),
            "--out",
            str(tmp_path / "out"),
            "--short-side",
            "native",
            "--no-progress",
        ]
    )
    assert code == 0
    label = cv2.imread(str(tmp_path / "out" / "frame_label.png"), cv2.IMREAD_UNCHANGED)
    settings = InferenceSettings(short_side=None)
    torch_label = sceneseg.predict(sceneseg.load_model(exported["simple"][0]), tmp_path / "frame.png", settings)
    assert label.shape == (64, 96) and (label == torch_label).mean() > 0.99


def test_sliced_pooling_equals_adaptive_pooling() -> None:
    torch.manual_seed(0)
    for shape in ((1, 4, 1, 1), (2, 4, 2, 3), (1, 8, 5, 7), (3, 16, 9, 13), (1, 8, 60, 45)):
        x = torch.randn(shape)
        for bins in (1, 2, 3, 6, (2, 3)):
            assert torch.allclose(adaptive_avg_pool2d_sliced(x, bins), F.adaptive_avg_pool2d(x, bins), atol=1e-6)


def test_pyramid_pooling_is_unchanged_outside_export() -> None:
    ppm = PyramidPoolingModule(8, (1, 2, 3, 6)).eval()
    x = torch.randn(2, 8, 9, 13)
    for branch, size in zip(ppm.features, (1, 2, 3, 6)):
        assert isinstance(branch[0], torch.nn.AdaptiveAvgPool2d)
        assert torch.equal(branch[0](x), F.adaptive_avg_pool2d(x, size))  # PyTorch's kernel, bit for bit
    assert sorted(ppm.state_dict()) == sorted(
        f"features.{i}.{key}"
        for i in range(4)
        for key in ("1.weight", "2.weight", "2.bias", "2.running_mean", "2.running_var", "2.num_batches_tracked")
    )


def test_bad_files_are_clear_errors(exported: dict, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "junk.onnx").write_bytes(b"not a graph")
    with pytest.raises(WeightsError, match="junk.onnx.*not a valid ONNX model"):
        load_onnx(tmp_path / "junk.onnx")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    assert main(["export", str(tmp_path / "junk.pt"), "--out", str(tmp_path / "x.onnx")]) == 2
    assert "junk.pt" in capsys.readouterr().err and not (tmp_path / "x.onnx").exists()
    with pytest.raises(DataError, match="at least 32x32"):
        load_onnx(exported["simple"][1])(torch.zeros(1, 3, 16, 64))
