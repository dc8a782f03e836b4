"""Recently used style pixels by style key, within a byte budget (SPEC.md §5 "Style cache").

Why the daemon keeps pixels at all: the pipeline caches style *encodings*, but
a request that sends only ``style_key`` must still become a complete
``StylizeJob``. Why a compact copy on insert: a received style is a view into
its ZeroMQ frame (three of four channels, rows padded to any stride); keeping
the view would keep the whole frame alive behind the few bytes the budget
counts.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np

__all__ = ["StyleCache"]


class StyleCache:
    """LRU by key; the budget counts exactly the bytes held (always ≥ one style)."""

    def __init__(self, max_bytes: int) -> None:
        self._items: OrderedDict[str, np.ndarray] = OrderedDict()
        self._max_bytes = max_bytes
        self._held = 0
        self._lock = threading.Lock()

    @property
    def held_bytes(self) -> int:
        return self._held

    def get(self, key: str) -> np.ndarray | None:
        with self._lock:
            style = self._items.get(key)
            if style is not None:
                self._items.move_to_end(key)
            return style

    def put(self, key: str, style: np.ndarray) -> None:
        style = np.array(style, order="C", copy=True)
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._held -= old.nbytes
            self._items[key] = style
            self._held += style.nbytes
            while len(self._items) > 1 and self._held > self._max_bytes:
                _, evicted = self._items.popitem(last=False)
                self._held -= evicted.nbytes
