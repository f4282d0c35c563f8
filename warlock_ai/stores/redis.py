"""Stores on Redis (redis-py): snapshots with fenced leases, append-only checkpoints.

Every write is one Lua script (``redis_scripts``), so the check and the write are atomic on the
server. The checkpoint store is ``redis_checkpoints``'s; both are importable from here.

Snapshots: one hash per run at ``<prefix><run_id>`` with the fields ``data`` (the snapshot's
JSON), ``lease_owner`` and ``lease_expires_at`` (epoch milliseconds).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from asgiref.sync import sync_to_async

from ..core.cancel import CancelRequest
from ..core.snapshots import iso, snapshot_from_json
from . import leases
from .base import SnapshotStore
from .redis_checkpoints import CHECKPOINT_PREFIX as CHECKPOINT_PREFIX
from .redis_checkpoints import RedisCheckpointStore
from .redis_connection import Connection, as_text, check_ttl
from .redis_connection import client_url as client_url
from .redis_connection import hide_password as hide_password
from .redis_scripts import renew_lease as renew_lease_script
from .redis_scripts import request_cancel as request_cancel_script
from .redis_scripts import save_snapshot

__all__ = ["RedisCheckpointStore", "RedisSnapshotStore"]

SNAPSHOT_PREFIX = "warlock:snapshot:"


def glob_escape(text: str) -> str:
    """``text`` as a literal in a Redis glob pattern (``*``, ``?``, ``[``, ``]``, ``\\``)."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _from_ms(value: bytes | str | None) -> datetime | None:
    return datetime.fromtimestamp(int(value) / 1000, UTC) if value else None


