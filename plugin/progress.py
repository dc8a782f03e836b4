"""Progress display for the command-line host.

Why its own module: the daemon reports ``(stage, fraction)`` events; a person at
a terminal wants one bar redrawn in place, while a log file or CI capture wants
a few plain lines (a carriage-return bar there becomes one unreadable line).
The same callable serves both, chosen by whether the stream is a terminal.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

__all__ = ["ProgressBar"]


class ProgressBar:
    """A ``(stage, fraction)`` callback that draws a bar on a tty, lines otherwise.

    fraction < 0 means "unknown" (e.g. waiting for a daemon to start): the tty
    shows the stage and elapsed seconds instead of a bar. Safe to call from the
    client's receiving thread. Use as a context manager (or call ``close``) to
    end the bar's line.
    """

    def __init__(self, stream: TextIO | None = None, *, width: int = 28,
                 tty: bool | None = None, min_interval_s: float = 0.05) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self._tty = self._stream.isatty() if tty is None else tty
        self._width = width
        self._min_interval = min_interval_s
        # re-entrant: a SIGINT handler (same thread) may print a message while
        # the main thread is inside a draw; a plain Lock would deadlock there
        self._lock = threading.RLock()
        self._last_draw = 0.0
        self._last_stage: str | None = None
        self._last_decile = -1
        self._drawn = False
        self._started = time.monotonic()

    def __call__(self, stage: str, fraction: float) -> None:
        with self._lock:
            if self._tty:
                self._draw_tty(stage, fraction)
            else:
                self._draw_plain(stage, fraction)

    def _draw_tty(self, stage: str, fraction: float) -> None:
        now = time.monotonic()
        final = fraction >= 1.0
        if (stage == self._last_stage and not final
                and now - self._last_draw < self._min_interval):
            return
        self._last_draw, self._last_stage = now, stage
        if fraction < 0:
            text = f"{stage} ({now - self._started:.0f} s)"
        else:
            f = min(max(fraction, 0.0), 1.0)
            filled = round(f * self._width)
            text = f"[{'#' * filled}{'.' * (self._width - filled)}] {f * 100:3.0f}% {stage}"
        self._stream.write("\r\x1b[2K" + text)
        self._stream.flush()
        self._drawn = True

    def _draw_plain(self, stage: str, fraction: float) -> None:
        # one line per new stage, plus one per 10 % within a long stage
        decile = -1 if fraction < 0 else int(min(max(fraction, 0.0), 1.0) * 10)
        if stage == self._last_stage and decile <= self._last_decile:
            return
        self._last_stage, self._last_decile = stage, decile
        text = stage if fraction < 0 else f"{min(max(fraction, 0.0), 1.0) * 100:3.0f}% {stage}"
        self._stream.write(f"portrait-style: {text}\n")
        self._stream.flush()

    def message(self, text: str) -> None:
        """Print a line without garbling the bar (the bar redraws on the next event)."""
        with self._lock:
            if self._tty and self._drawn:
                self._stream.write("\r\x1b[2K")
                self._drawn = False
                self._last_stage = None
            self._stream.write(text + "\n")
            self._stream.flush()

    def close(self) -> None:
        """End the bar's line so later output starts on a fresh one."""
        with self._lock:
            if self._tty and self._drawn:
                self._stream.write("\n")
                self._stream.flush()
                self._drawn = False

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
