"""Snapshot store factories: ``ai.snapshot.memory()``, ``ai.snapshot.db()`` (alias ``pg``),
``ai.snapshot.redis()``."""

from __future__ import annotations

from typing import Any

from .stores.memory import MemorySnapshotStore

__all__ = ["db", "memory", "pg", "redis"]


def memory(lease_seconds: float = 300) -> MemorySnapshotStore:
    """A process-local store for development and tests; it does not survive a restart."""
    return MemorySnapshotStore(lease_seconds=lease_seconds)


def db(
    using: str = "default",
    lease_seconds: float | None = None,
    write_retry_seconds: float = 15.0,
    native_async: bool = True,
    prepared: bool | None = None,
) -> Any:
    """The Django ORM store on database alias ``using`` (PostgreSQL, SQLite, ...).

    ``lease_seconds`` defaults to ``WARLOCK_AI["LEASE_SECONDS"]``. A write that fails
    because the database cannot be reached is retried for up to ``write_retry_seconds``.
    ``native_async``: on PostgreSQL, ``aexecute``'s snapshot writes go through psycopg's
    async connections of the store's own (False: through Django's connection, in its sync
    thread). ``prepared``: on PostgreSQL, saves are prepared statements (None: unless
    ``DATABASES[using]["DISABLE_SERVER_SIDE_CURSORS"]`` is set, Django's setting for a
    connection pooler in transaction mode).
    """
    from .stores.orm import DatabaseSnapshotStore

    return DatabaseSnapshotStore(
        using=using,
        lease_seconds=lease_seconds,
        write_retry_seconds=write_retry_seconds,
        native_async=native_async,
        prepared=prepared,
    )


#: ``ai.snapshot.pg()`` reads like the seeds; it is the ORM store (PostgreSQL in production).
pg = db


def redis(
    *,
    client: Any = None,
    url: str | None = None,
    async_client: Any = None,
    prefix: str = "warlock:snapshot:",
    lease_seconds: float = 300,
    ttl: int | None = None,
    write_retry_seconds: float = 15.0,
) -> Any:
    """A Redis store: pass ``client=`` (a ``redis.Redis``; optionally ``async_client=``, a
    ``redis.asyncio.Redis``) or ``url=``. ``ttl`` (seconds) makes each run's key expire.
    A write that fails because Redis cannot be reached is retried for up to
    ``write_retry_seconds``."""
    from .stores.redis import RedisSnapshotStore

    return RedisSnapshotStore(
        client=client,
        url=url,
        async_client=async_client,
        prefix=prefix,
        lease_seconds=lease_seconds,
        ttl=ttl,
        write_retry_seconds=write_retry_seconds,
    )
