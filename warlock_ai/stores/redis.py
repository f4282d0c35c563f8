"""Stores on Redis (redis-py): snapshots with fenced leases, append-only checkpoints.

Every write is one Lua script (``redis_scripts``), so the check and the write are atomic on the
server. The checkpoint store is ``redis_checkpoints``'s; both are importable from here.

Snapshots: one hash per run at ``<prefix><run_id>`` with the fields ``data`` (the snapshot's
JSON), ``meta`` (the run's summary: kind, name, status, position, times, for listings that do
not read ``data``), ``saved_at``, ``lease_owner`` and ``lease_expires_at`` (epoch
milliseconds), and an operator's ``cancel_requested_at`` / ``cancel_reason``.

State keys whose JSON is large (``core.runs.state.EXTERNAL_BYTES``) are fields of their own,
``value:<key>``, listed in ``data``'s ``state_apart``; like the ORM store, a save rewrites
only those that changed since the run writer's last write that landed, in the same script.
"""

from __future__ import annotations

import builtins
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from asgiref.sync import sync_to_async

from ..core.runs import leases, shape
from ..core.runs.attempts import attempts_json
from ..core.runs.cancel import CancelRequest
from ..core.runs.serialization import key_json, keys_json, loads
from ..core.runs.snapshots import (
    TERMINAL_STATUSES,
    RunSnapshot,
    iso,
    parse_time,
    snapshot_from_dict,
    snapshot_from_json,
)
from .base import (
    RunInfo,
    SnapshotStore,
    attempt_dicts,
    check_columns,
    check_lease_seconds,
    check_write_retry_seconds,
    column_problem,
    findable_id,
)
from .redis_checkpoints import CHECKPOINT_PREFIX as CHECKPOINT_PREFIX
from .redis_checkpoints import RedisCheckpointStore
from .redis_connection import Connection, as_text, check_ttl
from .redis_connection import client_url as client_url
from .redis_connection import hide_password as hide_password
from .redis_scripts import delete_if_status, save_snapshot
from .redis_scripts import renew_lease as renew_lease_script
from .redis_scripts import request_cancel as request_cancel_script

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
    supports_cancel = True

    def __init__(
        self,
        *,
        client: Any = None,
        url: str | None = None,
        async_client: Any = None,
        prefix: str = SNAPSHOT_PREFIX,
        ttl: int | None = None,
        lease_seconds: float = 300,
        write_retry_seconds: float = SnapshotStore.write_retry_seconds,
    ) -> None:
        if not isinstance(prefix, str) or not prefix:
            raise ValueError(
                f"prefix must be a non-empty string (keys are <prefix><run_id>), not {prefix!r}"
            )
        self.write_retry_seconds = check_write_retry_seconds(write_retry_seconds)
        self.lease_seconds = check_lease_seconds(lease_seconds)
        self.ttl = check_ttl(ttl)
        self._conn = Connection(type(self).__name__, client, async_client, url)
        self.prefix = prefix

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

    def _save_args(self, snapshot: RunSnapshot, claim: leases.LeaseClaim | None) -> list[Any]:
        mode, owner = (claim.mode, claim.owner) if claim is not None else ("", "")
        expected = iso(claim.expected) if claim is not None and claim.expected else ""
        now = _now_ms()
        expires = now + int(self.lease_seconds * 1000)
        encoding = snapshot.state_encoding()
        data, saved = snapshot.to_json(apart=True), iso(snapshot.saved_at)
        meta = _meta_json(snapshot)
        finished = "1" if snapshot.status in TERMINAL_STATUSES else "0"
        args = [data, mode, owner, now, expires, self.ttl or 0, "", saved, expected, meta, finished]
        changed = encoding.changed_since(snapshot.delta_base)
        if changed is None:
            return args
        keep = keys_json(encoding.split()[1])
        return [*args, keep, *(item for pair in changed.items() for item in pair)]

    @staticmethod
    def _with_holder(args: list[Any], holder: str) -> list[Any]:
        return [*args[:6], holder, *args[7:]]

    @staticmethod
    def _dead_holder(reply: list[Any]) -> str | None:
        """The holder of a refused acquire, when it is a dead process of this host (the script
        took the lease when it was free or expired: a dead holder is the case left)."""
        if as_text(reply[0]) != "held":
            return None
        holder, until = as_text(reply[1]), _from_ms(reply[2])
        dead = leases.lease_state(holder, until, datetime.now(UTC)) is leases.LeaseState.DEAD
        return holder if dead else None

    @staticmethod
    def _check_reply(
        run_id: str, claim: leases.LeaseClaim | None, reply: list[Any]
    ) -> CancelRequest | None:
        outcome = as_text(reply[0])
        if claim is not None and outcome == "changed":
            raise leases.changed_error(run_id)
        if claim is not None and outcome == "held":
            raise leases.held_error(run_id, as_text(reply[1]), _from_ms(reply[2]))
        if claim is not None and outcome == "lost":
            raise leases.lost_error(run_id, claim, as_text(reply[1]) or None)
        if len(reply) > 1:  # an operator asked to cancel the run
            return CancelRequest(_from_ms(reply[1]), as_text(reply[2]) or None)
        return None

    def save(
        self, snapshot: RunSnapshot, *, claim: leases.LeaseClaim | None = None
    ) -> CancelRequest | None:
        check_columns(snapshot)
        key, args = self.key(snapshot.run_id), self._save_args(snapshot, claim)
        with self._conn.errors("save", key):
            reply = save_snapshot(self._conn.client, [key], args)
            if dead := self._dead_holder(reply):
                reply = save_snapshot(self._conn.client, [key], self._with_holder(args, dead))
        return self._check_reply(snapshot.run_id, claim, reply)

    async def asave(
        self, snapshot: RunSnapshot, *, claim: leases.LeaseClaim | None = None
    ) -> CancelRequest | None:
        client = self._conn.async_client()
        if client is None:
            return await super().asave(snapshot, claim=claim)
        check_columns(snapshot)
        key, args = self.key(snapshot.run_id), self._save_args(snapshot, claim)
        with self._conn.errors("save", key):
            reply = await save_snapshot.run_async(client, [key], args)
            if dead := self._dead_holder(reply):
                reply = await save_snapshot.run_async(client, [key], self._with_holder(args, dead))
        return self._check_reply(snapshot.run_id, claim, reply)

    # --- read, delete, list, lease ---------------------------------------------------------

    def load(self, run_id: str) -> RunSnapshot | None:
        if not findable_id(run_id):
            return None
        key = self.key(run_id)
        with self._conn.errors("load", key):
            data = self._conn.client.hget(key, "data")
            document, names = _apart(data)
            values = self._conn.client.hmget(key, _fields(names)) if names else []
        return _snapshot(run_id, data, document, names, values) if data is not None else None

    async def aload(self, run_id: str) -> RunSnapshot | None:
        client = self._conn.async_client()
        if client is None:
            return await super().aload(run_id)
        if not findable_id(run_id):
            return None
        key = self.key(run_id)
        with self._conn.errors("load", key):
            data = await client.hget(key, "data")
            document, names = _apart(data)
            values = await client.hmget(key, _fields(names)) if names else []
        return _snapshot(run_id, data, document, names, values) if data is not None else None

    def request_cancel(self, run_id: str, reason: str = "") -> bool | CancelRequest:
        key = self.key(run_id)
        with self._conn.errors("cancel", key):
            reply = request_cancel_script(self._conn.client, [key], [_now_ms(), reason])
        if isinstance(reply, list):  # one was already pending
            return CancelRequest(_from_ms(reply[0]), as_text(reply[1]) or None)
        return bool(reply)

    def delete(self, run_id: str) -> bool:
        if not findable_id(run_id):
            return False
        key = self.key(run_id)
        with self._conn.errors("delete", key):
            return bool(self._conn.client.delete(key))

    async def adelete(self, run_id: str) -> bool:
        client = self._conn.async_client()
        if client is None:
            return await super().adelete(run_id)
        if not findable_id(run_id):
            return False
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

    async def alist(self, prefix: str = "") -> builtins.list[str]:
        client = self._conn.async_client()
        if client is None:
            return await super().alist(prefix)
        pattern = self._pattern(prefix)
        with self._conn.errors("list", pattern):
            keys = {k async for k in client.scan_iter(match=pattern, count=1000)}
        return self._run_ids(keys)

    # --- queries: the summaries in ``meta``, read in one round trip per batch -------------

    _INFO_FIELDS = ("meta", "lease_owner", "lease_expires_at", "cancel_requested_at")

    def run_infos(self, prefix: str = "") -> builtins.list[RunInfo]:
        pattern = self._pattern(prefix)
        infos: list[RunInfo] = []
        with self._conn.errors("list", pattern):
            keys = sorted(set(self._conn.client.scan_iter(match=pattern, count=1000)))
            for start in range(0, len(keys), 500):
                batch = keys[start : start + 500]
                pipe = self._conn.client.pipeline(transaction=False)
                for key in batch:
                    pipe.hmget(key, self._INFO_FIELDS)
                for key, values in zip(batch, pipe.execute(), strict=True):
                    info = self._info(as_text(key)[len(self.prefix) :], values)
                    if info is not None:
                        infos.append(info)
        return infos

    def _info(self, run_id: str, values: builtins.list[Any]) -> RunInfo | None:
        meta, owner, expires, cancel_at = values
        lease = self._lease([owner, expires])
        asked = _from_ms(cancel_at)
        info = _summary(run_id, meta, lease, asked) if meta is not None else None
        if info is not None:
            return info
        # No summary (written before they were kept, or deleted meanwhile), or a broken one:
        # the snapshot says what it can.
        key = self.key(run_id)
        with self._conn.errors("load", key):
            text = self._conn.client.hget(key, "data")
        return RunInfo.of_stored(run_id, text, lease, asked) if text is not None else None

    def delete_runs(self, run_ids: Sequence[str], statuses: Iterable[str]) -> int:
        allowed = sorted(statuses)
        if not run_ids or not allowed:
            return 0
        with self._conn.errors("delete runs", self.prefix):
            client = self._conn.client
            delete_if_status.load(client)
            pipe = client.pipeline(transaction=False)
            for run_id in run_ids:
                delete_if_status.queue(pipe, [self.key(run_id)], allowed)
            return sum(int(n) for n in pipe.execute())

    @staticmethod
    def _lease(values: builtins.list[Any]) -> tuple[str, datetime | None] | None:
        owner, expires = values
        return (as_text(owner), _from_ms(expires)) if owner is not None else None

    def lease(self, run_id: str) -> tuple[str, datetime | None] | None:
        key = self.key(run_id)
        with self._conn.errors("lease read", key):
            values = self._conn.client.hmget(key, ["lease_owner", "lease_expires_at"])
        return self._lease(values)

    def renew_lease(self, run_id: str, owner: str) -> bool | CancelRequest:
        key = self.key(run_id)
        expires = _now_ms() + int(self.lease_seconds * 1000)
        with self._conn.errors("lease renewal", key):
            reply = renew_lease_script(self._conn.client, [key], [owner, expires])
        if isinstance(reply, list):  # held, and an operator asked to cancel the run
            return CancelRequest(_from_ms(reply[1]), as_text(reply[2]) or None)
        return bool(reply)

    async def alease(self, run_id: str) -> tuple[str, datetime | None] | None:
        client = self._conn.async_client()
        if client is None:
            return await sync_to_async(self.lease)(run_id)
        key = self.key(run_id)
        with self._conn.errors("lease read", key):
            values = await client.hmget(key, ["lease_owner", "lease_expires_at"])
        return self._lease(values)


