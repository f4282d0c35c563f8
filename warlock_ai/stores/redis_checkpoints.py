"""The checkpoint store on Redis: append-only turns, one Lua script per write.

Per ``(name, session)``: a hash ``<prefix>rows:<name>:<session>`` mapping each turn index to
its record's JSON (``HSETNX``: a turn is written once, never replaced), a sorted set
``<prefix>turns:<name>:<session>`` of the turn indexes, and the orchestrator's session index,
the set ``<prefix>sessions:<name>``; while a turn runs, its session lock's token at
``<prefix>lock:<name>:<session>`` (``session_locks.RedisSessionLock``). Names and session ids
are written length-prefixed (``6:triage``), so ids containing ``:`` cannot make two sessions
share a key.
"""

from __future__ import annotations

import builtins
from typing import Any

from ..core.orchestrator.checkpoints import (
    CheckpointRecord,
    checkpoint_from_json,
    conflict_error,
    valid_threshold,
)
from ..core.orchestrator.locks import SessionLock
from .base import CheckpointStore
from .redis_connection import Connection, as_text, check_ttl
from .redis_scripts import (
    append_checkpoint,
    delete_session,
    forget_expired,
    latest_checkpoint,
    prune_session,
)

__all__ = ["CHECKPOINT_PREFIX", "RedisCheckpointStore"]

CHECKPOINT_PREFIX = "warlock:checkpoint:"


def _field(text: str) -> str:
    """Length-prefixed, so ``a:b`` + ``c`` and ``a`` + ``b:c`` give different keys."""
    return f"{len(text)}:{text}"


