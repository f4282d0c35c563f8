"""Session locks that reach other processes: a PostgreSQL advisory lock, a file lock beside a
SQLite database, a token in Redis. The waiting, the timeout and the renewal thread are the
contract's (``core.orchestrator.locks.SessionLock``); each backend here only tries, lets go,
renews and names the holder.

What a crash leaves: PostgreSQL frees an advisory lock as soon as its connection goes, and
the kernel frees a process's file locks when it dies, so a turn killed with SIGKILL leaves
nothing behind. A Redis token stays until its ttl runs out, unless its holder is a process
of this host that no longer exists: that one is taken over at once.

The lock connection (PostgreSQL) and the lock file (SQLite) are one per process per database,
shared by every lock on it, and opened anew in a forked child.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import struct
import sys
import threading
from dataclasses import dataclass
from typing import Any, ClassVar

from django.db import Error as DatabaseError
from django.db import connections

from ..core.errors import StoreError, StoreUnavailableError
from ..core.orchestrator.locks import LockKey, ProcessSessionLock, SessionLock
from ..core.runs.leases import local_owner_prefix, new_owner_id, owner_is_dead

__all__ = [
    "PostgresSessionLock",
    "RedisSessionLock",
    "SQLiteSessionLock",
    "database_session_lock",
]

logger = logging.getLogger("warlock_ai.session_locks")

#: The vendors ``database_session_lock`` has a lock for.
LOCK_VENDORS = ("postgresql", "sqlite")
SESSION_LOCK_PREFIX = "warlock:session-lock:"


def database_session_lock(using: str = "default") -> SessionLock:
    """The session lock of database alias ``using``, chosen by its vendor."""
    if using not in connections:
        raise StoreError(f"session lock: no database alias {using!r} in settings.DATABASES")
    connection = connections[using]
    if connection.vendor == "postgresql":
        return PostgresSessionLock(using)
    if connection.vendor == "sqlite":
        name = os.fspath(connection.settings_dict["NAME"])
        return ProcessSessionLock() if sqlite_in_memory(name) else SQLiteSessionLock(name)
    raise StoreError(
        f"database alias {using!r} is {connection.vendor}: session locks work on "
        f"{' and '.join(LOCK_VENDORS)}; pass session_lock= instead "
        "(e.g. ai.session_lock.redis(url=...))"
    )


def sqlite_in_memory(name: str) -> bool:
    """Whether a SQLite database name is an in-memory (or private temporary) database."""
    return name in ("", ":memory:") or ":memory:" in name or "mode=memory" in name


# --- what one process shares per database ----------------------------------------------------

_registry_lock = threading.Lock()


class _Shared:
    """One per process per resource (a database alias, a lock file), used by every lock on
    it, closed when the last of them closes. ``held`` is what this process holds through it:
    the server or the kernel would let the process take those twice."""

    registry: ClassVar[dict[str, _Shared]]

    def __init__(self, name: str) -> None:
        self.name = name
        self.pid = os.getpid()
        self.users = 0
        self.guard = threading.Lock()
        self.held: set[int] = set()

    @classmethod
    def attach(cls, name: str) -> Any:
        with _registry_lock:
            shared = cls.registry.get(name)
            if shared is None:
                shared = cls.registry[name] = cls(name)
            shared.users += 1
            return shared

    def detach(self) -> None:
        with _registry_lock:
            self.users -= 1
            if self.users > 0 or self.registry.get(self.name) is not self:
                return
            del self.registry[self.name]
        with self.guard:
            self.held.clear()
            self.shut()

    @property
    def ours(self) -> bool:
        """False in a forked child: the parent's connection or file is not the child's."""
        return self.pid == os.getpid()

    def shut(self) -> None:
        """Close the connection or file (called with ``guard`` held)."""

    def abandon(self) -> None:
        """In a forked child: drop the parent's without touching it."""


def _forget_in_child() -> None:
    global _registry_lock
    _registry_lock = threading.Lock()
    for cls in (_PgChannel, _LockFile):
        for shared in cls.registry.values():
            shared.abandon()
        cls.registry = {}


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_in_child)


@dataclass(frozen=True, slots=True)
class _Token:
    """A hold through one connection or file: ``generation`` is which connection."""

    shared: _Shared
    generation: int
    number: int


