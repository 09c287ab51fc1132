"""The report's analysis sections: errors by object size and near boundaries for the compared runs
(counts from analysis.FrameAnalysis), and the study's published loss curves beside ours."""

from __future__ import annotations

import numpy as np

from . import figures
from .analysis import FrameAnalysis, SizeCounts, size_bin_names
from .document import Block, Figure, Heading, Table
from .reference import Published
from .runs import Run, fmt


def size_blocks(dataset: str, slug: str, pair: list[Run], analysis: FrameAnalysis) -> list[Block]:
    """Recall and IoU per class and object-size bin, as a table and as curves."""
    labels = [run.label for run in pair]
    bins = size_bin_names(analysis.edges)
    # "all classes" first: the headline of whether small objects fail whatever their class.
    groups: list[tuple[str, list[SizeCounts]]] = [("all classes", [counts.pooled() for counts in analysis.sizes])]
    groups += [(name, [c.of_class(i) for c in analysis.sizes]) for i, name in enumerate(pair[0].class_names)]
    rows, panels = [], []
    for name, counts in groups:
        objects = counts[0].objects[0]  # ground truth: the same for every run
        if not objects.sum():
            continue
        recall = np.stack([c.recall()[0] for c in counts])
        iou = np.stack([c.iou()[0] for c in counts])
        panels.append((f"{name} ({objects.sum()} objects)", recall, iou))
        for b in np.flatnonzero(objects):
            rows.append((name, bins[b], str(objects[b]), *(fmt(v) for v in recall[:, b]), *(fmt(v) for v in iou[:, b])))
    table = Table(
        ("class", "object area (px)", "objects", *(f"recall: {x}" for x in labels), *(f"IoU: {x}" for x in labels)),
        tuple(rows),
        caption=(
            "An object is a connected component (8-connectivity) of one class in a val frame's ground truth, "
            "its area counted at the labels' resolution; bins without objects are left out. Recall: the share "
            "of the bin's object pixels predicted as their class, pooled over its objects. IoU: those hits over "
            "the bin's object pixels plus the pixels wrongly predicted as the class, each charged to the bin "
            "of the nearest object of that class in its frame (in a frame without that class, to no bin)."
        ),
    )
    return [
        Heading(f"{dataset}: errors by object size", 3),
        table,
        Figure(
            f"{slug}_object_size.png",
            figures.size_curves(labels, panels, bins),
            "Recall (solid) and IoU (dashed) by object area, per class, for the compared runs.",
        ),
    ]


def boundary_blocks(dataset: str, slug: str, pair: list[Run], analysis: FrameAnalysis) -> list[Block]:
    """Pixel accuracy in bands around ground-truth boundaries against the rest."""
    labels = [run.label for run in pair]
    band = np.stack([c.band_accuracy() for c in analysis.boundaries])
    interior = np.stack([c.interior_accuracy() for c in analysis.boundaries])
    share = analysis.boundaries[0].band_share()
    rows = tuple(
        (
            f"{width} px",
            fmt(None if np.isnan(share[k]) else 100 * share[k], 1) + "%",
            *(value for k2 in range(len(labels)) for value in (fmt(band[k2, k]), fmt(interior[k2, k]))),
        )
        for k, width in enumerate(analysis.widths)
    )
    headers = ("band width d", "val pixels in the band")
    headers += tuple(h for x in labels for h in (f"within d: {x}", f"farther: {x}"))
    table = Table(
        headers,
        rows,
        caption=(
            "Pixel accuracy of the labelled val pixels less than d pixels from a ground-truth class boundary "
            "(d on each side of it) and of those farther away. A boundary pixel is a labelled pixel whose "
            "4-neighbour has another label; unlabelled pixels make no boundary and are not scored. The "
            "original study saw SimpleSegmentationNet's predictions 'bleed' across boundaries: this measures it."
        ),
    )
    return [
        Heading(f"{dataset}: accuracy near class boundaries", 3),
        table,
        Figure(
            f"{slug}_boundaries.png",
            figures.boundary_accuracy(labels, analysis.widths, band, interior),
            "Pixel accuracy within d pixels of a ground-truth boundary (solid) and farther from any (dashed).",
        ),
    ]


def published_curve_blocks(dataset: str, slug: str, group: list[Run], published: Published | None) -> list[Block]:
    """The study's train loss curves beside those of the runs of the same rows (beside every run of
    the group when none reproduces a row the study drew a curve for)."""
    curves = published.loss_curves(group[0].class_names) if published else []
    if not curves:
        return []
    rows = [row for _, _, row in curves]
    mapped = [run for run in group if run.reference_row in rows]
    lines = []
    for colour, (label, losses, row) in enumerate(curves):
        lines.append((label, losses, True, colour))
        lines += [(run.label, _losses(run), False, colour) for run in mapped if run.reference_row == row]
    lines += [(run.label, _losses(run), False, len(curves) + k) for k, run in enumerate([] if mapped else group)]
    return [
        Figure(
            f"{slug}_published_loss.png",
            figures.published_loss_curves(lines),
            f"{dataset}: the original study's train loss per epoch (dashed; ResNet-50, GPU) beside ours (solid, "
            "the same colour for the same row). Right: each run's epochs scaled to 0-1, since the study trained "
            "longer. Ours is the main loss plus the weighted aux loss where there is one.",
        )
    ]


def _losses(run: Run) -> list[float]:
    return [record["train_loss"] for record in run.history]
