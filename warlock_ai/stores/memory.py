"""In-process stores for development and tests (they do not survive a restart)."""

from __future__ import annotations

import threading
from typing import Any

from ..core.snapshots import snapshot_from_json
from .base import SnapshotStore


class MemorySnapshotStore(SnapshotStore):
    """Keeps each run's snapshot as JSON text in a dict.

    Snapshots go through the same JSON encoding as the database stores, so a state that
    would fail in production fails here too, and a loaded snapshot never aliases the live
    run's state.
    """

    def __init__(self) -> None:
        self._data: dict[str, str] = {}
        self._lock = threading.Lock()

    def load(self, run_id: str) -> Any | None:
        text = self._data.get(run_id)
        return snapshot_from_json(text) if text is not None else None

    def save(self, snapshot: Any) -> None:
        text = snapshot.to_json()
        with self._lock:
            self._data[snapshot.run_id] = text

    def delete(self, run_id: str) -> bool:
        with self._lock:
            return self._data.pop(run_id, None) is not None

    def list(self, prefix: str = "") -> list[str]:
        with self._lock:
            return sorted(k for k in self._data if k.startswith(prefix))

    def clear(self) -> None:
        with self._lock:
            self._data.clear()

    def __len__(self) -> int:
        return len(self._data)

    async def aload(self, run_id: str) -> Any | None:
        return self.load(run_id)

    async def asave(self, snapshot: Any) -> None:
        self.save(snapshot)

    async def adelete(self, run_id: str) -> bool:
        return self.delete(run_id)

    async def alist(self, prefix: str = "") -> list[str]:
        return self.list(prefix)
