"""Saving and loading training checkpoints.

A checkpoint is a plain dict of tensors, numbers, strings and lists, so it loads with
`torch.load(..., weights_only=True)`: opening a checkpoint never runs code from the file.
It is written to a temporary file first and renamed into place, so an interrupted save leaves the
previous checkpoint intact instead of a truncated one.
"""

from __future__ import annotations

import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

import torch

from .errors import WeightsError

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
    if not path.is_file():
        raise WeightsError(f"checkpoint {path} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights only load failed" not in str(exc).lower():
            raise WeightsError(f"cannot read {path}: not a PyTorch checkpoint ({str(exc).splitlines()[0]})") from None
        raise WeightsError(
            f"refusing to load {path}: it needs arbitrary unpickling, which could run code from the "
            f"file; only tensors, numbers, strings and containers are accepted ({str(exc).splitlines()[0]})"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise WeightsError(f"cannot read {path}: not a PyTorch checkpoint or truncated ({exc})") from None


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
