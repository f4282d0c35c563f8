"""In-process drivers: ``MemoryCacheDriver`` (unbounded) and ``LRUCacheDriver`` (bounded,
least recently used first out). Both search vectors exactly, in Python."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from ..runs.serialization import loads
from .base import (
    DEFAULT_NAMESPACE,
    CacheDriver,
    CacheHit,
    rank,
)


@dataclass(frozen=True)
class _Entry:
    text: str  # the value as JSON: every get returns a fresh copy
    scope: str | None
    vector: tuple[float, ...] | None
    expires_at: float | None  # time.monotonic()

    def live(self, now: float) -> bool:
        return self.expires_at is None or now <= self.expires_at


class MemoryCacheDriver(CacheDriver):
    """A process-local cache for development and tests; it does not survive a restart."""

    supports_similarity = True
    blocking_io = False  # the async twins run in place: no I/O to wait for

    def __init__(self, dimensions: int | None = None) -> None:
        self.dimensions = dimensions
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple[str, str], _Entry] = OrderedDict()

    def get(self, key: str, *, namespace: str = DEFAULT_NAMESPACE, scope: str | None = None) -> Any:
        with self._lock:
            entry = self._live((namespace, key))
            if entry is None or entry.scope != scope:
                return None
            self._touch((namespace, key))
        return loads(entry.text)

    def _store(
        self,
        key: str,
        text: str,
        *,
        namespace: str,
        vector: tuple[float, ...] | None,
        ttl: float | None,
        scope: str | None,
    ) -> None:
        expires_at = None if ttl is None else time.monotonic() + ttl
        with self._lock:
            self._entries[(namespace, key)] = _Entry(text, scope, vector, expires_at)
            self._touch((namespace, key))
            self._evict()

    def delete(self, key: str, *, namespace: str = DEFAULT_NAMESPACE) -> None:
        with self._lock:
            self._entries.pop((namespace, key), None)

    def remove_namespace(self, namespace: str) -> None:
        with self._lock:
            for found in [k for k in self._entries if k[0] == namespace]:
                del self._entries[found]

    def _search(
        self,
        query: tuple[float, ...],
        *,
        namespace: str,
        top_k: int,
        threshold: float,
        scope: str | None,
    ) -> list[CacheHit]:
        now = time.monotonic()
        with self._lock:
            candidates = [
                (key, entry.text, entry.scope, entry.vector)
                for (ns, key), entry in self._entries.items()
                if ns == namespace
                and entry.vector is not None
                and entry.scope == scope
                and entry.live(now)
            ]
            hits = rank(query, candidates, top_k, threshold)
            for hit in hits:
                self._touch((namespace, hit.key))
        return [CacheHit(h.key, loads(h.value), h.score, h.scope) for h in hits]

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    # --- hooks for the LRU driver (called with the lock held) ---------------------------

    def _live(self, slot: tuple[str, str]) -> _Entry | None:
        entry = self._entries.get(slot)
        if entry is not None and not entry.live(time.monotonic()):
            del self._entries[slot]
            return None
        return entry

    def _touch(self, slot: tuple[str, str]) -> None:
        pass

    def _evict(self) -> None:
        pass


class LRUCacheDriver(MemoryCacheDriver):
    """A process-local cache of at most ``max_entries``: past it, the entry least recently
    read (``get`` or a ``similar`` hit) or written goes first."""

    def __init__(self, max_entries: int = 1000, dimensions: int | None = None) -> None:
        if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 1:
            raise ValueError(f"max_entries must be an int >= 1, not {max_entries!r}")
        super().__init__(dimensions=dimensions)
        self.max_entries = max_entries

    def _touch(self, slot: tuple[str, str]) -> None:
        self._entries.move_to_end(slot)

    def _evict(self) -> None:
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
