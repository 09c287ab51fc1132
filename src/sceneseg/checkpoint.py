"""Saving and loading training checkpoints.

A checkpoint is a plain dict of tensors, numbers, strings and lists, so it loads with
`torch.load(..., weights_only=True)`: opening a checkpoint never runs code from the file.
It is written to a temporary file first and renamed into place, so an interrupted save leaves the
previous checkpoint intact instead of a truncated one.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import torch

from .config import Config, config_from_dict, to_dict
from .errors import ConfigError, SceneSegError, WeightsError

FORMAT = "sceneseg-checkpoint"
VERSION = 1


def save_checkpoint(path: str | Path, **content: Any) -> None:
    """Atomically write `content` (config dict, model/optimizer/scheduler state, epoch, ...) to `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "version": VERSION, **content}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write a text file (history, metrics) so that readers never see half of it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def read_weights_file(path: str | Path) -> Any:
    """torch.load with weights_only=True, turning every failure into a WeightsError naming the file."""
    path = Path(path)
    if path.is_dir():
        raise WeightsError(f"checkpoint {path} is a directory; expected a weights file such as {path / 'best.pt'}")
    if not path.is_file():
        raise WeightsError(f"checkpoint {path} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights only load failed" not in str(exc).lower():
            raise WeightsError(f"cannot read {path}: not a PyTorch checkpoint ({str(exc).splitlines()[0]})") from None
        # torch's message suggests ways to load the file anyway; only the offending global is news.
        lines = [line.strip() for line in str(exc).splitlines() if "WeightsUnpickler error:" in line]
        reason = lines[0].removeprefix("WeightsUnpickler error: ").split(". ")[0] if lines else "unknown object"
        raise WeightsError(
            f"refusing to load {path}: it needs arbitrary unpickling ({reason}), which could run code from "
            "the file; only tensors, numbers, strings and containers are accepted"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise WeightsError(
            f"cannot read {path}: not a PyTorch checkpoint or truncated ({str(exc).split('. ')[0]})"
        ) from None


def is_sceneseg_checkpoint(content: Any) -> bool:
    return isinstance(content, dict) and content.get("format") == FORMAT


def load_checkpoint(path: str | Path, content: Any = None) -> dict[str, Any]:
    """Read a sceneseg checkpoint written by `save_checkpoint` (or check `content` already read from it)."""
    if content is None:
        content = read_weights_file(path)
    if not is_sceneseg_checkpoint(content):
        raise WeightsError(
            f"{path} is not a sceneseg checkpoint (expected a dict with format={FORMAT!r}, "
            "as written by `sceneseg train`)"
        )
    for key in ("config", "model", "epoch"):
        if key not in content:
            raise WeightsError(f"sceneseg checkpoint {path} lacks its {key!r} entry: the file is incomplete")
    return content


# Keys that do not change what a run computes: where the data and the run are, how data is loaded and
# how often last.pt is written. A finished run whose config differs only in these is the same
# experiment (a study skips it).
SAME_EXPERIMENT_KEYS = (
    "train.out_dir",
    "device",
    "data.root",
    "data.num_workers",
    "data.cache",
    "train.checkpoint_every",
)
# What `train --resume` may change besides: how long to train, and the final evaluation. Anything else
# would make the resumed run another experiment.
RESUMABLE_KEYS = (*SAME_EXPERIMENT_KEYS, "train.epochs", "eval.")


def config_differences(stored: Config, given: Config, allowed: Sequence[str] = RESUMABLE_KEYS) -> list[str]:
    """Dotted keys whose values differ, as "key (run: old, now: new)", except the `allowed` ones
    (a key, or a section prefix ending in a dot)."""
    old, new = _flatten(stored), _flatten(given)
    return [
        f"{key} (run: {old[key]!r}, now: {new[key]!r})"
        for key in sorted(old)
        if old[key] != new[key] and not any(key == a or (a.endswith(".") and key.startswith(a)) for a in allowed)
    ]


def _flatten(config: Config) -> dict[str, Any]:
    """Dotted key -> plain value of every field. Only the sections are opened: a mapping-valued field
    (data.options, loss.class_weight_mult) is one value, so every config has the same keys and a name
    added to or dropped from such a mapping is a difference of that field."""
    flat: dict[str, Any] = {}
    for key, value in to_dict(config).items():
        if dataclasses.is_dataclass(getattr(config, key)):
            flat.update({f"{key}.{name}": field for name, field in value.items()})
        else:
            flat[key] = value
    return flat


RunState = Literal["new", "partial", "finished"]


def run_state(run_dir: Path, epochs: int, last: dict[str, Any] | None = None) -> RunState:
    """Whether `run_dir` holds no run ("new"), a run to resume ("partial") or a finished one.

    Finished: last.pt closes epoch `epochs` (train.epochs) with no part-way epoch after it, and the
    final evaluation wrote metrics.json. A run stopped during that evaluation is partial: resuming
    runs just the evaluation. `last` is last.pt's content, where the caller has read it already.
    """
    if last is None:
        if not (run_dir / "last.pt").is_file():
            return "new"
        last = load_checkpoint(run_dir / "last.pt")
    done = last["epoch"] == epochs and "interrupted" not in last
    return "finished" if done and (run_dir / "metrics.json").is_file() else "partial"


def checkpoint_to_resume(config: Config, run_dir: Path) -> dict[str, Any]:
    """last.pt of `run_dir`, once checked that `config` continues it (`train --resume`)."""
    last = run_dir / "last.pt"
    if not last.is_file():  # run_state's "new", without reading last.pt twice
        raise SceneSegError(f"--resume: no checkpoint {last} to resume from; train without --resume first")
    resume = load_checkpoint(last)
    try:
        stored = config_from_dict(resume["config"])
    except ConfigError as exc:
        raise WeightsError(f"{last}: the config stored in it is not valid: {exc}") from None
    differences = config_differences(stored, config)
    if differences:
        raise ConfigError(
            f"--resume: the config given differs from the one {run_dir} was trained with: "
            f"{'; '.join(differences)}. Give the same config and overrides (only "
            f"{', '.join(RESUMABLE_KEYS)}* may change), or train into another train.out_dir"
        )
    done = resume["epoch"]
    # A part-way epoch counts: with train.epochs = done it would be dropped, and last.pt, still
    # marking it, would leave the run partial for ever.
    needed = done + 1 if "interrupted" in resume else done
    if config.train.epochs < needed:
        part = f", and part of epoch {done + 1}" if needed > done else ""
        raise ConfigError(
            f"train.epochs = {config.train.epochs}, but {run_dir} has already trained {done} epochs{part}; "
            f"expected at least {needed}"
        )
    if run_state(run_dir, config.train.epochs, resume) == "finished":
        raise SceneSegError(
            f"--resume: {run_dir} already finished its {done} epoch(s) (metrics.json); give "
            f"train.epochs=<more than {done}> to train longer, or choose another train.out_dir"
        )
    return resume