class _SharedLock(SessionLock):
    """A lock whose backend is a :class:`_Shared` (attached lazily, again after a fork)."""

    shared_class: ClassVar[type[_Shared]]
    cross_process = True
    blocking_io = True

    def __init__(self, name: str) -> None:
        super().__init__()
        self._name = name
        self._shared: Any = None
        self._attach_lock = threading.Lock()

    def _use(self) -> Any:
        shared = self._shared
        if shared is None or not shared.ours:
            with self._attach_lock:
                shared = self._shared
                if shared is None or not shared.ours:
                    shared = self._shared = self.shared_class.attach(self._name)
        return shared

    @staticmethod
    def _current(token: _Token) -> bool:
        """The hold is through this process's open connection or file (not a parent's)."""
        return token.shared.ours and token.shared.registry.get(token.shared.name) is token.shared

    def close(self) -> None:
        with self._attach_lock:
            shared, self._shared = self._shared, None
        if shared is not None and shared.ours:
            shared.detach()


# --- PostgreSQL ---------------------------------------------------------------------------------

_HOLDER_SQL = """
SELECT l.pid, a.application_name, a.client_addr
FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
  AND l.classid::bigint = %s AND l.objid::bigint = %s
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
LIMIT 1
"""
_HELD_SQL = """
SELECT count(*) FROM pg_locks
WHERE locktype = 'advisory' AND granted AND objsubid = 1 AND pid = pg_backend_pid()
  AND classid::bigint = %s AND objid::bigint = %s
"""


def _advisory_ids(number: int) -> tuple[int, int]:
    """How ``pg_locks`` shows a bigint advisory key: its high and low 32 bits as oids."""
    unsigned = number & 0xFFFF_FFFF_FFFF_FFFF
    return unsigned >> 32, unsigned & 0xFFFF_FFFF


class _PgChannel(_Shared):
    """The process's lock connection to one database alias."""

    registry: ClassVar[dict[str, _Shared]] = {}

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.connection: Any = None
        self.generation = 0

    def connect(self) -> Any:
        """The open lock connection, made (autocommit, private) when there is none."""
        if self.connection is None:
            connection = connections.create_connection(self.name)
            # Its own settings: never pooled (a pool would hand the session, locks and all, to
            # someone else), never closed by a health check or CONN_MAX_AGE.
            settings = dict(connection.settings_dict)
            settings["OPTIONS"] = {
                k: v for k, v in (settings.get("OPTIONS") or {}).items() if k != "pool"
            }
            settings.update(AUTOCOMMIT=True, CONN_MAX_AGE=None, CONN_HEALTH_CHECKS=False)
            connection.settings_dict = settings
            connection.inc_thread_sharing()
            name = f"warlock_ai session locks {local_owner_prefix()}{os.getpid()}"
            try:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT set_config('application_name', %s, false)", [name[:63]])
            except BaseException:
                connection.close()
                raise
            self.connection = connection
            self.generation += 1
            self.held.clear()
        return self.connection

    def query(self, sql: str, params: list[Any]) -> Any:
        """One row of ``sql`` on the lock connection; a failure closes it (its locks go)."""
        fresh = self.connection is None
        try:
            with self.connect().cursor() as cursor:
                cursor.execute(sql, params)
                return cursor.fetchone()
        except DatabaseError as exc:
            self.drop()
            if fresh:
                raise StoreUnavailableError(
                    f'session lock: database "{self.name}" failed: {_first_line(exc)}', cause=exc
                ) from exc
            raise _Broken from exc

    def drop(self) -> None:
        connection, self.connection = self.connection, None
        self.held.clear()
        if connection is not None:
            with contextlib.suppress(DatabaseError):
                connection.close()

    def shut(self) -> None:
        if self.connection is not None:
            try:
                with self.connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock_all()")
            except DatabaseError:
                pass
        self.drop()

    def abandon(self) -> None:
        # psycopg leaves a connection made in another process alone when collected.
        self.connection = None


class _Broken(Exception):
    """The lock connection failed after it had worked: it is closed, try a new one."""


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


