"""Stores on Redis (redis-py): snapshots with fenced leases, append-only checkpoints.

Every write is one Lua script, so the check and the write are atomic on the server.

Snapshots: one hash per run at ``<prefix><run_id>`` with the fields ``data`` (the snapshot's
JSON), ``lease_owner`` and ``lease_expires_at`` (epoch milliseconds).

Checkpoints, per ``(name, session)``: a hash ``<prefix>rows:<name>:<session>`` mapping each
turn index to its record's JSON (``HSETNX``: a turn is written once, never replaced), a sorted
set ``<prefix>turns:<name>:<session>`` of the turn indexes, and the orchestrator's session
index, the set ``<prefix>sessions:<name>``. Names and session ids are written length-prefixed
(``6:triage``), so ids containing ``:`` cannot make two sessions share a key.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from asgiref.sync import sync_to_async

try:
    import redis
    import redis.asyncio as aioredis
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("the Redis stores need redis-py: pip install 'warlock-ai[redis]'") from exc

from ..core.cancel import CancelRequest
from ..core.checkpoints import (
    CheckpointRecord,
    checkpoint_from_json,
    conflict_error,
    valid_threshold,
)
from ..core.errors import StoreError
from ..core.snapshots import iso, snapshot_from_json
from . import leases
from .base import CheckpointStore, SnapshotStore

__all__ = ["RedisCheckpointStore", "RedisSnapshotStore"]

SNAPSHOT_PREFIX = "warlock:snapshot:"
CHECKPOINT_PREFIX = "warlock:checkpoint:"

# Applied to clients built from a URL (query parameters in the URL win): a server that does
# not answer fails the operation instead of hanging the run.
_URL_DEFAULTS = {"socket_connect_timeout": 5.0, "socket_timeout": 30.0}

_REQUEST_CANCEL = """
-- KEYS[1] the run; ARGV: now_ms, reason. Only a running run can be asked to cancel.
local data = redis.call('HGET', KEYS[1], 'data')
if not data or cjson.decode(data)['status'] ~= 'running' then return 0 end
redis.call('HSET', KEYS[1], 'cancel_requested_at', ARGV[1], 'cancel_reason', ARGV[2])
return 1
"""

_SAVE_SNAPSHOT = """
-- KEYS[1] the run; ARGV: data, mode ('' = no claim), owner, now_ms, expires_ms, ttl,
-- a holder to take over because its process is dead ('' = none), this snapshot's saved_at,
-- and the saved_at the resuming worker loaded ('' = any).
local key, mode, owner = KEYS[1], ARGV[2], ARGV[3]
if mode ~= '' then
  local lease = redis.call('HMGET', key, 'lease_owner', 'lease_expires_at', 'saved_at')
  local holder, expires = lease[1], tonumber(lease[2])
  if mode == 'acquire' and ARGV[9] ~= '' and lease[3] ~= ARGV[9] then
    return {'changed'}
  end
  if mode == 'acquire' then
    if holder and holder ~= owner and holder ~= ARGV[7]
        and not (expires and expires < tonumber(ARGV[4])) then
      return {'held', holder, lease[2] or ''}
    end
  elseif holder ~= owner then
    return {'lost', holder or ''}
  end
end
if mode == 'release' then
  redis.call('HDEL', key, 'lease_owner', 'lease_expires_at', 'cancel_requested_at', 'cancel_reason')
  redis.call('HSET', key, 'data', ARGV[1], 'saved_at', ARGV[8])
elseif mode == '' then
  redis.call('HSET', key, 'data', ARGV[1], 'saved_at', ARGV[8])
else
  redis.call('HSET', key, 'data', ARGV[1], 'saved_at', ARGV[8],
    'lease_owner', owner, 'lease_expires_at', ARGV[5])
end
if tonumber(ARGV[6]) > 0 then redis.call('EXPIRE', key, ARGV[6]) end
if mode == 'acquire' or mode == 'renew' then
  local cancel = redis.call('HMGET', key, 'cancel_requested_at', 'cancel_reason')
  if cancel[1] then return {'ok', cancel[1], cancel[2] or ''} end
end
return {'ok'}
"""

_APPEND_CHECKPOINT = """
-- KEYS: rows, turns, sessions; ARGV: turn, record JSON, session id, ttl
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('ZADD', KEYS[2], ARGV[1], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[3])
if tonumber(ARGV[4]) > 0 then
  for i = 1, 3 do redis.call('EXPIRE', KEYS[i], ARGV[4]) end