class RedisCheckpointStore(CheckpointStore):
    """Append-only checkpoint rows in Redis; an append is one Lua script (``HSETNX`` + index)."""

    supports_list = True
    supports_ttl = True

    def __init__(
        self,
        *,
        client: Any = None,
        url: str | None = None,
        async_client: Any = None,
        prefix: str = CHECKPOINT_PREFIX,
        ttl: int | None = None,
    ) -> None:
        self._conn = Connection(type(self).__name__, client, async_client, url)
        self.prefix = prefix
        self.ttl = check_ttl(ttl)

    def __repr__(self) -> str:
        return f"<RedisCheckpointStore {self._conn.url} prefix={self.prefix!r}>"

    def make_session_lock(self) -> SessionLock:
        """A Redis token lock on this store's client, its keys under the store's prefix."""
        from .session_locks import RedisSessionLock

        return RedisSessionLock(client=self._conn.client, prefix=f"{self.prefix}lock:")

    def close(self) -> None:
        """Close the connections this store opened from its URL (a passed client is left open)."""
        self._conn.close()

    async def aclose(self) -> None:
        """``close()``, and close this event loop's async connections."""
        await self._conn.aclose()

    def keys(self, name: str, session_id: str) -> tuple[str, str, str]:
        """``(rows, turns, sessions)``: the session's hash, its turn index, the session index."""
        session = f"{_field(name)}:{_field(session_id)}"
        return (
            f"{self.prefix}rows:{session}",
            f"{self.prefix}turns:{session}",
            f"{self.prefix}sessions:{_field(name)}",
        )

    # --- append ----------------------------------------------------------------------------

    def _append_args(self, record: CheckpointRecord) -> tuple[list[str], list[Any]]:
        turn = record.turn_index
        if isinstance(turn, bool) or not isinstance(turn, int):
            raise ValueError(f"turn_index must be an int, not {turn!r}")
        keys = list(self.keys(record.orchestrator_name, record.session_id))
        return keys, [turn, record.to_json(), record.session_id, self.ttl or 0]

    def save(self, record: CheckpointRecord) -> None:
        keys, args = self._append_args(record)
        with self._conn.errors("checkpoint save", keys[0]):
            added = append_checkpoint(self._conn.client, keys, args)
        if not added:
            raise conflict_error(*record.key)

    async def asave(self, record: CheckpointRecord) -> None:
        client = self._conn.async_client()
        if client is None:
            return await super().asave(record)
        keys, args = self._append_args(record)
        with self._conn.errors("checkpoint save", keys[0]):
            added = await append_checkpoint.run_async(client, keys, args)
        if not added:
            raise conflict_error(*record.key)

    # --- read ------------------------------------------------------------------------------

    def load(self, name: str, session_id: str) -> CheckpointRecord | None:
        keys = self.keys(name, session_id)[:2]
        with self._conn.errors("checkpoint load", keys[0]):
            text = latest_checkpoint(self._conn.client, keys, [])
        return checkpoint_from_json(text) if text is not None else None

    async def aload(self, name: str, session_id: str) -> CheckpointRecord | None:
        client = self._conn.async_client()
        if client is None:
            return await super().aload(name, session_id)
        keys = self.keys(name, session_id)[:2]
        with self._conn.errors("checkpoint load", keys[0]):
            text = await latest_checkpoint.run_async(client, keys, [])
        return checkpoint_from_json(text) if text is not None else None

    @staticmethod
    def _history(rows: dict[Any, Any]) -> list[CheckpointRecord]:
        ordered = sorted(rows.items(), key=lambda item: int(item[0]))
        return [checkpoint_from_json(text) for _, text in ordered]

    def history(self, name: str, session_id: str) -> list[CheckpointRecord]:
        key = self.keys(name, session_id)[0]
        with self._conn.errors("checkpoint history", key):
            rows = self._conn.client.hgetall(key)
        return self._history(rows)

    async def ahistory(self, name: str, session_id: str) -> list[CheckpointRecord]:
        client = self._conn.async_client()
        if client is None:
            return await super().ahistory(name, session_id)
        key = self.keys(name, session_id)[0]
        with self._conn.errors("checkpoint history", key):
            rows = await client.hgetall(key)
        return self._history(rows)

    # --- list: the session index, less sessions whose rows expired -------------------------

    @staticmethod
    def _candidates(members: set[Any], prefix: str) -> list[str]:
        return sorted(s for s in map(as_text, members) if s.startswith(prefix))

    def list(self, name: str, prefix: str = "") -> list[str]:
        index = self.keys(name, "")[2]
        client = self._conn.client
        with self._conn.errors("checkpoint list", index):
            sessions = self._candidates(client.smembers(index), prefix)
            pipe = client.pipeline(transaction=False)
            for session_id in sessions:
                pipe.exists(self.keys(name, session_id)[0])
            exists = pipe.execute() if sessions else []
            expired = [s for s, found in zip(sessions, exists, strict=True) if not found]
            if expired:
                rows = [self.keys(name, s)[0] for s in expired]
                forget_expired(client, [index, *rows], expired)
        return [s for s, found in zip(sessions, exists, strict=True) if found]

    async def alist(self, name: str, prefix: str = "") -> builtins.list[str]:
        client = self._conn.async_client()
        if client is None:
            return await super().alist(name, prefix)
        index = self.keys(name, "")[2]
        with self._conn.errors("checkpoint list", index):
            sessions = self._candidates(await client.smembers(index), prefix)
            pipe = client.pipeline(transaction=False)
            for session_id in sessions:
                pipe.exists(self.keys(name, session_id)[0])
            exists = await pipe.execute() if sessions else []
            expired = [s for s, found in zip(sessions, exists, strict=True) if not found]
            if expired:
                rows = [self.keys(name, s)[0] for s in expired]
                await forget_expired.run_async(client, [index, *rows], expired)
        return [s for s, found in zip(sessions, exists, strict=True) if found]

    # --- delete, prune ---------------------------------------------------------------------

    def delete(self, name: str, session_id: str) -> int:
        keys = self.keys(name, session_id)
        with self._conn.errors("checkpoint delete", keys[0]):
            return int(delete_session(self._conn.client, keys, [session_id]))

    async def adelete(self, name: str, session_id: str) -> int:
        client = self._conn.async_client()
        if client is None:
            return await super().adelete(name, session_id)
        keys = self.keys(name, session_id)
        with self._conn.errors("checkpoint delete", keys[0]):
            return int(await delete_session.run_async(client, keys, [session_id]))

    def prune(self, name: str, session_id: str, keep_from_turn: Any) -> int:
        """Delete the turns below ``keep_from_turn``; anything but a turn index is a no-op."""
        if not valid_threshold(keep_from_turn):
            return 0
        keys = self.keys(name, session_id)
        with self._conn.errors("checkpoint prune", keys[0]):
            return int(prune_session(self._conn.client, keys, [keep_from_turn, session_id]))

    async def aprune(self, name: str, session_id: str, keep_from_turn: Any) -> int:
        client = self._conn.async_client()
        if client is None:
            return await super().aprune(name, session_id, keep_from_turn)
        if not valid_threshold(keep_from_turn):
            return 0
        keys = self.keys(name, session_id)
        with self._conn.errors("checkpoint prune", keys[0]):
            return int(await prune_session.run_async(client, keys, [keep_from_turn, session_id]))
