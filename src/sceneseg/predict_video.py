"""`sceneseg predict` on a video: every frame segmented, the overlays written as one video.

The video is written under a temporary name and renamed once complete, so an interrupted run never
leaves half a file (predict_files does the same for pictures).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from .errors import DataError
from .visualize import overlay

# mp4v needs no extra codec library, so opencv-python-headless writes it everywhere; MJPG/AVI is
# the fallback for OpenCV builds without MP4 muxing.
_VIDEO_FORMATS = (("mp4v", ".mp4"), ("MJPG", ".avi"))


def to_bgr(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)  # OpenCV writes BGR


def predict_video(
    path: Path,
    out: Path,
    name: str,
    run: Callable[[list[np.ndarray]], np.ndarray],
    model: Any,
    alpha: float,
    batch_size: int,
    show_progress: bool,
) -> Path:
    """Write the overlays of the video at `path` to `out`/`name`_overlay.mp4 (or .avi); returns its path."""
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise DataError(f"cannot open video {path}; expected a video file OpenCV can decode (e.g. MP4, AVI)")
    fps = capture.get(cv2.CAP_PROP_FPS)
    fps = fps if math.isfinite(fps) and fps > 0 else 25.0  # containers without a rate: a common default
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or None
    writer, tmp, target = None, None, None
    try:
        with tqdm(total=total, unit="frame", desc=path.name, disable=not show_progress) as bar:
            while True:
                batch = _read_frames(capture, batch_size)
                if not batch:
                    break
                if writer is None:
                    writer, tmp, target = _open_writer(out, name, fps, batch[0].shape[:2])
                for frame, label in zip(batch, run(batch)):
                    writer.write(to_bgr(overlay(frame, label, model.palette, alpha, model.class_names)))
                bar.update(len(batch))
        if writer is None:
            raise DataError(f"{path} has no frames OpenCV can decode; expected a video file")
        writer.release()
        os.replace(tmp, target)
        return target
    finally:
        capture.release()
        if writer is not None:
            writer.release()
        if tmp is not None:
            tmp.unlink(missing_ok=True)


def _read_frames(capture: cv2.VideoCapture, count: int) -> list[np.ndarray]:
    frames = []
    while len(frames) < count:
        ok, bgr = capture.read()
        if not ok:  # the end, or a frame that does not decode: the video ends there
            break
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    return frames


def _open_writer(out: Path, name: str, fps: float, size: tuple[int, int]) -> tuple[cv2.VideoWriter, Path, Path]:
    height, width = size
    for codec, suffix in _VIDEO_FORMATS:
        # The container follows the file's suffix, so the temporary name keeps it.
        target = out / f"{name}_overlay{suffix}"
        tmp = out / f".{name}_overlay.tmp{suffix}"
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*codec), fps, (width, height))
        if writer.isOpened():
            return writer, tmp, target
        writer.release()
        tmp.unlink(missing_ok=True)
    raise DataError(f"cannot write a video to {out}: this OpenCV build encodes neither MP4 (mp4v) nor AVI (MJPG)")
