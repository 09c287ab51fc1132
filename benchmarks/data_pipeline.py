"""Images/s of the training data pipeline at the study's protocol, and the time to the first training step.

    python benchmarks/data_pipeline.py                       # about a minute on 2 cores
    python benchmarks/data_pipeline.py --seconds 20 --workers 1 2 4 8 16
    python benchmarks/data_pipeline.py --root gpu_pack/camvid  # the JPEG copy the GPU runbook packs

On CamVid's train frames (--root, SegNet layout) with the data settings of --config (default
camvid_pspnet18_15min_cpu: the study's protocol, short side 240, scale 0.5-2, rotation up to 10
degrees, blur, flip, 201x201 crops) it measures:

1. transform: sceneseg.data.train_transform alone, on frames decoded beforehand, OpenCV and torch
   on one thread: what one DataLoader worker does per sample; once as the workers did it before
   issue 13 (from the native frame, normalised to floats on the host), once as now (from the frame
   the cache holds at the short side already, uint8 out: the device normalises);
2. dataset: the training dataset's samples (its cache, then the transform) in this process, one thread;
3. loader: the training run's own DataLoader (sceneseg.loading.train_loader) with 1, 2 and N workers
   (N = os.cpu_count(); --workers), batches of train.batch_size, counted from the first batch on
   (the wait for the first one, the workers' start, is printed apart);
4. with --ops, each step of the transform alone (ms per sample, one thread, cached frames);
5. first step: `sceneseg train <config> train.epochs=1` in a new process, from its launch to the first
   training forward pass (a global module hook notes the time and ends the process there), so
   Python's start and the imports count too; the run's own `phases` in metrics.json start later,
   where training starts.

Prints the CPU model, then a Markdown table. Numbers from a machine that is busy with other work
measure that machine's leftovers: run it on an idle one.
"""

from __future__ import annotations

import argparse
import gc
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIRST_STEP = "FIRST_STEP"  # the child's line: FIRST_STEP <time.time() at the first training forward>


