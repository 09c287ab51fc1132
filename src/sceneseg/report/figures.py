"""The report's pictures, drawn with matplotlib (Agg: no display needed) and returned as PNG bytes."""

from __future__ import annotations

import io
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")  # before pyplot: reports are built on servers and in CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from ..labels import IGNORE_INDEX  # noqa: E402
from .runs import Run, converged_epoch  # noqa: E402

ERROR_COLOUR = (230, 25, 25)  # wrong pixels in the error maps; right ones are greyed out


def _png(figure: plt.Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def curves(runs: Sequence[Run], source: Run | None = None) -> bytes:
    """Train loss and val mIoU per epoch, all runs on shared axes; a dot marks each run's converged
    epoch (first within 1% of its final train loss). `source` (a transfer run's origin) is dashed."""
    figure, (loss_ax, miou_ax) = plt.subplots(1, 2, figsize=(13, 4.5))
    for run in ([source] if source else []) + list(runs):
        epochs = [r["epoch"] for r in run.history]
        style = "--" if run is source else "-"
        (line,) = loss_ax.plot(epochs, [r["train_loss"] for r in run.history], style, label=run.label)
        miou_ax.plot(epochs, [r["val_mIoU"] for r in run.history], style, color=line.get_color())
        done = converged_epoch(run.history)
        loss_ax.plot([done], [run.history[done - epochs[0]]["train_loss"]], "o", color=line.get_color())
    loss_ax.set(xlabel="epoch", ylabel="train loss (main + aux)", title="train loss (dot: converged epoch)")
    miou_ax.set(xlabel="epoch", ylabel="val mIoU (per-epoch protocol)", title="val mIoU")
    for ax in (loss_ax, miou_ax):
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    # Below the axes, so that no curve hides behind it.
    figure.legend(loc="lower center", ncol=min(3, len(runs) + (source is not None)), fontsize=8, frameon=False)
    figure.subplots_adjust(bottom=0.14 + 0.05 * ((len(runs) + (source is not None) + 2) // 3))
    return _png(figure)


def confusion_heatmaps(runs: Sequence[Run], columns: int = 3) -> bytes:
    """One row-normalised confusion matrix per run (row i: where class i's pixels went; rows sum to 1)."""
    names = runs[0].class_names
    columns = min(columns, len(runs))
    rows = -(-len(runs) // columns)
    size = 1.6 + 0.42 * len(names)
    figure, axes = plt.subplots(rows, columns, squeeze=False, figsize=(columns * size, rows * (size + 0.5)))
    for ax in axes.flat[len(runs) :]:
        ax.axis("off")
    for ax, run in zip(axes.flat, runs):
        matrix = run.confusion
        normalised = matrix / np.maximum(matrix.sum(1, keepdims=True), 1)
        image = ax.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
        ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=7)
        ax.set_yticks(range(len(names)), names, fontsize=7)
        ax.set_title(f"{run.label}\nval mIoU {run.metrics['mIoU']:.4f}", fontsize=8)
        if len(names) <= 20:
            for i in range(len(names)):
                for j in range(len(names)):
                    if normalised[i, j] >= 0.01:
                        ax.text(
                            j,
                            i,
                            f"{normalised[i, j]:.2f}"[1:] if normalised[i, j] < 1 else "1",
                            ha="center",
                            va="center",
                            fontsize=5.5,
                            color="white" if normalised[i, j] > 0.6 else "black",
                        )
    figure.supxlabel("predicted", fontsize=9)
    figure.supylabel("ground truth", fontsize=9)
    figure.colorbar(image, ax=axes, fraction=0.02, pad=0.02)
    return _png(figure)


def class_iou_bars(runs: Sequence[Run], share: np.ndarray) -> bytes:
    """Per-class IoU of each run side by side; each class is labelled with its val pixel share."""
    names = runs[0].class_names
    y = np.arange(len(names))
    height = 0.8 / len(runs)
    figure, ax = plt.subplots(figsize=(9, 0.9 + 0.45 * len(names)))
    for k, run in enumerate(runs):
        values = [c["iou"] or 0.0 for c in run.metrics["classes"]]
        ax.barh(y + (k - (len(runs) - 1) / 2) * height, values, height, label=run.label)
    ax.set_yticks(y, [f"{n} ({100 * s:.1f}%)" for n, s in zip(names, share)], fontsize=8)
    ax.invert_yaxis()
    ax.set(xlim=(0, 1), xlabel="val IoU", title="per-class IoU (in brackets: share of val pixels)")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return _png(figure)


def error_map(image: np.ndarray, truth: np.ndarray, prediction: np.ndarray, ignore: int = IGNORE_INDEX) -> np.ndarray:
    """The frame in grey, wrong pixels in red, unlabelled pixels black."""
    grey = image.mean(2, keepdims=True).repeat(3, 2) * 0.5
    result = np.where((prediction != truth)[..., None], np.array(ERROR_COLOUR, np.float64), grey)
    result[truth == ignore] = 0
    return result.astype(np.uint8)


def qualitative_grid(
    frames: Sequence[dict], model_labels: Sequence[str], class_names: Sequence[str], palette: Sequence[Sequence[int]]
) -> bytes:
    """One row per frame: image | ground truth | per model: prediction, errors.

    Each frame dict holds "name", "image", "truth" (colour RGB arrays) and per model "predictions",
    "errors" (RGB arrays) and "miou" (per-image mIoU)."""
    columns = 2 + 2 * len(model_labels)
    height, width = frames[0]["image"].shape[:2]
    scale = 2.6 / width
    figure, axes = plt.subplots(
        len(frames), columns, squeeze=False, figsize=(columns * 2.6, len(frames) * height * scale + 1.2)
    )
    for row, frame in enumerate(frames):
        panels = [(frame["image"], frame["name"]), (frame["truth"], "ground truth")]
        for k, label in enumerate(model_labels):
            panels += [
                (frame["predictions"][k], f"{label}\nmIoU {frame['miou'][k]:.3f}"),
                (frame["errors"][k], "errors (red)"),
            ]
        for ax, (picture, title) in zip(axes[row], panels):
            ax.imshow(picture)
            ax.set_title(title, fontsize=7)
            ax.axis("off")
    handles = [Patch(color=np.asarray(colour) / 255, label=name) for name, colour in zip(class_names, palette)]
    figure.legend(handles=handles, loc="lower center", ncol=min(len(handles), 6), fontsize=8, frameon=False)
    figure.subplots_adjust(bottom=0.6 / (len(frames) * height * scale + 1.2), wspace=0.03, hspace=0.25)
    return _png(figure)


def published_loss_curves(lines: Sequence[tuple[str, Sequence[float], bool, int]]) -> bytes:
    """Train loss per epoch, against the epoch and against the share of each run's epochs (the
    study trained longer than a CPU run can). `lines`: (label, losses, is_published, colour index);
    published curves are dashed."""
    figure, (epoch_ax, share_ax) = plt.subplots(1, 2, figsize=(13, 4.5))
    palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for label, losses, is_published, colour in lines:
        epochs = np.arange(1, len(losses) + 1)
        style = {"linestyle": "--" if is_published else "-", "color": palette[colour % len(palette)]}
        epoch_ax.plot(epochs, losses, label=label, **style)
        share_ax.plot(epochs / len(losses), losses, **style)
    epoch_ax.set(xlabel="epoch", ylabel="train loss", title="train loss per epoch")
    share_ax.set(xlabel="share of the run's epochs", ylabel="train loss", title="train loss, training length scaled")
    for ax in (epoch_ax, share_ax):
        ax.grid(alpha=0.3)
    figure.legend(loc="lower center", ncol=min(3, len(lines)), fontsize=8, frameon=False)
    figure.subplots_adjust(bottom=0.14 + 0.05 * ((len(lines) + 2) // 3))
    return _png(figure)


def size_curves(
    labels: Sequence[str], panels: Sequence[tuple[str, np.ndarray, np.ndarray]], bin_names: Sequence[str]
) -> bytes:
    """One panel per class: recall (solid) and IoU (dashed) against object size, a line per run.
    `panels`: (title, recall (runs, bins), IoU (runs, bins)); NaN (no objects) is left out."""
    columns = 4
    rows = -(-len(panels) // columns)
    figure, axes = plt.subplots(rows, columns, squeeze=False, sharey=True, figsize=(3.4 * columns, 2.7 * rows + 0.6))
    for ax in axes.flat[len(panels) :]:
        ax.axis("off")
    x = np.arange(len(bin_names))
    for ax, (title, recall, iou) in zip(axes.flat, panels):
        for k, label in enumerate(labels):
            (line,) = ax.plot(x, recall[k], "o-", markersize=3, label=f"recall: {label}")
            ax.plot(x, iou[k], "s--", markersize=3, color=line.get_color(), label=f"IoU: {label}")
        ax.set_xticks(x, bin_names, rotation=30, fontsize=7)
        ax.set_title(title, fontsize=8)
        ax.set_ylim(-0.03, 1.03)
        ax.grid(alpha=0.3)
    for ax in axes[:, 0]:
        ax.set_ylabel("recall / IoU", fontsize=8)
    handles, names = axes.flat[0].get_legend_handles_labels()
    figure.legend(handles, names, loc="lower center", ncol=2, fontsize=8, frameon=False)
    figure.supxlabel("object area (pixels)", fontsize=9, y=0.6 / (2.7 * rows + 0.6) + 0.03)
    figure.subplots_adjust(bottom=1.2 / (2.7 * rows + 0.6) + 0.05, hspace=0.6)
    return _png(figure)


def boundary_accuracy(labels: Sequence[str], widths: Sequence[int], band: np.ndarray, interior: np.ndarray) -> bytes:
    """Pixel accuracy near ground-truth boundaries (solid) and away from them (dashed) against the
    band width, a line per run; `band` and `interior` are (runs, widths)."""
    figure, ax = plt.subplots(figsize=(7, 4.2))
    for k, label in enumerate(labels):
        (line,) = ax.plot(widths, band[k], "o-", label=f"within d px of a boundary: {label}")
        ax.plot(widths, interior[k], "s--", color=line.get_color(), label=f"farther: {label}")
    ax.set(xlabel="band width d (pixels)", ylabel="pixel accuracy", title="accuracy near class boundaries")
    ax.set_xticks(list(widths))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    return _png(figure)
