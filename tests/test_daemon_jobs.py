"""The daemon's job queue and style cache on their own (no sockets)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from portrait_style.daemon.jobs import Job, JobQueue, QueueFull
from portrait_style.daemon.style_cache import StyleCache
from portrait_style.protocol.messages import Stylize


def _job(peer: bytes, request_id: str) -> Job:
    return Job(peer=peer, message=Stylize(id=request_id), style=np.zeros((1, 1, 3), np.uint8),
               verify_key=False)


def test_style_cache_holds_compact_copies_and_counts_them():
    frame = np.zeros((1, 1 << 20, 4), np.uint8)        # a 4 MiB "received frame"
    view = frame[:, :1, :3]                            # the 3-byte style inside it
    cache = StyleCache(max_bytes=10)
    cache.put("a", view)
    held = cache.get("a")
    assert held is not None and held.base is None and held.nbytes == 3
    assert cache.held_bytes == 3
    frame[0, 0, 0] = 99                                # the frame may be reused freely
    assert cache.get("a")[0, 0, 0] == 0


def test_style_cache_evicts_least_recently_used_within_budget():
    cache = StyleCache(max_bytes=2 * 12)
    for key in "abc":
        cache.put(key, np.zeros((2, 2, 3), np.uint8))   # 12 bytes each
    assert cache.get("a") is None and cache.held_bytes == 24
    cache.get("b")
    cache.put("d", np.zeros((2, 2, 3), np.uint8))
    assert cache.get("c") is None and cache.get("b") is not None
    cache.put("big", np.zeros((10, 10, 3), np.uint8))   # over budget alone: kept alone
    assert cache.get("big") is not None and cache.held_bytes == 300


def test_queue_positions_limits_and_ids_per_peer():
    jobs = JobQueue(max_waiting=2)
    assert jobs.push(_job(b"p", "1")) == 0               # nothing running: starts at once
    first = jobs.take(threading.Event())
    assert first is not None and first.message.id == "1"
    assert jobs.push(_job(b"p", "2")) == 1
    assert jobs.push(_job(b"q", "2")) == 2               # same id, other peer: another job
    with pytest.raises(QueueFull):
        jobs.push(_job(b"p", "3"))
    assert jobs.in_flight(b"p", "1") and jobs.in_flight(b"q", "2")
    assert not jobs.in_flight(b"q", "1")
    assert jobs.counts() == (2, 1)


def test_queue_cancel_and_drop_peer():
    jobs = JobQueue(max_waiting=4)
    jobs.push(_job(b"p", "run"))
    running = jobs.take(threading.Event())
    jobs.push(_job(b"p", "wait"))
    jobs.push(_job(b"q", "other"))
    removed, flagged = jobs.cancel(b"p", "wait")
    assert removed is not None and flagged is None
    removed, flagged = jobs.cancel(b"q", "run")          # not q's job
    assert removed is None and flagged is None and not running.cancel.is_set()
    jobs.push(_job(b"p", "again"))
    dropped, flagged = jobs.drop_peer(b"p")
    assert [j.message.id for j in dropped] == ["again"] and flagged is running
    assert running.cancel.is_set()
    assert [j.message.id for j in jobs.waiting()] == ["other"]
    jobs.finished(running)
    assert jobs.running() is None


def test_queue_close_stops_the_worker_and_returns_the_waiting():
    jobs = JobQueue(max_waiting=4)
    jobs.push(_job(b"p", "a"))
    jobs.push(_job(b"p", "b"))
    running = jobs.take(threading.Event())
    waiting, still = jobs.close()
    assert [j.message.id for j in waiting] == ["b"] and still is running
    assert running.cancel.is_set()
    assert jobs.take(threading.Event()) is None
