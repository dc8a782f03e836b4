"""Refusals logged at a bounded rate (SPEC.md §6).

Why: every refused message used to be one INFO line quoting the offender, so a
hostile client grew the log as fast as it could send. Refusal texts are already
clipped (``WireError``); this bounds their count: at most ``burst`` lines per
``window_s``, then one line saying how many were left out.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

__all__ = ["RefusalLog"]


class RefusalLog:
    """A token bucket in front of ``logger.info`` for refusals from any peer.

    One bucket for all peers on purpose: a peer is free to reconnect under a
    new identity, so a per-peer budget would bound nothing.
    """

    def __init__(self, logger: logging.Logger, *, burst: int = 20, window_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._log = logger
        self._burst = burst
        self._rate = burst / window_s
        self._clock = clock
        self._tokens = float(burst)
        self._last = clock()
        self.suppressed = 0

    def refused(self, text: str, *args: object) -> bool:
        """Log one refusal (``text % args``) if the budget allows; True when logged."""
        now = self._clock()
        self._tokens = min(float(self._burst), self._tokens + (now - self._last) * self._rate)
        self._last = now
        if self._tokens < 1.0:
            self.suppressed += 1
            return False
        self._tokens -= 1.0
        if self.suppressed:
            self._log.info("%d more refusals were not logged (rate limit)", self.suppressed)
            self.suppressed = 0
        self._log.info(text, *args)
        return True