end
return 1
"""

_LATEST_CHECKPOINT = """
-- KEYS: rows, turns
local top = redis.call('ZREVRANGE', KEYS[2], 0, 0)
if #top == 0 then return false end
return redis.call('HGET', KEYS[1], top[1])
"""

_DELETE_SESSION = """
-- KEYS: rows, turns, sessions; ARGV: session id
local n = redis.call('HLEN', KEYS[1])
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('SREM', KEYS[3], ARGV[1])
return n
"""

_PRUNE_SESSION = """
-- KEYS: rows, turns, sessions; ARGV: keep_from_turn, session id
local old = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[1])
if #old == 0 then return 0 end
for i = 1, #old, 1000 do
  redis.call('HDEL', KEYS[1], unpack(old, i, math.min(i + 999, #old)))
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[1])
if redis.call('HLEN', KEYS[1]) == 0 then
  redis.call('DEL', KEYS[2])
  redis.call('SREM', KEYS[3], ARGV[2])
end
return #old
"""

_FORGET_EXPIRED = """
-- KEYS[1] the session index, KEYS[i + 1] the rows of session ARGV[i]
local n = 0
for i, session in ipairs(ARGV) do
  if redis.call('EXISTS', KEYS[i + 1]) == 0 then n = n + redis.call('SREM', KEYS[1], session) end
end
return n
"""


class _Script:
    """A Lua script run by SHA (``EVALSHA``), sent in full once per server (``EVAL``)."""

    def __init__(self, lua: str) -> None:
        self.lua = lua
        self.sha = hashlib.sha1(lua.encode()).hexdigest()

    def __call__(self, client: Any, keys: Sequence[str], args: Sequence[Any]) -> Any:
        try:
            return client.evalsha(self.sha, len(keys), *keys, *args)
        except redis.exceptions.NoScriptError:
            return client.eval(self.lua, len(keys), *keys, *args)

    async def run_async(self, client: Any, keys: Sequence[str], args: Sequence[Any]) -> Any:
        try:
            return await client.evalsha(self.sha, len(keys), *keys, *args)
        except redis.exceptions.NoScriptError:
            return await client.eval(self.lua, len(keys), *keys, *args)


_request_cancel = _Script(_REQUEST_CANCEL)
_save_snapshot = _Script(_SAVE_SNAPSHOT)
_append_checkpoint = _Script(_APPEND_CHECKPOINT)
_latest_checkpoint = _Script(_LATEST_CHECKPOINT)
_delete_session = _Script(_DELETE_SESSION)
_prune_session = _Script(_PRUNE_SESSION)
_forget_expired = _Script(_FORGET_EXPIRED)


class _Connection:
    """The sync client, the async one, and the server's URL (password hidden) for errors."""

    def __init__(self, owner: str, client: Any, async_client: Any, url: str | None) -> None:
        if (client is None) == (url is None):
            got = "both" if client is not None else "neither"
            raise TypeError(
                f"{owner} needs exactly one of client= (a redis.Redis) or "
                f'url= (such as "redis://localhost:6379/0"); got {got}'
            )
        self._url = url
        self._async_client = async_client
        self._loop_clients: dict[int, tuple[weakref.ref[Any], Any]] = {}
        if url is not None:
            if async_client is not None:
                raise TypeError(f"{owner}: async_client= goes with client=, not with url=")
            self.client = redis.Redis.from_url(url, **_URL_DEFAULTS)
            self.url = hide_password(url)
            return
        if isinstance(client, aioredis.Redis):
            raise TypeError(
                f"{owner}: client= must be a sync redis.Redis; pass a redis.asyncio.Redis "
                "as async_client= (next to client=)"
            )
        if not isinstance(client, redis.Redis):
            raise TypeError(f"{owner}: client= must be a redis.Redis, not {type(client)!r}")
        if async_client is not None and not isinstance(async_client, aioredis.Redis):
            raise TypeError(
                f"{owner}: async_client= must be a redis.asyncio.Redis, not {type(async_client)!r}"
            )
        self.client = client
        self.url = client_url(client)

    def async_client(self) -> Any | None:
        """The async client for the running event loop, or None (then use a worker thread).

        An asyncio client is bound to the loop that first used it, so a client built from the
        URL is made per loop; those of loops that have closed are dropped.
        """
        if self._async_client is not None or self._url is None:
            return self._async_client
        loop = asyncio.get_running_loop()
        entry = self._loop_clients.get(id(loop))
        if entry is not None and entry[0]() is loop:
            return entry[1]
        self._loop_clients = {
            key: (ref, client)
            for key, (ref, client) in self._loop_clients.items()
            if (alive := ref()) is not None and not alive.is_closed()
        }
        client = aioredis.Redis.from_url(self._url, **_URL_DEFAULTS)
        self._loop_clients[id(loop)] = (weakref.ref(loop), client)
        return client

    def close(self) -> None:
        """Close the sync client if it was built from the URL (a caller's client is theirs)."""
        if self._url is not None:
            self.client.close()

    async def aclose(self) -> None:
        """``close()``, and close the running loop's async client built from the URL."""
        self.close()
        if self._url is not None:
            loop = asyncio.get_running_loop()
            entry = self._loop_clients.pop(id(loop), None)
            if entry is not None and entry[0]() is loop:
                await entry[1].aclose()

    @contextmanager
    def errors(self, operation: str, key: str) -> Iterator[None]:
        """Turn any redis-py error into a one-line ``StoreError``."""
        try:
            yield
        except redis.RedisError as exc:
            detail = " ".join(str(exc).split()) or type(exc).__name__
            raise StoreError(
                f'Redis {operation} of key "{key}" failed at {self.url}: {detail}', cause=exc
            ) from exc


# --- small helpers ------------------------------------------------------------------------


def hide_password(url: str) -> str:
    """``url`` with its password (in the authority or the query) replaced by ``***``."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        user, _, host = netloc.rpartition("@")
        netloc = f"{user.partition(':')[0]}:***@{host}"
    query = parts.query
    if "password=" in query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, "***" if k == "password" else v) for k, v in pairs], safe="*")
    # Built by hand: urlunsplit would turn "unix:///path" into "unix:/path".
    return f"{parts.scheme}://{netloc}{parts.path}" + (f"?{query}" if query else "")


def client_url(client: Any) -> str:
    """A URL naming the server of a ``redis.Redis`` (password hidden)."""
    pool = client.connection_pool
    kwargs = pool.connection_kwargs
    db = kwargs.get("db", 0)
    if kwargs.get("path"):
        return f"unix://{kwargs['path']}?db={db}"
    scheme = "rediss" if issubclass(pool.connection_class, redis.SSLConnection) else "redis"
    user = kwargs.get("username") or ""
    auth = f"{user}:***@" if kwargs.get("password") else (f"{user}@" if user else "")
    return f"{scheme}://{auth}{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}/{db}"


def glob_escape(text: str) -> str:
    """``text`` as a literal in a Redis glob pattern (``*``, ``?``, ``[``, ``]``, ``\\``)."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _from_ms(value: bytes | str | None) -> datetime | None:
    return datetime.fromtimestamp(int(value) / 1000, UTC) if value else None


def _check_ttl(ttl: Any) -> int | None:
    if ttl is None:
        return None
    if isinstance(ttl, bool) or not isinstance(ttl, int) or ttl <= 0:
        raise ValueError(
            f"ttl must be None (no expiry) or a positive number of seconds, not {ttl!r}"
        )
    return ttl


def _field(text: str) -> str:
    """Length-prefixed, so ``a:b`` + ``c`` and ``a`` + ``b:c`` give different keys."""
    return f"{len(text)}:{text}"


# --- snapshots ----------------------------------------------------------------------------


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
        self._conn = _Connection(type(self).__name__, client, async_client, url)
        self.prefix = prefix
        self.ttl = _check_ttl(ttl)
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
        if _text(reply[0]) == "held" and leases.owner_is_dead(_text(reply[1])):
            return _text(reply[1])
        return None

    @staticmethod
    def _check_reply(snapshot: Any, reply: list[Any]) -> CancelRequest | None:
        outcome = _text(reply[0])
        if outcome == "changed":
            raise leases.changed_error(snapshot.run_id, snapshot.claim)
        if outcome == "held":
            raise leases.held_error(snapshot.run_id, _text(reply[1]), _from_ms(reply[2]))
        if outcome == "lost":
            holder = _text(reply[1]) or None
            raise leases.lost_error(snapshot.run_id, snapshot.claim, holder)
        if len(reply) > 1:  # an operator asked to cancel the run
            return CancelRequest(_from_ms(reply[1]), _text(reply[2]) or None)
        return None

    def save(self, snapshot: Any) -> CancelRequest | None:
        key, args = self.key(snapshot.run_id), self._save_args(snapshot)
        with self._conn.errors("save", key):
            reply = _save_snapshot(self._conn.client, [key], args)
            if dead := self._dead_holder(reply):
                reply = _save_snapshot(self._conn.client, [key], self._with_holder(args, dead))
        return self._check_reply(snapshot, reply)

    async def asave(self, snapshot: Any) -> CancelRequest | None:
        client = self._conn.async_client()
        if client is None:
            return await super().asave(snapshot)
        key, args = self.key(snapshot.run_id), self._save_args(snapshot)
        with self._conn.errors("save", key):
            reply = await _save_snapshot.run_async(client, [key], args)
            if dead := self._dead_holder(reply):
                reply = await _save_snapshot.run_async(client, [key], self._with_holder(args, dead))
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
            return bool(_request_cancel(self._conn.client, [key], [_now_ms(), reason]))

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
        return sorted(_text(k)[start:] for k in keys)

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
        return (_text(owner), _from_ms(expires)) if owner is not None else None

    def lease(self, run_id: str) -> tuple[str, datetime | None] | None:
        key = self.key(run_id)
        with self._conn.errors("lease read", key):
            values = self._conn.client.hmget(key, ["lease_owner", "lease_expires_at"])
        return self._lease(values)

    async def alease(self, run_id: str) -> tuple[str, datetime | None] | None:
        client = self._conn.async_client()
        if client is None:
            return await sync_to_async(self.lease)(run_id)
        key = self.key(run_id)
        with self._conn.errors("lease read", key):
            values = await client.hmget(key, ["lease_owner", "lease_expires_at"])
        return self._lease(values)


# --- checkpoints --------------------------------------------------------------------------


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
        self._conn = _Connection(type(self).__name__, client, async_client, url)
        self.prefix = prefix
        self.ttl = _check_ttl(ttl)

    def __repr__(self) -> str:
        return f"<RedisCheckpointStore {self._conn.url} prefix={self.prefix!r}>"

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
            added = _append_checkpoint(self._conn.client, keys, args)
        if not added:
            raise conflict_error(*record.key)

    async def asave(self, record: CheckpointRecord) -> None:
        client = self._conn.async_client()
        if client is None:
            return await super().asave(record)
        keys, args = self._append_args(record)
        with self._conn.errors("checkpoint save", keys[0]):
            added = await _append_checkpoint.run_async(client, keys, args)
        if not added:
            raise conflict_error(*record.key)

    # --- read ------------------------------------------------------------------------------

    def load(self, name: str, session_id: str) -> CheckpointRecord | None:
        keys = self.keys(name, session_id)[:2]
        with self._conn.errors("checkpoint load", keys[0]):
            text = _latest_checkpoint(self._conn.client, keys, [])
        return checkpoint_from_json(text) if text is not None else None

    async def aload(self, name: str, session_id: str) -> CheckpointRecord | None:
        client = self._conn.async_client()
        if client is None:
            return await super().aload(name, session_id)
        keys = self.keys(name, session_id)[:2]
        with self._conn.errors("checkpoint load", keys[0]):
            text = await _latest_checkpoint.run_async(client, keys, [])
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
        return sorted(s for s in map(_text, members) if s.startswith(prefix))

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
                _forget_expired(client, [index, *rows], expired)
        return [s for s, found in zip(sessions, exists, strict=True) if found]

    async def alist(self, name: str, prefix: str = "") -> list[str]:
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
                await _forget_expired.run_async(client, [index, *rows], expired)
        return [s for s, found in zip(sessions, exists, strict=True) if found]

    # --- delete, prune ---------------------------------------------------------------------

    def delete(self, name: str, session_id: str) -> int:
        keys = self.keys(name, session_id)
        with self._conn.errors("checkpoint delete", keys[0]):
            return int(_delete_session(self._conn.client, keys, [session_id]))

    async def adelete(self, name: str, session_id: str) -> int:
        client = self._conn.async_client()
        if client is None:
            return await super().adelete(name, session_id)
        keys = self.keys(name, session_id)
        with self._conn.errors("checkpoint delete", keys[0]):
            return int(await _delete_session.run_async(client, keys, [session_id]))

    def prune(self, name: str, session_id: str, keep_from_turn: Any) -> int:
        """Delete the turns below ``keep_from_turn``; anything but a turn index is a no-op."""
        if not valid_threshold(keep_from_turn):
            return 0
        keys = self.keys(name, session_id)
        with self._conn.errors("checkpoint prune", keys[0]):
            return int(_prune_session(self._conn.client, keys, [keep_from_turn, session_id]))

    async def aprune(self, name: str, session_id: str, keep_from_turn: Any) -> int:
        client = self._conn.async_client()
        if client is None:
            return await super().aprune(name, session_id, keep_from_turn)
        if not valid_threshold(keep_from_turn):
            return 0
        keys = self.keys(name, session_id)
        with self._conn.errors("checkpoint prune", keys[0]):
            return int(await _prune_session.run_async(client, keys, [keep_from_turn, session_id]))
