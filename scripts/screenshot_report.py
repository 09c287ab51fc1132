#!/usr/bin/env python3
"""Full-page PNG screenshot of an HTML file (e.g. a sceneseg report) with headless Chromium.

    python scripts/screenshot_report.py runs/camvid_study_cpu/report/index.html report.png [--width 1280]

Chromium's own --screenshot flag captures only the window, so this script drives the browser over
the DevTools protocol on a pipe (--remote-debugging-pipe: no port, no websocket library): it loads
the page, measures its full height, sizes the viewport to it and captures. The browser runs with
--headless --no-sandbox --disable-gpu --disable-background-networking: it may not touch the network,
so a page that needed it would show up broken in the picture.
"""

from __future__ import annotations

import argparse
import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


class Browser:
    """A headless Chromium whose DevTools messages go over fds 3 (to it) and 4 (from it)."""

    def __init__(self, executable: str, profile: str) -> None:
        to_browser, self._to_browser = os.pipe()
        self._from_browser, from_browser = os.pipe()
        # Move the child's ends above 9 first, so that putting them on 3 and 4 cannot overwrite
        # one with the other.
        to_browser, from_browser = (_above(fd, 10) for fd in (to_browser, from_browser))

        def map_fds() -> None:  # in the child: its fd 3 reads our commands, fd 4 writes replies
            os.dup2(to_browser, 3)
            os.dup2(from_browser, 4)

        # pass_fds=(3, 4): the child closes every other descriptor after map_fds has run.
        self.process = subprocess.Popen(
            [
                executable,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--remote-debugging-pipe",
                "--hide-scrollbars",
                f"--user-data-dir={profile}",
                "about:blank",
            ],
            pass_fds=(3, 4),
            preexec_fn=map_fds,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_browser)
        os.close(from_browser)
        self._next_id, self._buffer, self.events = 0, b"", []

    def call(self, method: str, session: str | None = None, timeout: float = 60.0, **params) -> dict:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read(timeout)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error'].get('message')}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, event: str, timeout: float = 60.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            for i, seen in enumerate(self.events):
                if seen.get("method") == event:
                    return self.events.pop(i)
            self.events.append(self._read(deadline - time.monotonic()))

    def _read(self, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while b"\0" not in self._buffer:
            ready, _, _ = select.select([self._from_browser], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise TimeoutError("Chromium did not answer in time")
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium exited (is it installed and runnable as this user?)")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def close(self) -> None:
        try:
            self.call("Browser.close", timeout=10)
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def _above(fd: int, minimum: int) -> int:
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, minimum)
    os.close(fd)
    return moved


def screenshot(page: Path, out: Path, width: int = 1280, executable: str | None = None) -> tuple[int, int]:
    """Write a full-page PNG of `page` to `out`; returns its (width, height) in CSS pixels."""
    executable = executable or next((b for b in BROWSERS if shutil.which(b)), None)
    if executable is None:
        raise FileNotFoundError("no Chromium found (Debian: apt-get install chromium)")
    with tempfile.TemporaryDirectory(prefix="sceneseg-chromium-") as profile:
        browser = Browser(executable, profile)
        try:
            target = browser.call("Target.createTarget", url="about:blank")["targetId"]
            session = browser.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
            browser.call("Page.enable", session)
            browser.call(
                "Emulation.setDeviceMetricsOverride",
                session,
                width=width,
                height=800,
                deviceScaleFactor=1,
                mobile=False,
            )
            browser.call("Page.navigate", session, url=page.resolve().as_uri())
            browser.wait_for("Page.loadEventFired")
            size = browser.call("Page.getLayoutMetrics", session)["cssContentSize"]
            height = int(size["height"] + 0.5)
            browser.call(
                "Emulation.setDeviceMetricsOverride",
                session,
                width=width,
                height=height,
                deviceScaleFactor=1,
                mobile=False,
            )
            shot = browser.call("Page.captureScreenshot", session, format="png", captureBeyondViewport=True)
        finally:
            browser.close()
    partial = out.with_name(f".{out.name}.partial")
    partial.write_bytes(base64.b64decode(shot["data"]))
    os.replace(partial, out)  # a failed run leaves no truncated PNG behind
    return width, height


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("page", type=Path, help="an HTML file")
    parser.add_argument("out", type=Path, help="the PNG to write")
    parser.add_argument("--width", type=int, default=1280, help="viewport width in CSS pixels (default 1280)")
    parser.add_argument("--browser", help=f"Chromium executable (default: the first of {', '.join(BROWSERS)} on PATH)")
    args = parser.parse_args(argv)
    if not args.page.is_file():
        print(f"screenshot_report: {args.page} is not a file; expected an HTML report", file=sys.stderr)
        return 2
    try:
        width, height = screenshot(args.page, args.out, args.width, args.browser)
    except (FileNotFoundError, RuntimeError, TimeoutError) as exc:
        print(f"screenshot_report: {exc}", file=sys.stderr)
        return 2
    print(f"written {args.out}: {width}x{height} px full page of {args.page}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
