"""Latency of `sceneseg.predict` on one 360x480 frame: PyTorch fp32, PyTorch bf16, onnxruntime.

    python benchmarks/predict_latency.py                          # every model, all three runtimes
    python benchmarks/predict_latency.py --models simple_r18 --iters 1

Each cell is the median over --iters calls after --warmup calls, end to end: preprocessing, the
forward pass at the frame's own size (whole-frame inference, no resizing), softmax and argmax.
Models have random weights (latency does not depend on them) and CamVid's 11 classes. The ONNX
files are exported into a temporary folder first. Threads: torch.get_num_threads(), which
OMP_NUM_THREADS sets; onnxruntime is given the same number. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

MODELS = {
    "simple_r18": ("simple", dict(backbone="resnet18", deep_stem=False)),
    "pspnet18": ("pspnet", dict(backbone="resnet18", deep_stem=False)),
    "simple_r50": ("simple", dict(backbone="resnet50", deep_stem=True)),
    "pspnet50": ("pspnet", dict(backbone="resnet50", deep_stem=True)),
}
RUNTIMES = ("fp32", "bf16", "onnx")
HEADERS = {"fp32": "PyTorch fp32 (ms)", "bf16": "PyTorch bf16 (ms)", "onnx": "onnxruntime fp32 (ms)"}


def milliseconds(call, iters: int, warmup: int) -> float:
    for _ in range(warmup):
        call()
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def measure(key: str, runtimes: list[str], frame: np.ndarray, iters: int, warmup: int, folder: Path) -> dict:
    import sceneseg
    from sceneseg.api import describe
    from sceneseg.inference import InferenceSettings
    from sceneseg.models import MODELS as FACTORIES

    torch.manual_seed(0)
    name, options = MODELS[key]
    model = FACTORIES[name](num_classes=11, **options).eval()
    describe(model)
    settings = InferenceSettings(mode="whole", short_side=None)  # the frame as it is: 360x480
    row = {}
    for runtime in runtimes:
        if runtime == "onnx":
            from sceneseg.export import export_onnx, load_onnx

            path = folder / f"{key}.onnx"
            export_onnx(model, path)
            runner = load_onnx(path)
            row[runtime] = milliseconds(lambda r=runner: sceneseg.predict(r, frame, settings), iters, warmup)
        else:
            bf16 = runtime == "bf16"
            row[runtime] = milliseconds(lambda b=bf16: sceneseg.predict(model, frame, settings, bf16=b), iters, warmup)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--runtimes", nargs="*", default=list(RUNTIMES), choices=list(RUNTIMES))
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    from sceneseg.inference import bf16_supported

    frame = np.random.default_rng(0).integers(0, 256, (360, 480, 3), dtype=np.uint8)
    with tempfile.TemporaryDirectory() as folder:
        rows = {key: measure(key, args.runtimes, frame, args.iters, args.warmup, Path(folder)) for key in args.models}
    versions = f"torch {torch.__version__}"
    if "onnx" in args.runtimes:
        import onnxruntime

        versions += f", onnxruntime {onnxruntime.__version__}"
    print(
        f"predict latency per 360x480 frame, median of {args.iters} after {args.warmup} warm-up; "
        f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, {versions}, "
        f"CPU bf16 support: {'yes' if bf16_supported(torch.device('cpu')) else 'no'}\n"
    )
    print("| model | " + " | ".join(HEADERS[r] for r in args.runtimes) + " |")
    print("|---|" + "---:|" * len(args.runtimes))
    for key, row in rows.items():
        print(f"| {key} | " + " | ".join(f"{row[r]:.1f}" for r in args.runtimes) + " |")


if __name__ == "__main__":
    main()
