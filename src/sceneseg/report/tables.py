"""The report's tables of run results, beside the original study's published figures where known."""

from __future__ import annotations

import numpy as np

from .document import Table
from .reference import Published
from .runs import Run, converged_epoch, fmt, hardest_classes, protocol

PER_CLASS_COLUMNS = 3  # groups with at most this many classes show per-class figures in the results table


def results_table(group: list[Run], published: Published | None) -> Table:
    classes = group[0].class_names
    per_class = len(classes) <= PER_CLASS_COLUMNS
    headers = ["row", "train mIoU", "val mIoU", "mAcc", "allAcc"]
    if published:
        headers += ["reference train mIoU", "reference val mIoU"]
    if per_class:
        headers += [f"IoU {c}" for c in classes] + [f"Acc {c}" for c in classes]
    rows = []
    for run in group:
        m = run.metrics
        row = [run.label, fmt(run.best_record["train_mIoU"]), fmt(m["mIoU"]), fmt(m.get("mAcc")), fmt(m.get("allAcc"))]
        if published:
            reference = published.mious(run.reference_row)
            row += [fmt(reference["train_mIoU"]), fmt(reference["val_mIoU"])]
        if per_class:
            row += [fmt(c["iou"]) for c in m["classes"]] + [fmt(c["acc"]) for c in m["classes"]]
        rows.append(tuple(row))
    caption = (
        "Ours: train mIoU is the training loop's (augmented crops) at the epoch of `best.pt`; val mIoU, mAcc "
        "and allAcc are the final evaluation of `best.pt`."
    )
    if published:
        caption += (
            " The reference columns are the original CS 6476 study's published figures for the row each run "
            "reproduces (ResNet-50 backbones, GPU), not ours; '-' where it published none."
        )
    return Table(tuple(headers), tuple(rows), caption=caption)


def published_tables(group: list[Run], published: Published | None) -> list[Table]:
    """The study's own figures for a dataset it published as a single row (KITTI road), in the
    results table's columns; nothing for other datasets."""
    classes = group[0].class_names
    splits = published.splits(classes) if published else []
    if not splits:
        return []
    per_class = len(classes) <= PER_CLASS_COLUMNS
    headers = ["original study", "mIoU", "mAcc", "allAcc"]
    if per_class:
        headers += [f"IoU {c}" for c in classes] + [f"Acc {c}" for c in classes]
    rows = []
    for split, figures in splits:
        row = [split, *(fmt(figures[key]) for key in ("mIoU", "mAcc", "allAcc"))]
        if per_class:
            row += [fmt(v) for v in figures["iou"]] + [fmt(v) for v in figures["acc"]]
        rows.append(tuple(row))
    return [Table(tuple(headers), tuple(rows), caption="The original study's published figures on this dataset.")]


def chosen_classes_table(group: list[Run], classes: tuple[str, ...]) -> Table:
    """Every row's val mIoU, its difference to the first row, and the val IoU of `classes` (an
    ablation's table: the first row is the baseline the others change one setting of)."""
    names = group[0].class_names
    columns = [names.index(c) for c in classes]
    first = group[0].metrics["mIoU"]
    rows = tuple(
        (
            run.label,
            fmt(run.metrics["mIoU"]),
            "-" if run is group[0] else _difference(first, run.metrics["mIoU"]),
            *(fmt(run.metrics["classes"][i]["iou"], 3) for i in columns),
            str(len(run.history)),
        )
        for run in group
    )
    return Table(
        ("row", "val mIoU", "vs first row", *(f"IoU {c}" for c in classes), "epochs"),
        rows,
        caption="Final evaluation of each row's `best.pt` on val. One run per row: rows closer than "
        "0.02 in mIoU need a second seed before they are ranked.",
    )


def protocol_table(group: list[Run]) -> Table:
    columns = list(protocol(group[0]))
    return Table(
        ("row", *columns),
        tuple((run.label, *protocol(run).values()) for run in group),
        caption="How each row was made. Wall time: training (with per-epoch validation) plus the final evaluation.",
    )


def _difference(a: float | None, b: float | None) -> str:
    return "-" if a is None or b is None else f"{b - a:+.4f}"


def class_table(pair: list[Run], share: np.ndarray, published: Published | None) -> Table:
    """Per-class val IoU of the compared runs (two, with their difference; or a report's only run)
    and the study's published ones."""
    names = pair[0].class_names
    columns = published.per_class_iou(names) if published else []
    two = len(pair) == 2
    headers = (
        "class",
        "val pixel share",
        *(f"IoU: {run.label}" for run in pair),
        *(["difference (second - first)"] if two else []),
        *(f"study: {model}" for model, _ in columns),
    )
    rows = []
    for i, name in enumerate(names):
        ious = [run.metrics["classes"][i]["iou"] for run in pair]
        rows.append(
            (
                name,
                f"{100 * share[i]:.2f}%",
                *(fmt(iou) for iou in ious),
                *([_difference(*ious)] if two else []),
                *(fmt(values[i]) for _, values in columns),
            )
        )
    caption = (
        "Val IoU of the two compared runs (`--compare FIRST SECOND`) in the dataset's class order."
        if two
        else "Val IoU of the run in the dataset's class order (two runs would be compared side by side)."
    )
    if columns:
        note = published.per_class_note(names)
        caption += " The study columns are the original study's published per-class val IoU (ResNet-50, GPU)"
        caption += f"; the file says: {note}" if note else "."
    return Table(headers, tuple(rows), caption=caption)


def hardest_table(run: Run) -> Table:
    rows = tuple(
        (
            str(rank),
            h["class"],
            fmt(h["iou"]),
            f"{100 * h['share']:.2f}%",
            ", ".join(f"{name} ({100 * part:.0f}%)" for name, part in h["confused_with"]) or "-",
        )
        for rank, h in enumerate(hardest_classes(run), 1)
    )
    return Table(
        ("rank", "class", "val IoU", "val pixel share", "its pixels predicted as"),
        rows,
        caption=f"{run.label}: the five classes with the lowest val IoU; the last column is from the "
        f"confusion matrix (share of the class's labelled pixels).",
    )


def convergence_table(group: list[Run]) -> Table:
    rows = tuple(
        (
            run.label,
            str(converged_epoch(run.history)),
            fmt(run.history[-1]["train_loss"]),
            str(run.metrics["epoch"]),
            f"{run.train_seconds / 60:.1f} min",
        )
        for run in group
    )
    return Table(
        ("row", "converged epoch", "final train loss", "best val epoch", "train time"),
        rows,
        caption="Converged epoch: the first epoch whose train loss is within 1% of the final epoch's.",
    )