def _summary(
    run_id: str, meta: Any, lease: tuple[str, datetime | None] | None, asked: datetime | None
) -> RunInfo | None:
    """The run's summary from its ``meta`` field; None when that cannot be read."""
    try:
        data = loads(meta)
        kind, name, status = data["kind"], data["name"], data["status"]
        if not all(isinstance(text, str) for text in (kind, name, status)):
            return None
        saved_at = parse_time(data["saved_at"])
        owner, expires = lease if lease is not None else (None, None)
        return RunInfo(
            run_id=run_id,
            kind=kind,
            name=name,
            status=status,
            started_at=parse_time(data["started_at"]),
            saved_at=saved_at,
            version=data.get("version"),
            next_step=data.get("next_step"),
            iteration=data.get("iteration"),
            finished_at=saved_at if status in TERMINAL_STATUSES else None,
            lease_owner=owner,
            lease_expires_at=expires,
            cancel_requested_at=asked,
            signature=data.get("signature"),  # None in summaries written before it was kept
            attempts=attempt_dicts(data.get("attempts")),
            unreadable=column_problem(kind, status),
        )
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
        return None


def _apart(data: Any) -> tuple[Any, list[str]]:
    """A stored snapshot's document, decoded once, and the state keys its ``state_apart``
    lists (``(None, [])`` when it lists none, or cannot be read: reading it then says why)."""
    if data is None:
        return None, []
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    if '"state_apart"' not in text:
        return None, []
    try:
        document = loads(text)
        listed = document.pop("state_apart", None)
    except (ValueError, AttributeError, RecursionError):
        return None, []
    names = [name for name in listed if isinstance(name, str)] if isinstance(listed, list) else []
    return (document, names) if names else (None, [])


