"""sceneseg: semantic segmentation of driving scenes."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["load_model"]


def __getattr__(name: str) -> Any:
    # load_model pulls in torch and the training stack; resolving it on first use keeps
    # `import sceneseg` (the CLI's --help, version checks) light.
    if name == "load_model":
        from .api import load_model

        return load_model
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
