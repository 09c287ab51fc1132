"""Exceptions that carry a message meant for the user.

The CLI prints any of these as one line (no traceback), so every message must say what was wrong,
with the file or value involved, and what was expected.
"""


class SceneSegError(Exception):
    """Base class for errors caused by user input (files, config values, checkpoints)."""


class ConfigError(SceneSegError):
    """A config file or override is malformed, unknown or out of range."""


class DataError(SceneSegError):
    """A dataset file is missing, unreadable or inconsistent."""


class WeightsError(SceneSegError):
    """A weights file or checkpoint does not fit the model it is loaded into."""


class OutputError(SceneSegError):
    """An output path cannot be written: a folder where a file goes, a file where a folder goes, no permission."""
