"""What a report reads from finished run directories, and the numbers its tables derive from them.

Every number comes from a run's own files: metrics.json (the final evaluation and its confusion
matrix), history.json (per-epoch records), row.json (label and the original study's row, written
by `sceneseg study`) and the config stored in best.pt. A run kept as records only (config.yaml,
metrics.json and history.json, without its weights, as `docs/` keeps finished runs) has every number
of the tables and curves; only the sections that predict frames need best.pt.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from ..checkpoint import load_checkpoint
from ..config import Config, config_from_dict
from ..errors import SceneSegError
from .document import shown_path


@dataclass
class Run:
    name: str  # the run directory's name
    path: Path
    label: str
    reference_row: int | str | None  # the original study's row (study.StudyRow.reference_row)
    config: Config
    metrics: dict
    history: list[dict]
    has_weights: bool = True  # False: records only, no best.pt to predict with

    @property
    def class_names(self) -> list[str]:
        return [c["name"] for c in self.metrics["classes"]]

    @property
    def confusion(self) -> np.ndarray:
        return np.asarray(self.metrics["confusion"], dtype=np.float64)

    @property
    def best_record(self) -> dict:
        """The history record of the epoch whose weights (best.pt) metrics.json scored."""
        return next(r for r in self.history if r["epoch"] == self.metrics["epoch"])

    @property
    def train_seconds(self) -> float:
        return sum(r["seconds"] for r in self.history)


def load_run(path: Path) -> Run:
    path = Path(path)
    _check_run_folder(path)
    for name in ("metrics.json", "history.json"):
        if not (path / name).is_file():
            raise SceneSegError(
                f"{path} is not a finished run: it has no {name} (finish it with "
                f"`sceneseg train ... --resume`, or leave it out of the report)"
            )
    try:
        metrics = json.loads((path / "metrics.json").read_text())
        history = json.loads((path / "history.json").read_text())
        row = json.loads((path / "row.json").read_text()) if (path / "row.json").is_file() else {}
    except json.JSONDecodeError as exc:
        raise SceneSegError(f"{path}: a JSON file is damaged ({exc})") from None
    for key in ("mIoU", "classes", "confusion", "epoch"):
        if key not in metrics:
            raise SceneSegError(
                f"{path / 'metrics.json'} lacks {key!r}: written by an older sceneseg? "
                f"Re-run `sceneseg train ... --resume` to evaluate again"
            )
    has_weights = (path / "best.pt").is_file()
    config = _stored_config(path, has_weights)
    return Run(
        name=path.name,
        path=path,
        label=row.get("label", config.name),
        reference_row=row.get("reference_row"),
        config=config,
        metrics=metrics,
        history=history,
        has_weights=has_weights,
    )


def _check_run_folder(path: Path) -> None:
    """A missing path, a file, or a folder of runs (a study's out_dir) each get their own message."""
    if not path.exists():
        raise SceneSegError(f"run folder {path} does not exist")
    if not path.is_dir():
        raise SceneSegError(f"{path} is a file; expected a run folder (a train.out_dir, holding metrics.json)")
    if not (path / "metrics.json").exists():
        inside = sorted(str(p) for p in path.iterdir() if (p / "metrics.json").is_file())
        if inside:
            shown = ", ".join(inside[:5]) + (f" and {len(inside) - 5} more" if len(inside) > 5 else "")
            raise SceneSegError(f"{path} is not a run folder but holds run folders: {shown}; give those")


def _stored_config(path: Path, has_weights: bool) -> Config:
    """The run's config: best.pt's copy, or config.yaml for a run kept as records only."""
    if has_weights:
        return config_from_dict(load_checkpoint(path / "best.pt")["config"])
    if not (path / "config.yaml").is_file():
        raise SceneSegError(
            f"{path} is not a finished run: it has neither best.pt nor config.yaml (a run kept as records "
            f"needs config.yaml, metrics.json and history.json)"
        )
    try:
        tree = yaml.safe_load((path / "config.yaml").read_text())
    except yaml.YAMLError as exc:
        raise SceneSegError(f"{path / 'config.yaml'} is not valid YAML ({' '.join(str(exc).split())})") from None
    return config_from_dict(tree)


def pixel_share(run: Run) -> np.ndarray:
    """Each class's share of the labelled val pixels (ground-truth rows of the confusion matrix)."""
    rows = run.confusion.sum(1)
    return rows / max(rows.sum(), 1.0)


def confused_with(run: Run, cls: int, top: int = 2) -> list[tuple[str, float]]:
    """The classes that `cls`'s pixels were most often predicted as, with the share of its pixels."""
    row = run.confusion[cls].copy()
    total = row.sum()
    row[cls] = -1
    order = [i for i in np.argsort(-row, kind="stable")[:top] if row[i] > 0]
    return [(run.class_names[i], row[i] / total) for i in order]


def hardest_classes(run: Run, count: int = 5) -> list[dict]:
    """The `count` classes with the lowest IoU (classes absent from val are left out), lowest first;
    ties keep the dataset's class order."""
    share = pixel_share(run)
    scored = [(c["iou"], i) for i, c in enumerate(run.metrics["classes"]) if c["iou"] is not None]
    return [
        {"class": run.class_names[i], "iou": iou, "share": float(share[i]), "confused_with": confused_with(run, i)}
        for iou, i in sorted(scored)[:count]
    ]


def converged_epoch(history: list[dict], key: str = "train_loss", tolerance: float = 0.01) -> int:
    """First epoch whose `key` is within `tolerance` (relative) of the final epoch's."""
    final = history[-1][key]
    return next(r["epoch"] for r in history if abs(r[key] - final) <= tolerance * abs(final))


def backbone_init(config: Config) -> str:
    if config.train.init_from:
        return f"all but the classifier from `{shown_path(config.train.init_from)}`"
    pretrained = config.model.pretrained
    if pretrained is None:
        return "random"
    return "ImageNet (torchvision)" if pretrained == "imagenet" else f"`{shown_path(pretrained)}`"


def protocol(run: Run) -> dict[str, str]:
    """The columns that say how a row's numbers were made."""
    c = run.config
    size = "native size" if c.eval.short_side is None else f"short side {c.eval.short_side}"
    evaluation = (
        "centre crops"
        if c.eval.mode == "crop"
        else (
            f"{c.eval.mode}{' + flip' if c.eval.flip else ''}, {size}"
            + (f", {c.eval.crop_size} windows" if c.eval.mode == "slide" else "")
        )
    )
    resize = c.data.options.get("resize")
    crop = f"{c.data.crop_size}" + (
        f" (frames {resize[0]}x{resize[1]})" if resize else f" (short side {c.data.short_side})"
    )
    minutes = (run.train_seconds + run.metrics.get("eval_seconds", 0.0)) / 60
    return {
        "epochs": str(len(run.history)),
        "crop": crop,
        "augmentation": "yes" if c.data.data_aug else "no",
        "backbone init": backbone_init(c),
        "evaluation": evaluation,
        "hardware": ", ".join(
            filter(None, [run.metrics.get("hardware", "not recorded"), run.metrics.get("precision")])
        ),
        "wall time": f"{minutes:.1f} min",
    }


def fmt(value: float | None, digits: int = 4) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"
