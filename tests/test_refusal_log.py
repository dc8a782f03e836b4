"""Refusal logging at a bounded rate (daemon/refusal_log.py), on a fake clock."""

from __future__ import annotations

import logging

from portrait_style.daemon.refusal_log import RefusalLog


def test_burst_then_one_line_per_refill_and_a_count_of_the_rest(caplog):
    now = [0.0]
    log = RefusalLog(logging.getLogger("test.refusals"), burst=5, window_s=10.0,
                     clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="test.refusals"):
        logged = [log.refused("refused %d", n) for n in range(100)]
        assert sum(logged) == 5 and log.suppressed == 95
        now[0] += 2.0                     # 5 per 10 s: one more line after 2 s
        assert log.refused("refused late")
    lines = [r.getMessage() for r in caplog.records]
    assert lines[:5] == [f"refused {n}" for n in range(5)]
    assert lines[5:] == ["95 more refusals were not logged (rate limit)", "refused late"]
    assert log.suppressed == 0
