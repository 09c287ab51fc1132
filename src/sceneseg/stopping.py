"""Stopping a training run cleanly on SIGINT (Ctrl-C) and SIGTERM (schedulers, `kill`, torchrun).

The handlers only record the request; the training loop polls it after every iteration (and every
rank learns of it through the all-reduce that follows each step, so all stop at the same
iteration), writes a checkpoint that `--resume` continues exactly, and raises TrainingStopped.
The process then exits with 128 + the signal number (130 for SIGINT, 143 for SIGTERM), as a
process ended by that signal would, so schedulers and shells see that the run did not finish.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    """Callable for the training loop's `should_stop`: true once a stop signal has arrived."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def __call__(self) -> bool:
        return self.signum is not None


class TrainingStopped(Exception):
    """Training stopped on request `where` (e.g. "after iteration 2 of 6 of epoch 1"), after
    writing `checkpoint`, which `--resume` continues (None: before the run wrote anything)."""

    def __init__(self, checkpoint: Path | None, where: str) -> None:
        # None: stopped before anything was written (train.minutes' probe); the run starts afresh.
        done = "nothing was written" if checkpoint is None else f"{checkpoint} holds the run so far"
        super().__init__(f"training stopped {where}; {done}")
        self.checkpoint, self.where = checkpoint, where


@contextlib.contextmanager
def stop_on_signals(request: StopRequest | None = None) -> Iterator[StopRequest]:
    """Within the block, SIGINT/SIGTERM set `request` instead of ending the process; the previous
    handlers come back afterwards."""
    request = request or StopRequest()
    if threading.current_thread() is not threading.main_thread():
        # Python lets only the main thread install handlers; elsewhere signals keep their defaults.
        yield request
        return

    def handler(signum: int, frame: object) -> None:
        # Repeats are ignored: under torchrun a Ctrl-C reaches each worker twice (from the terminal
        # and forwarded by torchrun), and aborting on the second would lose the checkpoint.
        if request.signum is None:
            request.signum = signum

    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    try:
        yield request
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