class RedisSnapshotStore(SnapshotStore):
    """Snapshots as Redis hashes; each save is one Lua script applying the lease claim."""

    supports_list = True
    supports_leases = True
    supports_ttl = True

    def __init__(
        self,
        *,
        client: Any = None,
        url: str | None = None,
        async_client: Any = None,
        prefix: str = SNAPSHOT_PREFIX,
        ttl: int | None = None,
        lease_seconds: float = 300,
    ) -> None:
        self._conn = Connection(type(self).__name__, client, async_client, url)
        self.prefix = prefix
        self.ttl = check_ttl(ttl)
        if isinstance(lease_seconds, bool) or not isinstance(lease_seconds, int | float):
            raise ValueError(f"lease_seconds must be a number of seconds, not {lease_seconds!r}")
        if lease_seconds <= 0:
            raise ValueError(f"lease_seconds must be positive, not {lease_seconds!r}")
        self.lease_seconds = lease_seconds

    def __repr__(self) -> str:
        return f"<RedisSnapshotStore {self._conn.url} prefix={self.prefix!r}>"

    def close(self) -> None:
        """Close the connections this store opened from its URL (a passed client is left open)."""
        self._conn.close()

    async def aclose(self) -> None:
        """``close()``, and close this event loop's async connections."""
        await self._conn.aclose()

    def key(self, run_id: str) -> str:
        return f"{self.prefix}{run_id}"

    # --- save: one script; on a refused acquire, a second one if the holder is dead --------

    def _save_args(self, snapshot: Any) -> list[Any]:
        claim = getattr(snapshot, "claim", None)
        mode, owner = (claim.mode, claim.owner) if claim is not None else ("", "")
        expected = iso(claim.expected) if claim is not None and claim.expected else ""
        now = _now_ms()
        expires = now + int(self.lease_seconds * 1000)
        data, saved = snapshot.to_json(), iso(snapshot.saved_at)
        return [data, mode, owner, now, expires, self.ttl or 0, "", saved, expected]

    @staticmethod
    def _with_holder(args: list[Any], holder: str) -> list[Any]:
        return [*args[:6], holder, *args[7:]]

    @staticmethod
    def _dead_holder(reply: list[Any]) -> str | None:
        if as_text(reply[0]) == "held" and leases.owner_is_dead(as_text(reply[1])):
            return as_text(reply[1])
        return None

    @staticmethod
    def _check_reply(snapshot: Any, reply: list[Any]) -> CancelRequest | None:
        outcome = as_text(reply[0])
        if outcome == "changed":
            raise leases.changed_error(snapshot.run_id, snapshot.claim)
        if outcome == "held":
            raise leases.held_error(snapshot.run_id, as_text(reply[1]), _from_ms(reply[2]))
        if outcome == "lost":
            holder = as_text(reply[1]) or None
            raise leases.lost_error(snapshot.run_id, snapshot.claim, holder)
        if len(reply) > 1:  # an operator asked to cancel the run
            return CancelRequest(_from_ms(reply[1]), as_text(reply[2]) or None)
        return None

    def save(self, snapshot: Any) -> CancelRequest | None:
        key, args = self.key(snapshot.run_id), self._save_args(snapshot)
        with self._conn.errors("save", key):
            reply = save_snapshot(self._conn.client, [key], args)
            if dead := self._dead_holder(reply):
                reply = save_snapshot(self._conn.client, [key], self._with_holder(args, dead))
        return self._check_reply(snapshot, reply)

    async def asave(self, snapshot: Any) -> CancelRequest | None:
        client = self._conn.async_client()
        if client is None:
            return await super().asave(snapshot)
        key, args = self.key(snapshot.run_id), self._save_args(snapshot)
        with self._conn.errors("save", key):
            reply = await save_snapshot.run_async(client, [key], args)
            if dead := self._dead_holder(reply):
                reply = await save_snapshot.run_async(client, [key], self._with_holder(args, dead))
        return self._check_reply(snapshot, reply)

    # --- read, delete, list, lease ---------------------------------------------------------

    def load(self, run_id: str) -> Any | None:
        key = self.key(run_id)
        with self._conn.errors("load", key):
            data = self._conn.client.hget(key, "data")
        return snapshot_from_json(data) if data is not None else None

    async def aload(self, run_id: str) -> Any | None:
        client = self._conn.async_client()
        if client is None:
            return await super().aload(run_id)
        key = self.key(run_id)
        with self._conn.errors("load", key):
            data = await client.hget(key, "data")
        return snapshot_from_json(data) if data is not None else None

    def request_cancel(self, run_id: str, reason: str = "") -> bool:
        key = self.key(run_id)
        with self._conn.errors("cancel", key):
            return bool(request_cancel_script(self._conn.client, [key], [_now_ms(), reason]))

    def delete(self, run_id: str) -> bool:
        key = self.key(run_id)
        with self._conn.errors("delete", key):
            return bool(self._conn.client.delete(key))

    async def adelete(self, run_id: str) -> bool:
        client = self._conn.async_client()
        if client is None:
            return await super().adelete(run_id)
        key = self.key(run_id)
        with self._conn.errors("delete", key):
            return bool(await client.delete(key))

    def _pattern(self, prefix: str) -> str:
        return glob_escape(self.key(prefix)) + "*"

    def _run_ids(self, keys: set[Any]) -> list[str]:
        start = len(self.prefix)
        return sorted(as_text(k)[start:] for k in keys)

    def list(self, prefix: str = "") -> list[str]:
        pattern = self._pattern(prefix)
        with self._conn.errors("list", pattern):
            keys = set(self._conn.client.scan_iter(match=pattern, count=1000))
        return self._run_ids(keys)

    async def alist(self, prefix: str = "") -> list[str]:
        client = self._conn.async_client()
        if client is None:
            return await super().alist(prefix)
        pattern = self._pattern(prefix)
        with self._conn.errors("list", pattern):
            keys = {k async for k in client.scan_iter(match=pattern, count=1000)}
        return self._run_ids(keys)

    @staticmethod
    def _lease(values: list[Any]) -> tuple[str, datetime | None] | None:
        owner, expires = values
        return (as_text(owner), _from_ms(expires)) if owner is not None else None

    def lease(self, run_id: str) -> tuple[str, datetime | None] | None:
        key = self.key(run_id)
        with self._conn.errors("lease read", key):
            values = self._conn.client.hmget(key, ["lease_owner", "lease_expires_at"])
        return self._lease(values)

    def renew_lease(self, run_id: str, owner: str) -> bool:
        key = self.key(run_id)
        expires = _now_ms() + int(self.lease_seconds * 1000)
        with self._conn.errors("lease renewal", key):
            return bool(renew_lease_script(self._conn.client, [key], [owner, expires]))

    async def alease(self, run_id: str) -> tuple[str, datetime | None] | None:
        client = self._conn.async_client()
        if client is None:
            return await sync_to_async(self.lease)(run_id)
        key = self.key(run_id)
        with self._conn.errors("lease read", key):
            values = await client.hmget(key, ["lease_owner", "lease_expires_at"])
        return self._lease(values)
