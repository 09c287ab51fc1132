"""Type checks of plain values (parsed YAML) against type annotations.

The config's dataclass fields are checked with these, and so are dataset options against their
constructor's annotations (builders.dataset_options): one checker, one set of messages.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import difflib
import types
import typing
from typing import Any

from .errors import ConfigError


def check_type(value: Any, annotation: Any, key: str) -> Any:
    """Return `value` converted to `annotation` where that is lossless, else raise ConfigError.

    Also checks dataset options against their constructor's annotations (builders.dataset_options),
    so sequences (`Sequence[str]`, `tuple[int, int]`) become tuples and mappings stay as they are.
    """
    if annotation is Any:
        return value
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        if value is None and type(None) in options:
            return None
        real = [o for o in options if o is not type(None)]
        if len(real) == 1:  # "X | None": X's own message says more than "X or null"
            return check_type(value, real[0], key)
        for option in options:
            if option is type(None):
                continue
            try:
                return check_type(value, option, key)
            except ConfigError:
                pass
        names = " or ".join("null" if o is type(None) else getattr(o, "__name__", str(o)) for o in options)
        raise ConfigError(f"{key}: expected {names}, got {value!r}")
    if origin in (tuple, collections.abc.Sequence):
        item = typing.get_args(annotation)[0]
        if isinstance(value, (list, tuple)):
            return tuple(check_type(v, item, f"{key}[{i}]") for i, v in enumerate(value))
        raise ConfigError(f"{key}: expected a list of {getattr(item, '__name__', item)}, got {value!r}")
    if origin is dict:
        if isinstance(value, dict) and all(isinstance(k, str) for k in value):
            item = typing.get_args(annotation)[1]
            return {k: check_type(v, item, f"{key}.{k}") for k, v in value.items()}
        raise ConfigError(f"{key}: expected a mapping of names to values, got {value!r}")
    if annotation is bool:
        if isinstance(value, bool):
            return value
    elif annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif annotation is float:
        # YAML reads "1e-4" as a string (YAML 1.1), so accept numeric strings for floats.
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    elif annotation is str:
        if isinstance(value, str):
            return value
    raise ConfigError(f"{key}: expected {annotation.__name__}, got {value!r}")


def build_dataclass(cls: type, values: dict[str, Any], prefix: str) -> Any:
    """`cls(**values)` once every key is known and every value has its field's type (nested
    dataclasses from nested mappings); errors name the key as `prefix` + key."""
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        where = prefix.rstrip(".") or "top level"
        hint = next((hint for key in unknown if (hint := did_you_mean(key, known, prefix))), "")
        raise ConfigError(
            f"unknown key(s) {', '.join(prefix + k for k in unknown)} in {where}{hint} "
            f"(known keys: {', '.join(sorted(known))})"
        )
    kwargs = {}
    for name, value in values.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            if not isinstance(value, dict):
                raise ConfigError(f"{prefix}{name}: expected a mapping of keys, got {value!r}")
            kwargs[name] = build_dataclass(hint, value, f"{prefix}{name}.")
        else:
            kwargs[name] = check_type(value, hint, prefix + name)
    return cls(**kwargs)


def did_you_mean(name: str, choices: typing.Iterable[str], prefix: str = "") -> str:
    """ "; did you mean X?" for the choice closest to a mistyped `name`, or "" when none is close."""
    close = difflib.get_close_matches(name, list(choices), n=1)
    return f"; did you mean {prefix}{close[0]}?" if close else ""
