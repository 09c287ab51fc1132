"""sceneseg: semantic segmentation of driving scenes."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["load_model", "predict", "colorize", "overlay"]

# name -> submodule that defines it
_LAZY = {"load_model": "api", "predict": "api", "colorize": "visualize", "overlay": "visualize"}


def __getattr__(name: str) -> Any:
    # These pull in torch and OpenCV; resolving them on first use keeps
    # `import sceneseg` (the CLI's --help, version checks) light.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