def cpu_model() -> str:
    """The CPU's model name as lscpu (or /proc/cpuinfo) gives it."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


def rate(step: Callable[[int], int], seconds: float) -> float:
    """Images/s of `step(i)` (which returns the images it made) called for at least `seconds`."""
    done, i, start = 0, 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds or i == 0:
        done += step(i)
        i += 1
    return done / elapsed


class OneThread:
    """OpenCV and torch on one thread, as in a DataLoader worker, for the duration of a `with`."""

    def __enter__(self) -> OneThread:
        import cv2
        import torch

        self.saved = cv2.getNumThreads(), torch.get_num_threads()
        cv2.setNumThreads(1)
        torch.set_num_threads(1)
        return self

    def __exit__(self, *exc: object) -> None:
        import cv2
        import torch

        cv2.setNumThreads(self.saved[0])
        torch.set_num_threads(self.saved[1])


def _decoded_frames(config, frames: int, prepared: bool):
    """The training transform the config builds (sceneseg.data.train_transform) and `frames` train
    frames decoded for it: as the dataset cache holds them (resized to the short side) if
    `prepared`, else native."""
    import dataclasses

    from sceneseg.builders import build_dataset
    from sceneseg.data.files import read_image

    # The training split without its cache (only headers are read) gives the files and the very
    # transform training builds from the config.
    files = build_dataset(dataclasses.replace(config.data, cache=False), "train", "train")
    transform = files.transform
    decoded = [(read_image(image), files.read_label(label)) for image, label in files.pairs[:frames]]
    if prepared:
        decoded = [transform.prepare(image, label) for image, label in decoded]
    return transform, decoded


def measure_transform(config, frames: int, seconds: float, before: bool = False) -> float:
    """Images/s of the training transform alone on `frames` train frames decoded beforehand, one thread:
    from the frames the dataset cache holds (resized already) to uint8 crops, or with `before` as
    before issue 13 moved work out of the workers: from the native frames to host-normalised floats."""
    from sceneseg.data.transforms import normalize_images

    transform, decoded = _decoded_frames(config, frames, prepared=not before)

    def one(i: int) -> int:
        image, _ = transform(*decoded[i % len(decoded)], seed=i)
        if before:
            normalize_images(image[None])
        return 1

    with OneThread():
        return rate(one, seconds)


def measure_ops(config, frames: int, seconds: float) -> list[tuple[str, float]]:
    """(op, milliseconds per sample) of each step of the training transform, as measure_transform
    runs it (one thread, cached frames): where a worker's time goes. An op that fires with some
    probability is averaged over all samples, the ones it skips included."""
    transform, decoded = _decoded_frames(config, frames, prepared=True)
    totals: dict[str, float] = {}
    # Time each op's class __call__ (albumentations calls every step through it), then undo that.
    patched = {type(op) for op in transform.compose.transforms}
    own = {cls: cls.__dict__.get("__call__") for cls in patched}
    depth = [0]  # a patched class whose parent is patched too is timed once, at the outer call
    for cls in patched:

        def timed(self, *args, _call=cls.__call__, **kwargs):
            depth[0] += 1
            start = time.perf_counter()
            try:
                return _call(self, *args, **kwargs)
            finally:
                depth[0] -= 1
                if depth[0] == 0:
                    name = type(self).__name__
                    totals[name] = totals.get(name, 0.0) + time.perf_counter() - start

        cls.__call__ = timed
    samples = [0]

    def one(i: int) -> int:
        transform(*decoded[i % len(decoded)], seed=i)
        samples[0] += 1
        return 1

    try:
        with OneThread():
            rate(one, seconds)
    finally:
        for cls, call in own.items():
            if call is None:
                del cls.__call__
            else:
                cls.__call__ = call
    names = [type(op).__name__ for op in transform.compose.transforms]
    return [(name, 1000 * totals.get(name, 0.0) / samples[0]) for name in dict.fromkeys(names)]


def measure_dataset(dataset, seconds: float) -> float:
    """Images/s of the training dataset's samples (cache lookup and transform) in this process, one thread."""

    def one(i: int) -> int:
        dataset[i % len(dataset)]
        return 1

    with OneThread():
        return rate(one, seconds)


def measure_loader(dataset, batch: int, workers: int, seconds: float, seed: int) -> tuple[float, float]:
    """(seconds to the first batch, images/s after it) of the training loader with `workers` workers."""
    import torch

    from sceneseg.distributed import single_process
    from sceneseg.loading import train_loader

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")  # pinned batches on a GPU machine
    loader = train_loader(dataset, single_process(str(device)), seed, batch, None, device, workers)
    epoch, started = 1, time.perf_counter()
    iterator = iter(loader)
    next(iterator)
    first = time.perf_counter() - started

    def step(i: int) -> int:
        nonlocal iterator, epoch
        try:
            return len(next(iterator)[0])
        except StopIteration:  # the next epoch on the same (persistent) workers, as training does
            epoch += 1
            loader.sampler.set_epoch(epoch)
            iterator = iter(loader)
            return 0

    return first, rate(step, seconds)


def measure_first_step(config_name: str, overrides: list[str]) -> float:
    """Seconds from launching `sceneseg train` to its first training forward pass."""
    with tempfile.TemporaryDirectory() as tmp:
        args = [config_name, *overrides, "train.epochs=1", f"train.out_dir={tmp}/run", "--no-progress"]
        command = [sys.executable, __file__, "--first-step-child", "train", *args]
        launched = time.time()
        done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    lines = [line for line in done.stdout.splitlines() if line.startswith(FIRST_STEP)]
    if not lines:
        raise SystemExit(f"sceneseg train ended before a training step:\n{done.stderr[-2000:]}")
    return float(lines[0].split()[1]) - launched


