"""`sceneseg predict`: segment image files, folders of them and videos, and write the pictures.

Per image NAME: NAME_label.png (class indices), NAME_color.png (colour mask) and NAME_overlay.png
(the frame with the mask blended in and a legend); per video NAME_overlay.mp4. Frames of one size
are batched together, whatever their order. A bad input is reported and skipped: the others are
still written, and the caller learns about every failure at the end. Every file is written under
a temporary name and renamed, so an interrupted run never leaves half a picture or video.

(Named predict_files, not predict: a submodule `sceneseg.predict` would shadow the function
`sceneseg.predict` as soon as it was imported.)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from .api import load_model, predict_batch
from .checkpoint import check_output_folder
from .data.files import read_image
from .errors import DataError, SceneSegError
from .inference import InferenceSettings
from .predict_video import predict_video, to_bgr
from .visualize import colorize, overlay

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")


@dataclass
class Report:
    written: list[Path] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def load_predictor(path: str | Path, device: str = "cpu") -> Any:
    """A model for `predict_paths`: a sceneseg/reference checkpoint, or an exported .onnx file."""
    if Path(path).suffix.lower() == ".onnx":
        from .export import load_onnx

        return load_onnx(path)
    return load_model(path, device=device)


def find_inputs(inputs: Sequence[str | Path], report: Report) -> tuple[list[Path], list[Path]]:
    """Image and video files named by `inputs` (files, or folders: their files, sorted)."""
    images, videos = [], []
    for entry in map(Path, inputs):
        if entry.is_dir():
            files = sorted(p for p in entry.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES + VIDEO_SUFFIXES)
            if not files:
                report.failures.append(
                    f"folder {entry} holds no images ({', '.join(IMAGE_SUFFIXES)}) "
                    f"or videos ({', '.join(VIDEO_SUFFIXES)})"
                )
        elif not entry.exists():
            report.failures.append(f"{entry} does not exist; expected an image, a video or a folder of them")
            continue
        else:
            files = [entry]
        for path in files:
            suffix = path.suffix.lower()
            if suffix in IMAGE_SUFFIXES:
                images.append(path)
            elif suffix in VIDEO_SUFFIXES:
                videos.append(path)
            else:
                report.failures.append(
                    f"{path}: unsupported file type {suffix or '(none)'}; expected an image "
                    f"({', '.join(IMAGE_SUFFIXES)}) or a video ({', '.join(VIDEO_SUFFIXES)})"
                )
    return images, videos


def predict_paths(
    model: Any,
    inputs: Sequence[str | Path],
    out_dir: str | Path,
    settings: InferenceSettings,
    batch_size: int = 4,
    alpha: float = 0.5,
    bf16: bool = False,
    show_progress: bool = True,
    on_failure: Callable[[str], None] = print,
) -> Report:
    """Segment every image and video in `inputs` into `out_dir`; failures are in the Report and
    passed to `on_failure` as they happen. A DataError if nothing at all was written: then an
    `out_dir` this call created is removed again."""
    settings.check()
    if batch_size < 1:
        raise SceneSegError(f"batch size {batch_size}: expected at least 1 frame per forward pass")
    if not 0 <= alpha <= 1:
        raise SceneSegError(f"alpha {alpha}: expected a weight between 0 and 1 for the overlay colours")
    report, out = Report(), Path(out_dir)
    images, videos = find_inputs(inputs, report)
    for message in report.failures:
        on_failure(message)
    check_output_folder(out, "output folder")
    created = _first_missing(out)
    # Made up front so that an unwritable place fails before any model time is spent.
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create the output folder {out} ({exc.strerror})") from None
    try:
        _predict_into(out, model, images, videos, settings, report, batch_size, alpha, bf16, show_progress, on_failure)
    finally:
        if not report.written and created is not None:
            _remove_empty(out, created)
    if not report.written:
        raise DataError(
            f"no input yielded a frame to segment, nothing written to {out}: "
            f"{', '.join(str(p) for p in inputs)} ({len(report.failures)} failure(s), listed above)"
        )
    return report


def _first_missing(path: Path) -> Path | None:
    """The outermost of `path` and its parents that does not exist (what mkdir(parents=True) makes)."""
    missing = None
    for folder in (path, *path.parents):
        if folder.exists():
            break
        missing = folder
    return missing


def _remove_empty(out: Path, created: Path) -> None:
    """Remove `out` and its parents up to `created`, the folders this call made, while they are empty:
    a run that wrote nothing leaves nothing behind. rmdir never removes a folder with files in it."""
    for folder in (out, *out.parents):
        try:
            folder.rmdir()
        except OSError:
            return
        if folder == created:
            return


def _predict_into(
    out: Path,
    model: Any,
    images: list[Path],
    videos: list[Path],
    settings: InferenceSettings,
    report: Report,
    batch_size: int,
    alpha: float,
    bf16: bool,
    show_progress: bool,
    on_failure: Callable[[str], None],
) -> None:
    names = _Names()

    def run(frames: list[np.ndarray]) -> np.ndarray:
        return predict_batch(model, frames, settings, bf16=bf16)[0]

    def fail(message: str) -> None:
        report.failures.append(message)
        on_failure(message)

    with tqdm(total=len(images), unit="image", desc="predict", disable=not show_progress or not images) as bar:
        pending: dict[tuple[int, int], list[tuple[Path, np.ndarray]]] = {}

        def flush(group: list[tuple[Path, np.ndarray]]) -> None:
            bar.update(len(group))
            try:
                labels = run([image for _, image in group])
            except SceneSegError as exc:
                fail(f"{', '.join(str(path) for path, _ in group)}: {exc}")
                return
            for (path, image), label in zip(group, labels):
                try:
                    report.written += _write_image_outputs(out, names.take(path), image, label, model, alpha)
                except SceneSegError as exc:
                    fail(f"{path}: {exc}")

        for path in images:
            try:
                image = read_image(path)
            except DataError as exc:
                fail(str(exc))
                bar.update(1)
                continue
            group = pending.setdefault(image.shape[:2], [])
            group.append((path, image))
            if len(group) == batch_size:
                flush(pending.pop(image.shape[:2]))
        for group in pending.values():
            flush(group)
    for path in videos:
        try:
            report.written.append(
                predict_video(path, out, names.take(path), run, model, alpha, batch_size, show_progress)
            )
        except SceneSegError as exc:
            fail(str(exc))


class _Names:
    """Output name stems, unique per run: frame.png and frame.jpg become frame and frame-2."""

    def __init__(self) -> None:
        self.used: set[str] = set()

    def take(self, path: Path) -> str:
        name, n = path.stem, 1
        while name in self.used:
            n += 1
            name = f"{path.stem}-{n}"
        self.used.add(name)
        return name


def _write_image_outputs(
    out: Path, name: str, image: np.ndarray, label: np.ndarray, model: Any, alpha: float
) -> list[Path]:
    # 16-bit PNGs keep class indices above 255 (models with more than 256 classes).
    index = label if label.dtype == np.uint8 else label.astype(np.uint16)
    pictures = {
        f"{name}_label.png": index,
        f"{name}_color.png": to_bgr(colorize(label, model.palette)),
        f"{name}_overlay.png": to_bgr(overlay(image, label, model.palette, alpha, model.class_names)),
    }
    for filename, picture in pictures.items():
        _write_png(out / filename, picture)
    return [out / filename for filename in pictures]


def _write_png(path: Path, picture: np.ndarray) -> None:
    ok, encoded = cv2.imencode(".png", picture)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        if not ok:
            raise DataError(f"cannot encode {path} as PNG")
        tmp.write_bytes(encoded.tobytes())
        os.replace(tmp, path)
    except OSError as exc:
        raise DataError(f"cannot write {path} ({exc.strerror}); expected a writable output folder") from None
    finally:
        tmp.unlink(missing_ok=True)
