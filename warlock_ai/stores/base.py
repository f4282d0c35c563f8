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

    def lease(self, run_id: str) -> tuple[str, Any] | None:
        """``(owner, expires_at)`` of the run's live or expired lease, or ``None``."""
        return None

    def renew_lease(self, run_id: str, owner: str) -> bool:
        """Push the expiry of ``owner``'s lease on the run ``lease_seconds`` ahead, without
        writing a snapshot (the heartbeat of a long step). False when ``owner`` no longer
        holds it: another worker took the run over."""
        return True

    def request_cancel(self, run_id: str, reason: str = "") -> bool:
        """Record that an operator wants the run cancelled; False when it is not running.

        The worker learns it from its next fenced write (``save`` returns a
        ``CancelRequest``) and ends the run ``cancelled``; the terminal write clears it.
        """
        raise NotImplementedError(f"{type(self).__name__} does not support cancel requests")

    async def aload(self, run_id: str) -> Any | None:
        return await sync_to_async(self.load)(run_id)

    async def asave(self, snapshot: Any) -> Any:
        return await sync_to_async(self.save)(snapshot)

    async def adelete(self, run_id: str) -> bool:
        return await sync_to_async(self.delete)(run_id)

    async def alist(self, prefix: str = "") -> list[str]:
        return await sync_to_async(self.list)(prefix)


class CheckpointStore(ABC):
    """Holds orchestrator sessions: one immutable record per ``(name, session_id, turn_index)``.

    ``save`` appends and never overwrites; the latest turn is the session's live state.
    """

    #: ``list(name, prefix)`` is available.
    supports_list: bool = True
    #: ``prune(name, session_id, keep_from_turn)`` is available.
    supports_prune: bool = True
    #: Entries can expire.
    supports_ttl: bool = False

    @abstractmethod
    def load(self, name: str, session_id: str) -> Any | None:
        """The record with the highest ``turn_index`` of the session, or ``None``."""

    @abstractmethod
    def save(self, record: Any) -> None:
        """Append ``record``; ``CheckpointConflictError`` if its turn is already stored."""

    @abstractmethod
    def delete(self, name: str, session_id: str) -> int:
        """Remove every record of the session; returns how many were removed."""

    @abstractmethod
    def list(self, name: str, prefix: str = "") -> list[str]:
        """Distinct session ids of ``name`` starting with ``prefix`` (literal), sorted."""

    @abstractmethod
    def prune(self, name: str, session_id: str, keep_from_turn: int) -> int:
        """Delete the session's records with ``turn_index < keep_from_turn``; returns how many.

        Anything but a non-negative int (a bool, a float, a negative number) is a no-op.
        """

    @abstractmethod
    def history(self, name: str, session_id: str) -> list[Any]:
        """Every record of the session, ascending by ``turn_index``."""

    async def aload(self, name: str, session_id: str) -> Any | None:
        return await sync_to_async(self.load)(name, session_id)

    async def asave(self, record: Any) -> None:
        await sync_to_async(self.save)(record)

    async def adelete(self, name: str, session_id: str) -> int:
        return await sync_to_async(self.delete)(name, session_id)

    async def alist(self, name: str, prefix: str = "") -> list[str]:
        return await sync_to_async(self.list)(name, prefix)

    async def aprune(self, name: str, session_id: str, keep_from_turn: int) -> int:
        return await sync_to_async(self.prune)(name, session_id, keep_from_turn)

    async def ahistory(self, name: str, session_id: str) -> list[Any]:
        return await sync_to_async(self.history)(name, session_id)
