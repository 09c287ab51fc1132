"""A study: a list of experiment configs run one after another, each in its own run directory.

The study file names each row's config, its label in the report, the row of the original study it
reproduces (`reference_row`: its published figures are read from the study's reference JSON, see
ReportSettings.reference) and per-row overrides. Overrides may use `{out_dir}` (the study's
folder) and the study's `variables`, so that one row can start from another's weights. The runner
skips rows that finished and resumes rows that were interrupted: stop it at any point and run the
same command again.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .builders import dataset_options
from .checkpoint import (
    SAME_EXPERIMENT_KEYS,
    RunState,
    checkpoint_to_resume,
    config_differences,
    load_checkpoint,
    run_state,
    sized_config,
    write_text_atomic,
)
from .config import Config, build_dataclass, config_from_dict, load_config, resolve_builtin
from .errors import ConfigError, SceneSegError

BUILTIN_STUDIES = Path(__file__).parent / "studies"
ROW_FILE = "row.json"  # in each run directory: the row's label and reference row, for the report
# The published figures of the CS 6476 study, where this project's shared data keeps them; relative
# to the working directory, like the built-in studies' data roots.
DEFAULT_REFERENCE = "../shared/reference/cs6476_study.json"


@dataclass(frozen=True)
class StudyRow:
    name: str  # the run directory's name inside the study's out_dir
    config: str  # a built-in config name or a YAML path
    label: str
    overrides: tuple[str, ...] = ()
    # The original study's row this one reproduces: a CamVid row number (1-6), or the name of a
    # section of the reference JSON (kitti_road_transfer); None: no published counterpart.
    reference_row: int | str | None = None


@dataclass(frozen=True)
class ReportSettings:
    # Two row names shown side by side; empty: the SimpleSegmentationNet and the PSPNet run with the
    # highest val mIoU (metrics.json), whichever rows they are.
    compare: tuple[str, ...] = ()
    frames: tuple[str, ...] = ()  # val frame names for the qualitative grids (default: picked)
    pick: str = "worst"  # "worst" or "best" per-image mIoU, when no frames are named
    count: int = 3
    # JSON of the original study's published figures (may use the study's variables); a missing
    # file leaves the reference columns out of the report.
    reference: str = DEFAULT_REFERENCE
    # Classes whose val IoU every row shows in one table beside its mIoU (an ablation's table); empty:
    # no such table. Names as the dataset spells them.
    classes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Study:
    name: str
    description: str
    out_dir: str
    rows: tuple[StudyRow, ...]
    variables: dict[str, str] = field(default_factory=dict)
    report: ReportSettings = field(default_factory=ReportSettings)


def resolve_study_path(name: str | Path) -> Path:
    return resolve_builtin(name, BUILTIN_STUDIES, "study")


def load_study(name: str | Path, settings: typing.Sequence[str] = ()) -> Study:
    """Read a study file; `settings` are `out_dir=...` or `<variable>=...` (the `study.` prefix removed)."""
    path = resolve_study_path(name)
    try:
        tree = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read study file {path}: {' '.join(str(exc).split())}") from None
    if not isinstance(tree, dict):
        raise ConfigError(f"study file {path}: expected a mapping (name, description, out_dir, rows, ...)")
    try:
        study = _study_from_tree(tree)
        for setting in settings:
            key, sep, value = setting.partition("=")
            if not sep:
                raise ConfigError(f"study setting {setting!r}: expected study.KEY=VALUE")
            if key == "out_dir":
                study = dataclasses.replace(study, out_dir=value)
            elif key in study.variables:
                study = dataclasses.replace(study, variables={**study.variables, key: value})
            else:
                raise ConfigError(
                    f"unknown study setting study.{key}; known: study.out_dir"
                    + "".join(f", study.{v}" for v in sorted(study.variables))
                )
        (reference,) = _substitute(study, [study.report.reference], "report.reference")
        study = dataclasses.replace(study, report=dataclasses.replace(study.report, reference=reference))
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    if not study.rows:
        raise ConfigError(f"{path}: the study has no rows")
    names = [row.name for row in study.rows]
    if len(set(names)) != len(names):
        raise ConfigError(f"{path}: row names must be unique, got {names}")
    for row in study.rows:
        if row.reference_row == "" or (isinstance(row.reference_row, int) and row.reference_row < 1):
            raise ConfigError(
                f"{path}: row {row.name!r}: reference_row = {row.reference_row!r}: expected a row number of the "
                f"original study (from 1) or a section of the reference JSON, e.g. kitti_road_transfer"
            )
    if study.report.pick not in ("worst", "best"):
        raise ConfigError(f"{path}: report.pick = {study.report.pick!r}: expected 'worst' or 'best'")
    return study


def _study_from_tree(tree: dict[str, Any]) -> Study:
    known = [f.name for f in dataclasses.fields(Study)]
    unknown = sorted(set(tree) - set(known))
    if unknown:
        raise ConfigError(f"unknown key(s) {', '.join(unknown)} at the top level; known keys: {', '.join(known)}")
    _require(tree, ("name", "description", "out_dir", "rows"), "top level")
    rows, variables = tree.pop("rows"), tree.pop("variables", None) or {}
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        raise ConfigError("rows: expected a list of mappings (name, config, label, overrides, reference_row)")
    if not isinstance(variables, dict) or not all(isinstance(v, str) for v in variables.values()):
        raise ConfigError(f"variables: expected a mapping of names to strings, got {variables!r}")
    for i, row in enumerate(rows):
        _require(row, ("name", "config", "label"), f"rows[{i}]")
    built = tuple(build_dataclass(StudyRow, row, f"rows[{i}].") for i, row in enumerate(rows))
    return dataclasses.replace(
        build_dataclass(Study, {**tree, "rows": ()}, ""),
        rows=built,
        variables={str(k): v for k, v in variables.items()},
    )


def _require(tree: dict[str, Any], keys: tuple[str, ...], where: str) -> None:
    missing = [key for key in keys if key not in tree]
    if missing:
        raise ConfigError(f"{where}: missing key(s) {', '.join(missing)}")


def _substitute(study: Study, texts: typing.Sequence[str], where: str) -> list[str]:
    """`texts` with `{out_dir}` and the study's variables filled in."""
    # Variables may use {out_dir} themselves (a weights file made by an earlier row).
    values = {"out_dir": study.out_dir}
    try:
        values.update({key: value.format_map(values) for key, value in study.variables.items()})
        return [text.format_map(values) for text in texts]
    except (KeyError, ValueError) as exc:
        known = ", ".join(sorted(["out_dir", *study.variables]))
        raise ConfigError(f"{where} uses an unknown variable {exc}; known: {known}") from None


