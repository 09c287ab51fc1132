"""Predictions of two runs on chosen val frames: named ones, or the worst/best by per-image mIoU.

The same pass over the val frames can feed the report's analysis (`visit`), so that each frame is
predicted once per run however many sections use it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..api import load_model, predict
from ..builders import build_dataset
from ..errors import ConfigError
from ..inference import bf16_supported
from ..labels import IGNORE_INDEX
from ..metrics import ConfusionMatrix
from ..visualize import colorize
from .figures import error_map
from .runs import Run


def per_image_miou(truth: np.ndarray, prediction: np.ndarray, num_classes: int) -> float:
    """Mean IoU over the classes present in the frame's ground truth or prediction."""
    confusion = ConfusionMatrix(num_classes, IGNORE_INDEX)
    # torch.tensor copies: cached ground truth is a read-only array, which from_numpy warns about.
    confusion.update(torch.tensor(prediction), torch.tensor(truth))
    return confusion.mean_iou()


def frame_names(pairs: Sequence[tuple[Path, Path]]) -> list[str]:
    return [Path(image).name for image, _ in pairs]


def _select(names: list[str], wanted: Sequence[str]) -> list[int]:
    chosen = []
    for want in wanted:
        matches = [i for i, name in enumerate(names) if want in (name, Path(name).stem)]
        if not matches:
            raise ConfigError(
                f"qualitative frame {want!r} is not a val frame; val frames are e.g. "
                f"{', '.join(names[:5])} ({len(names)} in all)"
            )
        chosen.append(matches[0])
    return chosen


def _spread(ranked: list[int], count: int, gap: int = 3) -> list[int]:
    """The first `count` of `ranked` that are at least `gap` positions apart in the val list:
    neighbouring frames of a video are near copies, and three of them would show one scene."""
    chosen: list[int] = []
    for index in ranked:
        if all(abs(index - other) >= gap for other in chosen):
            chosen.append(index)
    for index in ranked:  # too few frames for the gap: fill up in rank order
        if len(chosen) >= count:
            break
        if index not in chosen:
            chosen.append(index)
    return chosen[:count]


def qualitative_frames(
    runs: Sequence[Run],
    frames: Sequence[str] = (),
    pick: str = "worst",
    count: int = 3,
    show_progress: bool = True,
    visit: Callable[[np.ndarray, list[np.ndarray]], None] | None = None,
) -> tuple[list[dict], tuple]:
    """Frame dicts for figures.qualitative_grid, and the palette they are drawn in (the dataset's,
    stored with the first run's model): the named `frames`, or the `count` frames with the
    lowest ("worst") or highest ("best") per-image mIoU averaged over the runs, at least 3 val
    frames apart. Every run must share the first run's val frames (it supplies images and ground
    truth). `visit(truth, predictions)`, if given, is called for every val frame, all of which are
    then predicted, at each run's own eval settings."""
    if not frames and count < 1:
        raise ConfigError(f"report count = {count}: expected at least 1 frame for the qualitative grid")
    dataset = build_dataset(runs[0].config.data, "val", "whole")
    names = frame_names(dataset.pairs)
    models = [load_model(run.path / "best.pt") for run in runs]
    bf16 = bf16_supported(torch.device("cpu"))
    indices = _select(names, frames) if frames else range(len(dataset))
    results: dict[int, tuple[np.ndarray, np.ndarray, list[np.ndarray], list[float]]] = {}
    for index in tqdm(
        range(len(dataset)) if visit else indices, desc="report: predicting val frames", disable=not show_progress
    ):
        image, truth = dataset.load_raw(index)
        predictions = [predict(model, image, bf16=bf16) for model in models]
        if visit:
            visit(truth, predictions)
        if index in indices:  # only the frames the grid may show are kept
            scores = [per_image_miou(truth, p, model.num_classes) for p, model in zip(predictions, models)]
            results[index] = (image, truth, predictions, scores)
    if not frames:
        order = sorted(results, key=lambda i: float(np.nanmean(results[i][3])), reverse=pick == "best")
        indices = _spread(order, count)
    palette = models[0].palette
    chosen = []
    for index in indices:
        image, truth, predictions, scores = results[index]
        chosen.append(
            {
                "name": names[index],
                "image": image,
                "truth": colorize(truth, palette),
                "predictions": [colorize(p, palette) for p in predictions],
                "errors": [error_map(image, truth, p) for p in predictions],
                "miou": scores,
            }
        )
    return chosen, palette
