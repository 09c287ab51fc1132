"""`sceneseg report`: a study's tables, curves, confusion matrices and qualitative grids from run folders.

Runs are grouped by dataset (their class names). Each group gets its results table next to the
original study's published figures (reference.py), the protocol of every row, training curves (with
the study's beside them) and a confusion matrix per run; a group with many classes also gets, for
two runs side by side, per-class IoU and its difference, the hardest classes, errors by object size
and near boundaries (analysis.py, from one prediction pass over the val frames) and qualitative
grids; a run started from another's weights gets the two loss curves together.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..errors import SceneSegError
from . import figures, sections, tables
from .analysis import FrameAnalysis
from .document import Block, Figure, Heading, Paragraph, check_report_folder, shown_path, write_report
from .qualitative import qualitative_frames
from .reference import Published, load_published
from .runs import Run, load_run, pixel_share
from .tables import PER_CLASS_COLUMNS

DATASET_TITLES = {"camvid": "CamVid", "kitti_road": "KITTI road", "folder": "image folder"}


def build_report(
    run_dirs: Sequence[Path],
    out: Path,
    settings,
    title: str = "sceneseg report",
    show_progress: bool = True,
    intro: str = "",
) -> list[Block]:
    """Write the report of `run_dirs` into `out` (see document.write_report); returns its blocks.
    `settings` is a study.ReportSettings (compare, frames, pick, count, reference: the JSON of the
    original study's figures); `intro` opens the page."""
    if not run_dirs:
        raise SceneSegError("report: no run directories given")
    check_report_folder(out)  # before any frame is predicted
    runs = [load_run(Path(d)) for d in run_dirs]
    names = [run.name for run in runs]
    if len(set(names)) != len(names):
        raise SceneSegError(f"report: run folder names must differ (they name the rows): {names}")
    groups: dict[tuple[str, ...], list[Run]] = {}
    for run in runs:
        groups.setdefault(tuple(run.class_names), []).append(run)
    _check_classes(settings.classes, list(groups))
    blocks: list[Block] = [Paragraph(intro)] if intro else []
    blocks += [
        Paragraph(
            f"Built by `sceneseg report` from {len(runs)} run folder(s): "
            + ", ".join(f"`{shown_path(run.path)}`" for run in runs)
            + ". Every number is read from the runs' "
            "`metrics.json` (final evaluation of `best.pt`) and `history.json` (per-epoch records), except "
            "the analysis by object size and near boundaries, which predicts the val frames with `best.pt`."
            + _records_only_note(runs)
        )
    ]
    published, note = load_published(settings.reference)
    blocks.append(Paragraph(note))
    # The dataset with the most rows (a study's main one) first; a stand-in or transfer row after.
    for group in sorted(groups.values(), key=len, reverse=True):
        blocks += _group_section(group, runs, settings, published, show_progress)
    write_report(out, title, blocks)
    return blocks


def _group_section(
    group: list[Run], runs: list[Run], settings, published: Published | None, show_progress: bool
) -> list[Block]:
    """The report's section on the runs of one dataset."""
    slug = group[0].config.data.dataset
    dataset = DATASET_TITLES.get(slug, slug)
    classes = group[0].class_names
    blocks: list[Block] = [
        Heading(f"{dataset}: results ({len(classes)} classes)"),
        tables.results_table(group, published),
        *tables.published_tables(group, published),
        tables.protocol_table(group),
    ]
    if settings.classes and set(settings.classes) <= set(classes):
        blocks.insert(2, tables.chosen_classes_table(group, settings.classes))
    # Per-class tables, analysis and image grids only where the classes are too many for the results table.
    pair = _compared(group, settings.compare) if len(classes) > PER_CLASS_COLUMNS else None
    grid: list[Block] = []
    if pair:
        analysis = FrameAnalysis(len(classes), len(pair))
        # One pass over the val frames feeds the qualitative grid and the analysis.
        grid = _qualitative_blocks(dataset, slug, pair, settings, show_progress, analysis.add)
        blocks += _comparison_blocks(dataset, slug, pair, published)
        blocks += sections.size_blocks(dataset, slug, pair, analysis)
        blocks += sections.boundary_blocks(dataset, slug, pair, analysis)
    blocks += _curve_blocks(dataset, slug, group, published)
    return blocks + grid + _transfer_blocks(dataset, group, runs)


def _comparison_blocks(dataset: str, slug: str, pair: list[Run], published: Published | None) -> list[Block]:
    share = pixel_share(pair[0])
    return [
        Heading(f"{dataset}: per-class IoU", 3),
        tables.class_table(pair, share, published),
        Figure(
            f"{slug}_class_iou.png",
            figures.class_iou_bars(pair, share),
            "Per-class val IoU of the compared runs; brackets: the class's share of val pixels.",
        ),
        Heading(f"{dataset}: hardest classes", 3),
        *[tables.hardest_table(run) for run in pair],
    ]


def _curve_blocks(dataset: str, slug: str, group: list[Run], published: Published | None) -> list[Block]:
    return [
        Heading(f"{dataset}: training curves", 3),
        Figure(
            f"{slug}_curves.png",
            figures.curves(group),
            "Train loss and per-epoch val mIoU of every run on shared axes.",
        ),
        tables.convergence_table(group),
        *sections.published_curve_blocks(dataset, slug, group, published),
        Heading(f"{dataset}: confusion matrices", 3),
        Figure(
            f"{slug}_confusion.png",
            figures.confusion_heatmaps(group),
            "Confusion matrix of each run on val, each row normalised to 1 (where the pixels of "
            "the row's class went; the diagonal is the class accuracy).",
        ),
    ]


def _qualitative_blocks(
    dataset: str, slug: str, pair: list[Run], settings, show_progress: bool, visit=None
) -> list[Block]:
    frames, palette = qualitative_frames(pair, settings.frames, settings.pick, settings.count, show_progress, visit)
    how = (
        "chosen in the study file"
        if settings.frames
        else f"the {len(frames)} {settings.pick} by per-image mIoU"
        + (" averaged over both runs" if len(pair) == 2 else "")
    )
    return [
        Heading(f"{dataset}: qualitative results", 3),
        Figure(
            f"{slug}_qualitative.png",
            figures.qualitative_grid(frames, [r.label for r in pair], pair[0].class_names, palette),
            f"Val frames {how}: image, ground truth, then per run its prediction and its errors (red; "
            f"black: unlabelled).",
        ),
    ]


def _transfer_blocks(dataset: str, group: list[Run], runs: list[Run]) -> list[Block]:
    """For each run started from another run's weights: both runs' curves in one figure."""
    blocks: list[Block] = []
    for run in group:
        source = _source(run, runs)
        if source is not None:
            blocks += [
                Heading(f"Transfer: {source.label} to {run.label}", 3),
                Figure(
                    f"transfer_{run.name}.png",
                    figures.curves([run], source=source),
                    f"Loss and val mIoU of the source run (dashed, {DATASET_TITLES.get(source.config.data.dataset)}) "
                    f"and of the run started from its weights (solid, {dataset}).",
                ),
            ]
    return blocks


def _check_classes(chosen: Sequence[str], groups: list[tuple[str, ...]]) -> None:
    """The chosen classes' table needs a dataset that has all of them: a misspelt name is an error,
    not a table that silently goes missing."""
    if chosen and not any(set(chosen) <= set(names) for names in groups):
        known = sorted({name for names in groups for name in names})
        missing = sorted(set(chosen) - set(known)) or list(chosen)
        raise SceneSegError(
            f"report: classes {', '.join(missing)} are not all in one dataset of these runs; "
            f"their classes are: {', '.join(known)}"
        )


def _compared(group: list[Run], names: Sequence[str]) -> list[Run] | None:
    """The runs whose val frames the report predicts: `names` when both are in the group, else the
    best SimpleSegmentationNet and the best PSPNet, else the two best runs, else the one run (a
    report of a single training); only runs with best.pt count (None: no run has it)."""
    by_name = {run.name: run for run in group}
    if names and all(n in by_name for n in names):
        for name in names:
            if not by_name[name].has_weights:
                raise SceneSegError(
                    f"report: --compare {name}: {shown_path(by_name[name].path)} has no best.pt, and the "
                    f"comparison predicts the val frames with it; compare two runs that have their weights"
                )
        return [by_name[n] for n in names]
    ranked = sorted((r for r in group if r.has_weights), key=lambda r: -r.metrics["mIoU"])
    best = [next((r for r in ranked if r.config.model.name == kind), None) for kind in ("simple", "pspnet")]
    pair = [r for r in best if r is not None]
    pair = pair if len(pair) == 2 else ranked[:2]
    return pair or None


def _records_only_note(runs: list[Run]) -> str:
    kept = [f"`{run.name}`" for run in runs if not run.has_weights]
    if not kept:
        return ""
    return f" Kept as records without `best.pt` ({', '.join(kept)}): in the tables and curves, not compared."


def _source(run: Run, runs: list[Run]) -> Run | None:
    """The run among `runs` whose weights `run` started from (train.init_from), if any."""
    if not run.config.train.init_from:
        return None
    origin = Path(run.config.train.init_from).resolve().parent
    return next((r for r in runs if r.path.resolve() == origin), None)
