"""A CUDA training run on the built-in sample, then predict and ONNX export from its checkpoint."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

import sceneseg
from sceneseg.cli import main
from sceneseg.data import SAMPLE_ROOT
from sceneseg.data.files import read_image
from tests.gpu import NEEDS_CUDA

pytestmark = NEEDS_CUDA

# CUDA convolutions may run in TF32 (and cuDNN picks other algorithms than the CPU), so GPU and CPU
# logits agree to about 1e-3 of their range, not bit for bit; labels differ only where two classes
# are nearly tied.
LOGIT_TOLERANCE = 2e-2
LABEL_AGREEMENT = 0.99


@pytest.fixture(scope="module")
def cuda_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One epoch of the sample config on the GPU (bf16 and channels_last as the config resolves them)."""
    run = tmp_path_factory.mktemp("cuda") / "run"
    torch.cuda.reset_peak_memory_stats()
    assert main(["train", "train.epochs=1", "device=cuda", f"train.out_dir={run}", "--no-progress"]) == 0
    return run


def _sample_frame() -> np.ndarray:
    return read_image(sorted((SAMPLE_ROOT / "val").iterdir())[0])


def test_training_on_cuda_gives_a_finite_val_miou(cuda_run: Path) -> None:
    history = json.loads((cuda_run / "history.json").read_text())
    metrics = json.loads((cuda_run / "metrics.json").read_text())
    assert len(history) == 1 and math.isfinite(history[0]["val_mIoU"]) and math.isfinite(history[0]["train_loss"])
    assert math.isfinite(metrics["mIoU"]) and 0 <= metrics["mIoU"] <= 1
    # The run's own record names the GPU, and this process's CUDA allocator did the work: a CPU
    # run would leave both untouched.
    assert torch.cuda.get_device_name() in metrics["hardware"]
    assert torch.cuda.max_memory_allocated() > 16 * 2**20
    # The GPU switches a training run turns on (issue 13): fixed-size crops let cuDNN autotune.
    assert torch.backends.cudnn.benchmark and torch.backends.cuda.matmul.allow_tf32


def test_predict_on_cuda_matches_the_cpu(cuda_run: Path) -> None:
    frame = _sample_frame()
    on_gpu = sceneseg.load_model(cuda_run / "best.pt", device="cuda")
    assert next(on_gpu.parameters()).is_cuda
    labels = sceneseg.predict(on_gpu, frame)
    assert labels.shape == frame.shape[:2] and labels.dtype == np.uint8 and labels.max() < on_gpu.num_classes
    on_cpu = sceneseg.load_model(cuda_run / "best.pt", device="cpu")
    assert (labels == sceneseg.predict(on_cpu, frame)).mean() >= LABEL_AGREEMENT


def test_predict_command_writes_label_maps_on_cuda(cuda_run: Path, tmp_path: Path) -> None:
    frames = SAMPLE_ROOT / "val"
    out = tmp_path / "predictions"
    args = ["predict", str(cuda_run / "best.pt"), str(frames), "--out", str(out), "--device", "cuda", "--no-progress"]
    assert main(args) == 0
    written = sorted(p.name for p in out.rglob("*_label.png"))
    assert len(written) == len(list(frames.iterdir()))


def test_onnx_export_of_a_cuda_checkpoint_agrees_with_torch_on_cuda(cuda_run: Path, tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from sceneseg.api import preprocess
    from sceneseg.export import load_onnx

    onnx_file = tmp_path / "model.onnx"
    assert main(["export", str(cuda_run / "best.pt"), "--out", str(onnx_file)]) == 0
    # onnxruntime alone, as a deployment would load the file: one input, the logits out.
    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    frame = _sample_frame()
    batch = preprocess([frame])
    (logits,) = session.run(None, {session.get_inputs()[0].name: batch.numpy()})
    model = sceneseg.load_model(cuda_run / "best.pt", device="cuda")
    with torch.no_grad():
        expected = model(batch.cuda())["out"].float().cpu()
    assert logits.shape == tuple(expected.shape)
    spread = float(expected.max() - expected.min()) or 1.0
    assert float(np.abs(logits - expected.numpy()).max()) / spread <= LOGIT_TOLERANCE
    # And through sceneseg.predict, as `sceneseg predict model.onnx` runs it.
    agreement = (sceneseg.predict(load_onnx(onnx_file), frame) == sceneseg.predict(model, frame)).mean()
    assert agreement >= LABEL_AGREEMENT
