"""Saving and loading training checkpoints.

A checkpoint is a plain dict of tensors, numbers, strings and lists, so it loads with
`torch.load(..., weights_only=True)`: opening a checkpoint never runs code from the file.
It is written to a temporary file first and renamed into place, so an interrupted save leaves the
previous checkpoint intact instead of a truncated one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import pickle
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import torch

from .config import Config, config_from_dict, to_dict
from .errors import ConfigError, OutputError, SceneSegError, WeightsError

FORMAT = "sceneseg-checkpoint"
VERSION = 1


def check_output_file(path: str | Path, what: str) -> None:
    """Raise OutputError (before any work is done) if `path` cannot become a file; `what` names it
    for the user ("--out", "train.out_dir")."""
    path = Path(path)
    if os.path.isdir(path):
        raise OutputError(f"{what} {path} is a folder; expected the path of a file to write")
    _check_nearest_folder(path.parent, what, path)


def check_output_folder(path: str | Path, what: str) -> None:
    """Raise OutputError (before any work is done) if `path` cannot be or become a folder we write into."""
    path = Path(path)
    if os.path.lexists(path) and not os.path.isdir(path):
        raise OutputError(f"{what} {path} is a file; expected a folder (an existing one, or one to create)")
    _check_nearest_folder(path, what, path)


def _check_nearest_folder(folder: Path, what: str, shown: Path) -> None:
    """The nearest existing one of `folder` and its parents must be a folder we may write into.
    (os.path's tests, unlike Path's, answer False instead of raising where permission is missing.)"""
    nearest = next((p for p in (folder, *folder.parents) if os.path.lexists(p)), Path("."))
    if not os.path.isdir(nearest):
        raise OutputError(f"{what} {shown}: {nearest} is a file, so nothing can be created under it; expected a folder")
    if not os.access(nearest, os.W_OK | os.X_OK):
        raise OutputError(f"{what} {shown}: no permission to write in {nearest}")


def _unwritable(path: Path, error: OSError) -> OutputError:
    full = error.errno in (errno.ENOSPC, errno.EDQUOT)
    expected = "free some disk space" if full else "expected a writable file path"
    return OutputError(f"cannot write {path} ({error.strerror or error}); {expected}")


def save_checkpoint(path: str | Path, **content: Any) -> None:
    """Atomically write `content` (config dict, model/optimizer/scheduler state, epoch, ...) to `path`."""
    path = Path(path)
    payload = {"format": FORMAT, "version": VERSION, **content}
    # A name of our own (not mkstemp's, which makes files readable by their owner only): the
    # kernel then gives the file the mode the user's umask gives any other.
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as error:
        raise _unwritable(path, error) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as error:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(error, OSError):
            raise _unwritable(path, error) from None
        raise


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write a text file (history, metrics) so that readers never see half of it."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(text)
        os.replace(tmp, path)
    except OSError as error:
        with contextlib.suppress(OSError):  # a parent that is a file makes unlink fail too
            tmp.unlink()
        raise _unwritable(path, error) from None


def read_weights_file(path: str | Path, what: str = "checkpoint") -> Any:
    """torch.load with weights_only=True, turning every failure into a WeightsError naming the file
    (and `what` gave it: "checkpoint", or a setting such as "model.pretrained")."""
    path = Path(path)
    if path.is_dir():
        raise WeightsError(f"{what} {path} is a directory; expected a weights file such as {path / 'best.pt'}")
    if not path.is_file():
        raise WeightsError(f"{what} {path} does not exist")
    _check_torch_file(path, what)
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


def _check_torch_file(path: Path, what: str) -> None:
    """torch.save writes a zip archive (older versions a pickle); anything else (an ONNX model, a YAML
    file) would reach torch's unpickler and fail with a message about unsafe loading."""
    try:
        with open(path, "rb") as file:
            head = file.read(4)
    except OSError as error:
        raise WeightsError(f"cannot read {path} ({error.strerror}); expected a readable checkpoint") from None
    expected = "expected a file written by torch.save, such as a run's best.pt"
    if not head:
        raise WeightsError(f"{what} {path} is empty; {expected}")
    if not (head.startswith(b"PK") or head.startswith(b"\x80")):
        onnx = "; an ONNX model is read only by 'sceneseg predict'" if path.suffix.lower() == ".onnx" else ""
        raise WeightsError(f"cannot read {path}: not a PyTorch checkpoint ({expected}){onnx}")


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
    # A budget's run is compared by the epochs it gave (sized_config): train.minutes=15 that gave
    # 39 epochs and train.minutes=null train.epochs=39 are the same experiment.
    "train.minutes",
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


def sized_config(config: Config, last: dict[str, Any] | None) -> Config:
    """`config` with the epochs of the run whose last.pt holds `last` (None: a run not begun).

    A run sized by train.minutes keeps the epochs its budget gave it when it began (the config in
    last.pt), so that resuming it, on this machine or a faster one, continues the same run."""
    if last is None or config.train.minutes is None:
        return config
    stored = config_from_dict(last["config"]).train
    if stored.minutes != config.train.minutes:  # checkpoint_to_resume refuses this resume
        return config
    return dataclasses.replace(config, train=dataclasses.replace(config.train, epochs=stored.epochs))


def budget_off(config: Config) -> str:
    """What goes before train.epochs in advice to train a run longer: a budget (train.minutes) sized
    the run once, so a longer run gives the count instead."""
    return "train.minutes=null " if config.train.minutes is not None else ""


def run_state(run_dir: Path, config: Config, last: dict[str, Any] | None = None) -> RunState:
    """Whether `run_dir` holds no run ("new"), a run to resume ("partial") or a finished one.

    Finished: last.pt closes the run's last epoch (sized_config) with no part-way epoch after it, and
    the final evaluation wrote metrics.json. A run stopped during that evaluation is partial: resuming
    runs just the evaluation. `last` is last.pt's content, where the caller has read it already.
    """
    if last is None:
        if not (run_dir / "last.pt").is_file():
            return "new"
        last = load_checkpoint(run_dir / "last.pt")
    done = last["epoch"] == sized_config(config, last).train.epochs and "interrupted" not in last
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
    if config.train.minutes is not None and config.train.minutes != stored.train.minutes:
        was = "null" if stored.train.minutes is None else f"{stored.train.minutes:g}"
        raise ConfigError(
            f"--resume: train.minutes = {config.train.minutes:g}, but {run_dir} was begun with "
            f"train.minutes = {was}; a budget sizes the epochs once, when a run begins: resume with the "
            "run's train.minutes, or give train.minutes=null and the train.epochs to reach"
        )
    config = sized_config(config, resume)
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
    if run_state(run_dir, config, resume) == "finished":
        raise SceneSegError(
            f"--resume: {run_dir} already finished its {done} epoch(s) (metrics.json); give "
            f"{budget_off(config)}train.epochs=<more than {done}> to train longer, or choose another train.out_dir"
        )
    return resume