def first_step_child(argv: list[str]) -> None:
    """Run `sceneseg <argv>`; at the first forward pass in training mode, print the time and exit."""
    import torch

    def hook(module: torch.nn.Module, inputs: object) -> None:
        # Evaluation runs under no_grad: a training-mode forward with gradients is a training step.
        if module.training and torch.is_grad_enabled():
            print(f"{FIRST_STEP} {time.time():.6f}", flush=True)
            os._exit(0)  # nothing after this is measured: skip the rest of the run and its clean-up

    torch.nn.modules.module.register_module_forward_pre_hook(hook)
    from sceneseg.cli import main

    code = main(argv)
    print(f"sceneseg {' '.join(argv)} exited with {code} before a training step", file=sys.stderr)
    sys.exit(1)


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=str(ROOT.parent / "shared" / "datasets" / "camvid"), help="CamVid root")
    parser.add_argument("--config", default="camvid_pspnet18_15min_cpu", help="config whose data settings are used")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="more overrides of the config")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each measurement (default 5)")
    parser.add_argument("--frames", type=int, default=64, help="frames decoded for the transform alone (default 64)")
    parser.add_argument("--workers", type=int, nargs="*", help="DataLoader workers (default: 1, 2 and all cores)")
    parser.add_argument("--no-first-step", action="store_true", help="skip the time to the first training step")
    parser.add_argument("--ops", action="store_true", help="also time each step of the transform on its own")
    parser.add_argument("--first-step-child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return parser.parse_args()


def _header(seconds: float) -> None:
    import albumentations
    import cv2
    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"CPU: {cpu_model()}, {os.cpu_count()} logical cores ({cores} usable by this process)")
    gpu = f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    print(f"torch {torch.__version__}, OpenCV {cv2.__version__}, albumentations {albumentations.__version__}{gpu}")
    print(f"each rate over at least {seconds:g} s\n")


def measure_pipeline(config, args: argparse.Namespace) -> list[tuple[str, int, float, float | None]]:
    """(stage, processes, images/s, seconds to the first batch) of every measurement but the first step."""
    from sceneseg.builders import build_dataset

    rows = [
        ("transform alone, before issue 13 (native frames, float out)", 1,
         measure_transform(config, args.frames, args.seconds, before=True), None),
        ("transform alone, 1 thread", 1, measure_transform(config, args.frames, args.seconds), None),
    ]  # fmt: skip
    started = time.perf_counter()
    dataset = build_dataset(config.data, "train", "train", seed=config.seed)
    built = time.perf_counter() - started
    print(f"training dataset: {len(dataset)} frames, built in {built:.1f} s (data.cache={config.data.cache})")
    rows.append(("training dataset in this process, 1 thread", 1, measure_dataset(dataset, args.seconds), None))
    batch = config.train.batch_size
    for workers in sorted(set(args.workers or (1, 2, os.cpu_count() or 1))):
        first, images = measure_loader(dataset, batch, workers, args.seconds, config.seed)
        gc.collect()  # the finished loader's workers end before the next loader starts its own
        rows.append((f"training DataLoader, batch {batch}", workers, images, first))
    return rows


def main() -> None:
    args = _parse_args()
    if args.first_step_child is not None:
        first_step_child(args.first_step_child)
    from sceneseg.config import load_config

    overrides = [f"data.root={args.root}", *args.set]
    config = load_config(args.config, overrides)
    _header(args.seconds)
    rows = measure_pipeline(config, args)
    print("\n| stage | processes | images/s | images/s per process | first batch (s) |")
    print("|---|---:|---:|---:|---:|")
    for name, processes, images, first in rows:
        first_text = "" if first is None else f"{first:.2f}"
        print(f"| {name} | {processes} | {images:.1f} | {images / processes:.1f} | {first_text} |", flush=True)
    if args.ops:
        ops = measure_ops(config, args.frames, args.seconds)
        total = sum(ms for _, ms in ops)
        print("\n| transform step | ms per sample | share of the steps |")
        print("|---|---:|---:|")
        for name, ms in ops:
            print(f"| {name} | {ms:.3f} | {ms / total:.0%} |")
    if not args.no_first_step:
        seconds = measure_first_step(args.config, overrides)
        print(f"\ntime from the start of `sceneseg train {args.config}` to its first training step: {seconds:.1f} s")


if __name__ == "__main__":
    main()