class PostgresSessionLock(_SharedLock):
    """A session-level advisory lock (``pg_try_advisory_lock(bigint)``) on the database alias
    ``using``, held on one connection of this process made for the locks alone (the ORM's
    connection may be closed by any code, which would drop the lock silently).

    The key space of advisory locks is shared with anything else using them on the database.
    A connection pooler in transaction mode (PgBouncer) cannot keep session locks: point the
    alias at the server, or at a pooler in session mode.
    """

    shared_class = _PgChannel
    #: Checking the connection still holds the lock; a broken one sets ``held.lost``.
    renew_every: float | None = 5.0

    def __init__(self, using: str = "default") -> None:
        if using not in connections:
            raise StoreError(f"session lock: no database alias {using!r} in settings.DATABASES")
        super().__init__(using)
        self.using = using

    def __repr__(self) -> str:
        return f"<PostgresSessionLock using={self.using!r}>"

    def try_acquire(self, key: LockKey) -> Any:
        channel: _PgChannel = self._use()
        number = key.int64
        with channel.guard:
            if number in channel.held:
                return None
            try:
                row = channel.query("SELECT pg_try_advisory_lock(%s)", [number])
            except _Broken:  # a connection that died idle: one retry on a new one
                row = channel.query("SELECT pg_try_advisory_lock(%s)", [number])
            if not row[0]:
                return None
            channel.held.add(number)
            return _Token(channel, channel.generation, number)

    def release(self, key: LockKey, token: _Token) -> None:
        channel = token.shared
        assert isinstance(channel, _PgChannel)
        if not self._current(token):
            return
        with channel.guard:
            if channel.generation != token.generation or token.number not in channel.held:
                return  # its connection is gone, and the lock with it
            channel.held.discard(token.number)
            with contextlib.suppress(_Broken, StoreError):
                channel.query("SELECT pg_advisory_unlock(%s)", [token.number])

    def renew(self, key: LockKey, token: _Token) -> bool:
        channel = token.shared
        assert isinstance(channel, _PgChannel)
        if not self._current(token):
            return False
        with channel.guard:
            if channel.generation != token.generation or channel.connection is None:
                return False
            try:
                row = channel.query(_HELD_SQL, list(_advisory_ids(token.number)))
            except (_Broken, StoreError):
                return False
            return bool(row[0])

    def holder(self, key: LockKey) -> str | None:
        channel: _PgChannel = self._use()
        with channel.guard:
            try:
                row = channel.query(_HOLDER_SQL, list(_advisory_ids(key.int64)))
            except _Broken:
                return None
        if row is None:
            return None
        pid, application, address = row
        where = f", client {address}" if address else ""
        return f"PostgreSQL backend pid {pid} (application_name {application!r}{where})"


# --- SQLite -------------------------------------------------------------------------------------

#: ``struct flock`` on Linux (``F_GETLK``); elsewhere the holder is not named.
_FLOCK = struct.Struct("hhqqi4x") if sys.platform.startswith("linux") else None
_OFFSETS = 2**62


class _LockFile(_Shared):
    """The process's one descriptor of a lock file. POSIX record locks belong to the
    process, and closing any descriptor of the file drops all of them: so never two."""

    registry: ClassVar[dict[str, _Shared]] = {}

    def __init__(self, name: str) -> None:
        super().__init__(name)
        database = name.removesuffix(".warlock-locks")
        try:
            mode = os.stat(database).st_mode & 0o666
        except OSError:
            mode = 0o644
        try:
            self.fd: int | None = os.open(name, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, mode)
        except OSError as exc:
            raise StoreError(f"session lock: cannot open the lock file {name}: {exc}") from exc

    def shut(self) -> None:
        self.abandon()

    def abandon(self) -> None:
        # A forked child closes the parent's descriptor: the child holds no lock through it.
        fd, self.fd = self.fd, None
        if fd is not None:
            os.close(fd)

    def holder_pid(self, offset: int) -> int | None:
        if _FLOCK is None or self.fd is None:
            return None
        query = _FLOCK.pack(fcntl.F_WRLCK, os.SEEK_SET, offset, 1, 0)
        kind, _whence, _start, _length, pid = _FLOCK.unpack(
            fcntl.fcntl(self.fd, fcntl.F_GETLK, query)
        )
        return None if kind == fcntl.F_UNLCK else pid


