"""The store contracts. Sync methods are abstract; the ``a``-prefixed twins default to
running the sync method in a worker thread and are overridden where a native async client
exists. Stores declare what they can do with ``supports_*`` flags."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from asgiref.sync import sync_to_async


class SnapshotStore(ABC):
    """Holds the live snapshot of each run: one per ``run_id``; ``save`` replaces it."""

    #: ``list(prefix)`` is available.
    supports_list: bool = True
    #: Runs are leased to one worker at a time and writes are fenced.
    supports_leases: bool = False
    #: Entries can expire.
    supports_ttl: bool = False

    @abstractmethod
    def load(self, run_id: str) -> Any | None:
        """The snapshot of ``run_id``, or ``None``."""

    @abstractmethod
    def save(self, snapshot: Any) -> None:
        """Insert or replace the snapshot of ``snapshot.run_id`` (one write, all or nothing)."""

    @abstractmethod
    def delete(self, run_id: str) -> bool:
        """Remove the snapshot; True when there was one."""

    @abstractmethod
    def list(self, prefix: str = "") -> list[str]:
        """Run ids starting with ``prefix`` (matched literally), sorted."""

    async def aload(self, run_id: str) -> Any | None:
        return await sync_to_async(self.load)(run_id)

    async def asave(self, snapshot: Any) -> None:
        await sync_to_async(self.save)(snapshot)

    async def adelete(self, run_id: str) -> bool:
        return await sync_to_async(self.delete)(run_id)

    async def alist(self, prefix: str = "") -> list[str]:
        return await sync_to_async(self.list)(prefix)
