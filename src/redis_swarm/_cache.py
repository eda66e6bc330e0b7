"""The in-process cache of context texts, keyed by content hash.

A context version is immutable and named by its hash, so a cached copy never goes stale: an
unchanged context costs one small round trip (read the pointer) and no transfer.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

__all__ = ["ContextCache"]


class ContextCache:
    """A byte-bounded LRU of ``version -> bytes``; safe to share between threads."""

    def __init__(self, max_bytes: int = 256 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def get(self, version: str) -> bytes | None:
        with self._lock:
            data = self._items.get(version)
            if data is not None:
                self._items.move_to_end(version)
            return data

    def put(self, version: str, data: bytes) -> None:
        if len(data) > self.max_bytes:
            return
        with self._lock:
            old = self._items.pop(version, None)
            if old is not None:
                self._size -= len(old)
            self._items[version] = data
            self._size += len(data)
            while self._size > self.max_bytes:
                _, evicted = self._items.popitem(last=False)
                self._size -= len(evicted)

    def __len__(self) -> int:
        return len(self._items)
