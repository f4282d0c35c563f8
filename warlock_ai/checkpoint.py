"""Checkpoint store factories: ``ai.checkpoint.memory()``, ``ai.checkpoint.db()`` (alias
``pg``), ``ai.checkpoint.redis(...)``."""

from __future__ import annotations

from typing import Any

from .stores.memory import MemoryCheckpointStore

__all__ = ["db", "memory", "pg", "redis"]


def memory() -> MemoryCheckpointStore:
    """A process-local store for development and tests; it does not survive a restart."""
    return MemoryCheckpointStore()


def db(using: str = "default") -> Any:
    """The Django ORM store on database alias ``using`` (PostgreSQL, SQLite, ...)."""
    from .stores.orm_checkpoints import DatabaseCheckpointStore

    return DatabaseCheckpointStore(using=using)


#: ``ai.checkpoint.pg()`` reads like the seeds; it is the ORM store (PostgreSQL in production).
pg = db


def redis(**options: Any) -> Any:
    """The Redis store: ``client=`` (a ``redis.Redis``) or ``url=``, and ``prefix=``, ``ttl=``."""
    from .stores.redis import RedisCheckpointStore

    return RedisCheckpointStore(**options)