def _fields(names: list[str]) -> list[str]:
    return [f"value:{name}" for name in names]


def _snapshot(
    run_id: str, data: Any, document: Any, names: list[str], values: list[Any]
) -> RunSnapshot:
    """The stored snapshot; ``document``, when given, is its decoded JSON, and the values of
    the keys ``names`` (``values``, in order) are put back in its state."""
    if document is None:
        return snapshot_from_json(data, run_id)
    state = document.get("state")
    if isinstance(state, dict):
        for name, value in zip(names, values, strict=True):
            if value is None:
                problem = f"state_apart lists {name!r}, whose value is missing"
                raise shape.unreadable(document, run_id, "state_apart", problem)
            state[name] = loads(value)
    return snapshot_from_dict(document, run_id)


def _meta_json(snapshot: RunSnapshot) -> str:
    """The run's summary kept beside its JSON (what ``runs()`` reads instead of ``data``)."""
    iteration = snapshot.iteration
    return (
        f'{{"kind":"{snapshot.kind}","name":{key_json(snapshot.name)},'
        f'"version":{key_json(snapshot.version)},"status":{key_json(snapshot.status)},'
        f'"signature":{key_json(snapshot.signature)},"next_step":{key_json(snapshot.next_step)},'
        f'"iteration":{"null" if iteration is None else int(iteration)},'
        f'"started_at":"{iso(snapshot.started_at)}","saved_at":"{iso(snapshot.saved_at)}",'
        f'"attempts":{attempts_json(snapshot.attempts)}}}'
    )
