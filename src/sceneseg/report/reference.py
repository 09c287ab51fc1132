"""The original study's published figures, read from its JSON file (a study's `report.reference`, or
`sceneseg report --reference PATH`), so that no published number is copied into sceneseg's files.

The file holds one section per dataset, each naming its `classes`: `camvid` (`rows` 1-6 with train and
val mIoU, `per_class_val_iou` of SimpleSegmentationNet and PSPNet, `train_loss_per_epoch` of rows 5
and 6) and `kitti_road_transfer` (`train` and `val` mIoU/mAcc/allAcc, `per_class_val`,
`train_loss_per_epoch`). A group of runs uses the section whose classes are its own. A run is tied
to a published row by its study row's `reference_row` (row.json): a number of the `rows` list, or
the name of a section that is a single row (its `train` and `val` figures). Whatever the file lacks
is shown as '-'; a missing or unreadable file leaves the reference out, with a note, never an error.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .document import shown_path

Curve = tuple[str, list[float], Any]  # label, train loss per epoch, the reference_row it belongs to


def _get(tree: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(tree, dict):
            return None
        tree = tree.get(key)
    return tree


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _number(tree: Any, *keys: str) -> float | None:
    value = _get(tree, *keys)
    return float(value) if _is_number(value) else None


def _numbers(values: Any) -> list[float] | None:
    if isinstance(values, list) and values and all(map(_is_number, values)):
        return [float(v) for v in values]
    return None


@dataclass(frozen=True)
class Published:
    path: Path
    tree: dict

    def section(self, class_names: Sequence[str]) -> tuple[str, dict] | None:
        """(name, section) of the dataset whose classes are `class_names`, in any order."""
        for name, part in self.tree.items():
            classes = _get(part, "classes")
            if isinstance(classes, list) and sorted(map(str, classes)) == sorted(class_names):
                return name, part
        return None

    def mious(self, row: int | str | None) -> dict[str, float | None]:
        """The published train and val mIoU of a `reference_row` (None where there are none)."""
        if isinstance(row, str):
            part = self.tree.get(row)
            return {"train_mIoU": _number(part, "train", "mIoU"), "val_mIoU": _number(part, "val", "mIoU")}
        for part in self.tree.values() if isinstance(row, int) else ():
            rows = _get(part, "rows")
            for entry in rows if isinstance(rows, list) else ():
                if _get(entry, "row") == row:
                    return {"train_mIoU": _number(entry, "train_mIoU"), "val_mIoU": _number(entry, "val_mIoU")}
        return {"train_mIoU": None, "val_mIoU": None}

    def per_class_iou(self, class_names: Sequence[str]) -> list[tuple[str, list[float | None]]]:
        """(model, val IoU per class of `class_names`) for each model the study published per class."""
        found = self.section(class_names)
        columns = _get(found[1], "per_class_val_iou") if found else None
        if not isinstance(columns, dict):
            return []
        order = [str(c) for c in found[1]["classes"]]
        result = []
        for model, values in columns.items():
            values = _numbers(values)
            if values is not None and len(values) == len(order):
                result.append((model, [values[order.index(name)] for name in class_names]))
        return result

    def per_class_note(self, class_names: Sequence[str]) -> str:
        """What the study says about its per-class columns (which rows they are), if anything."""
        found = self.section(class_names)
        note = _get(found[1], "per_class_val_iou", "note") if found else None
        return note if isinstance(note, str) else ""

    def splits(self, class_names: Sequence[str]) -> list[tuple[str, dict]]:
        """(split, {"mIoU", "mAcc", "allAcc", "iou": [...], "acc": [...]}) for each split a
        single-row section (KITTI) published, per-class lists in the order of `class_names`."""
        found = self.section(class_names)
        if not found:
            return []
        rows = []
        for split in ("train", "val"):
            figures = _get(found[1], split)
            if isinstance(figures, dict):
                per_class = _get(found[1], f"per_class_{split}")
                summary = {key: _number(figures, key) for key in ("mIoU", "mAcc", "allAcc")}
                for key in ("iou", "acc"):
                    summary[key] = [_number(per_class, name, key) for name in class_names]
                rows.append((split, summary))
        return rows

    def loss_curves(self, class_names: Sequence[str]) -> list[Curve]:
        """The study's train loss per epoch for the dataset of `class_names`, each with the
        reference_row it belongs to ("(row N)" in its name; a one-row section: the section)."""
        found = self.section(class_names)
        if not found:
            return []
        name, part = found
        curves = _get(part, "train_loss_per_epoch")
        if _numbers(curves):
            return [(f"study: {name}", _numbers(curves), name)]
        result = []
        for label, values in curves.items() if isinstance(curves, dict) else ():
            row = re.search(r"\(row (\d+)\)", label)
            if _numbers(values):
                result.append((f"study: {label}", _numbers(values), int(row.group(1)) if row else None))
        return result


def load_published(path: str | Path) -> tuple[Published | None, str]:
    """The figures in `path` (None if it is missing or unreadable) and a sentence for the report
    that says where they came from, or why there are none."""
    path = Path(path)
    shown = shown_path(path)
    how = "give the file with `--reference PATH` (`sceneseg report`) or `study.reference=PATH` (`sceneseg study`)"
    if not path.is_file():
        problem = "is not a file" if path.exists() else "does not exist"
        return None, f"No reference figures: `{shown}` {problem}, so the reference columns are left out; {how}."
    try:
        tree = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, f"No reference figures: `{shown}` could not be read ({exc}), so they are left out; {how}."
    if not isinstance(tree, dict):
        return None, f"No reference figures: `{shown}` is not a JSON object, so they are left out; {how}."
    about = tree.get("about")
    return Published(path, tree), f"Reference figures read from `{shown}`" + (
        f": {about}" if isinstance(about, str) else "."
    )
