"""Configs written by older sceneseg versions, in today's form.

A checkpoint or run folder keeps the config it was trained with; `migrate_stored_config` reads the
old shapes of it, and `check_not_flat` names the new place of an old key in a file or override.
"""

from __future__ import annotations

from typing import Any

from .errors import ConfigError

# Per-dataset data keys of configs stored before data.options existed, and the option each became.
_FLAT_DATA_KEYS = {
    "resize": "resize",
    "label_policy": "policy",
    "split_mode": "split_mode",
    "val_ratio": "val_ratio",
    "split_seed": "split_seed",
    "class_names": "class_names",
    "palette": "palette",
    "images": "images",
    "masks": "masks",
}


def migrate_stored_config(tree: dict[str, Any]) -> dict[str, Any]:
    """A config stored by an older sceneseg (checkpoint, run folder) in today's form: its flat
    per-dataset data keys (`data.resize`, `data.label_policy`, ...) moved into data.options, nulls dropped."""
    data = tree.get("data")
    if not isinstance(data, dict) or not set(data) & set(_FLAT_DATA_KEYS):
        return tree
    data, options = dict(data), dict(data.get("options") or {})
    for old, new in _FLAT_DATA_KEYS.items():
        value = data.pop(old, None)
        if value is not None:
            options[new] = value
    return {**tree, "data": {**data, "options": options}}


def check_not_flat(tree: dict[str, Any]) -> None:
    """Files and overrides use data.options; name the new place of an old flat key."""
    data = tree.get("data")
    old = sorted(set(data) & set(_FLAT_DATA_KEYS)) if isinstance(data, dict) else []
    if old:
        raise ConfigError(
            f"data.{old[0]}: dataset options go under data.options now, as data.options.{_FLAT_DATA_KEYS[old[0]]}"
        )