def row_config(study: Study, row: StudyRow, overrides: typing.Sequence[str] = ()) -> Config:
    """The row's config: its file, the row's overrides, then `overrides` (for every row); run into
    `<out_dir>/<row name>`."""
    own = _substitute(study, row.overrides, f"study row {row.name!r}: override")
    out = f"train.out_dir={Path(study.out_dir) / row.name}"
    try:
        config = load_config(row.config, [*own, *overrides, out])
        dataset_options(config.data)  # a wrong dataset option fails before the first row trains
        return config
    except ConfigError as exc:
        raise ConfigError(f"study row {row.name!r}: {exc}") from None


def row_state(config: Config) -> RunState:
    """The row's checkpoint.run_state, once checked that a finished run is of this row's config."""
    run_dir = Path(config.train.out_dir)
    last = load_checkpoint(run_dir / "last.pt") if (run_dir / "last.pt").is_file() else None  # read once
    state = run_state(run_dir, config, last)
    if state == "finished":
        ran = sized_config(config, last)  # a row sized by train.minutes ran the epochs its budget gave
        differences = config_differences(config_from_dict(last["config"]), ran, SAME_EXPERIMENT_KEYS)
        if differences:
            raise ConfigError(
                f"{run_dir} holds a finished run of another config: {'; '.join(differences)}. "
                f"Delete it to run the row again, or give the study another study.out_dir"
            )
    return state


def run_study(
    study: Study,
    overrides: typing.Sequence[str],
    train: Callable[[Config, dict | None], Any],
    log: Callable[[str], None] = print,
    only: typing.Sequence[str] = (),
    on_error: Callable[[str], None] = lambda message: print(message, file=sys.stderr, flush=True),
) -> list[tuple[str, str]]:
    """Run every row (or those named in `only`) that is not done; returns (row, error) per failed row.

    `train(config, resume)` trains and evaluates one row. A row that fails with a SceneSegError is
    reported and the next one runs; rows that need its weights then fail with their own message.
    """
    unknown = sorted(set(only) - {row.name for row in study.rows})
    if unknown:
        raise ConfigError(f"--only {', '.join(unknown)}: no such row; rows: {', '.join(r.name for r in study.rows)}")
    configs = {row.name: row_config(study, row, overrides) for row in study.rows}  # every row checked up front
    failures: list[tuple[str, str]] = []
    for index, row in enumerate(study.rows, 1):
        if only and row.name not in only:
            continue
        config = configs[row.name]
        run_dir = Path(config.train.out_dir)
        try:
            state = row_state(config)
            doing = {"finished": "already done, skipped", "partial": "resuming", "new": "starting"}[state]
            log(f"\n[{index}/{len(study.rows)}] {row.name}: {row.label} ({doing})")
            run_dir.mkdir(parents=True, exist_ok=True)
            # Finished rows too: a label or reference row edited in the study file reaches the report.
            about = {"study": study.name, "row": index, "name": row.name, "label": row.label}
            write_text_atomic(
                run_dir / ROW_FILE, json.dumps({**about, "reference_row": row.reference_row}, indent=2) + "\n"
            )
            if state == "finished":
                continue
            summary = train(config, checkpoint_to_resume(config, run_dir) if state == "partial" else None)
            log(f"{row.name}: val mIoU {summary['mIoU']:.4f} ({summary['mode']} evaluation)")
        except SceneSegError as exc:
            on_error(f"sceneseg: error: row {row.name} failed: {exc}")
            failures.append((row.name, str(exc)))
    return failures