class SQLiteSessionLock(_SharedLock):
    """A POSIX byte-range lock (``lockf``) in ``<database>.warlock-locks``, one byte per
    session, for every process using the SQLite database at ``path`` on this host (file
    locks on a network file system may not be reliable)."""

    shared_class = _LockFile

    def __init__(self, path: str | os.PathLike[str]) -> None:
        database = os.fspath(path)
        if sqlite_in_memory(database):
            raise ValueError(
                f"SQLiteSessionLock: {database!r} is an in-memory database, which lives in "
                "one process: use ProcessSessionLock (what database_session_lock() gives it)"
            )
        if database.startswith("file:"):
            database = database[5:].split("?", 1)[0]
        self.path = os.path.realpath(database) + ".warlock-locks"
        super().__init__(self.path)

    def __repr__(self) -> str:
        return f"<SQLiteSessionLock {self.path}>"

    @staticmethod
    def _offset(key: LockKey) -> int:
        return key.int64 % _OFFSETS

    def try_acquire(self, key: LockKey) -> Any:
        lock_file: _LockFile = self._use()
        offset = self._offset(key)
        with lock_file.guard:
            if offset in lock_file.held or lock_file.fd is None:
                return None
            try:
                fcntl.lockf(lock_file.fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, offset)
            except (BlockingIOError, PermissionError):
                return None
            except OSError as exc:
                raise StoreError(f"session lock: locking {self.path} failed: {exc}") from exc
            lock_file.held.add(offset)
            return _Token(lock_file, 0, offset)

    def release(self, key: LockKey, token: _Token) -> None:
        lock_file = token.shared
        assert isinstance(lock_file, _LockFile)
        if not self._current(token):
            return
        with lock_file.guard:
            if token.number in lock_file.held and lock_file.fd is not None:
                lock_file.held.discard(token.number)
                fcntl.lockf(lock_file.fd, fcntl.LOCK_UN, 1, token.number)

    def holder(self, key: LockKey) -> str | None:
        lock_file: _LockFile = self._use()
        offset = self._offset(key)
        with lock_file.guard:
            if offset in lock_file.held:
                return f"process {os.getpid()} (this one)"
            pid = lock_file.holder_pid(offset)
        return None if pid is None else f"process {pid} on this host (lock file {self.path})"


# --- Redis --------------------------------------------------------------------------------------


def _field(text: str) -> str:
    return f"{len(text)}:{text}"


class RedisSessionLock(SessionLock):
    """A token (``host:pid:random``) set with ``NX`` and an expiry of ``ttl`` seconds,
    renewed every ``ttl / 3`` while held. A holder that is a dead process of this host is
    taken over at once; one elsewhere keeps the session until its token expires."""

    cross_process = True
    blocking_io = True

    def __init__(
        self,
        client: Any = None,
        url: str | None = None,
        *,
        prefix: str = SESSION_LOCK_PREFIX,
        ttl: float = 30.0,
    ) -> None:
        from .redis_connection import Connection

        if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not 0 < ttl <= 86400:
            raise ValueError(f"ttl must be a number of seconds in (0, 86400], not {ttl!r}")
        super().__init__()
        self._conn = Connection(type(self).__name__, client, None, url)
        self.prefix = prefix
        self.ttl = float(ttl)
        self.renew_every = self.ttl / 3

    def __repr__(self) -> str:
        return f"<RedisSessionLock {self._conn.url} prefix={self.prefix!r} ttl={self.ttl:g}>"

    def key(self, key: LockKey) -> str:
        return f"{self.prefix}{_field(key.name)}:{_field(key.session_id)}"

    @property
    def _ttl_ms(self) -> int:
        return max(1, round(self.ttl * 1000))

    def try_acquire(self, key: LockKey) -> Any:
        from .redis_connection import as_text
        from .redis_scripts import take_session_lock

        name, token = self.key(key), new_owner_id()
        with self._conn.errors("session lock", name):
            reply = take_session_lock(self._conn.client, [name], [token, self._ttl_ms, ""])
            if reply[0] == 1:
                return token
            holder = as_text(reply[1]) if reply[1] else ""
            if not owner_is_dead(holder):
                return None
            reply = take_session_lock(self._conn.client, [name], [token, self._ttl_ms, holder])
        if reply[0] == 1:
            logger.info("took over session lock %s from dead holder %s", name, holder)
            return token
        return None

    def release(self, key: LockKey, token: str) -> None:
        from .redis_scripts import release_session_lock

        if token.rsplit(":", 2)[1] != str(os.getpid()):
            return  # a forked child leaving the block: the lock is its parent's
        name = self.key(key)
        with self._conn.errors("session lock release", name):
            release_session_lock(self._conn.client, [name], [token])

    def renew(self, key: LockKey, token: str) -> bool:
        from .redis_scripts import renew_session_lock

        name = self.key(key)
        with self._conn.errors("session lock renewal", name):
            return bool(renew_session_lock(self._conn.client, [name], [token, self._ttl_ms]))

    def holder(self, key: LockKey) -> str | None:
        from .redis_connection import as_text

        name = self.key(key)
        with self._conn.errors("session lock holder", name):
            value = self._conn.client.get(name)
        return as_text(value) if value else None

    def close(self) -> None:
        """Close the client if it was built from ``url`` (a passed client is the caller's)."""
        self._conn.close()
