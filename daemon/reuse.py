"""What one job computed that the next job on the same photo can take over.

Why: an artist previews, changes a knob, previews again, then applies — every
job on the same layer. Each preview and the final Apply run at the same working
size (that is what makes a preview faithful), so they share work:

- ``content``: the photo reduced to the working size (decoding and shrinking
  a 24 MP layer is a good part of a preview's time);
- ``segmentation``: the segmenter's framed, cleaned person probability (every
  segmenter pass: whole frame, windows, reframing); only its refinement to the
  output's size is redone;
- ``faces``: the faces BlazeFace found on the working-size photo (the portrait
  pass's feature scale and ramp);
- ``network``: the style network's output at the working size for the same
  style and engine-facing knobs (strength, branch weights, stroke size);
  knobs applied after the network (likeness, preserve colour, structure,
  saturation) are re-applied, so changing one of those costs no network pass,
  and Apply after a preview with the same knobs runs no network at all.

The style's encoding is cached by the pipeline itself (per style key). Entries
are keyed by the sha256 of the layer's pixels (computed by the daemon, never
taken from a client), so an edited layer never meets a stale entry. Cached
tensors are shared: callers must not write into them.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

import numpy as np
import torch

__all__ = ["WorkCache", "content_digest"]

T = TypeVar("T")


def content_digest(content: np.ndarray) -> str:
    """sha256 of an H×W×C uint8 layer's shape and pixels (row by row when strided)."""
    digest = hashlib.sha256(f"{content.shape}".encode())
    if content.flags.c_contiguous:
        digest.update(memoryview(content).cast("B"))
    else:
        for row in content:
            digest.update(np.ascontiguousarray(row).data)
    return digest.hexdigest()


def _nbytes(value: Any) -> int:
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, np.ndarray):
        return value.nbytes
    if isinstance(value, tuple | list):
        return sum(_nbytes(v) for v in value)
    return 0


class WorkCache:
    """An LRU of intermediate results within a byte budget (at least the newest entry)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max(0, int(max_bytes))
        self._items: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._held = 0
        self._lock = threading.Lock()

    @property
    def held_bytes(self) -> int:
        return self._held

    def get_or_make(self, key: Hashable, make: Callable[[], T]) -> tuple[T, bool]:
        """(the cached value for ``key``, True), or (``make()``, False) after caching it."""
        with self._lock:
            hit = self._items.get(key)
            if hit is not None:
                self._items.move_to_end(key)
                return hit[0], True
        value = make()
        if self.max_bytes:
            size = _nbytes(value)
            with self._lock:
                old = self._items.pop(key, None)
                if old is not None:
                    self._held -= old[1]
                self._items[key] = (value, size)
                self._held += size
                while len(self._items) > 1 and self._held > self.max_bytes:
                    _, (_, evicted) = self._items.popitem(last=False)
                    self._held -= evicted
        return value, False

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._held = 0
