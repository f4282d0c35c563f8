"""Snapshot store factories: ``ai.snapshot.memory()``, ``ai.snapshot.db()`` (alias ``pg``)."""

from __future__ import annotations

from typing import Any

from .stores.memory import MemorySnapshotStore

__all__ = ["db", "memory", "pg"]


def memory() -> MemorySnapshotStore:
    """A process-local store for development and tests; it does not survive a restart."""
    return MemorySnapshotStore()


def db(using: str = "default") -> Any:
    """The Django ORM store on database alias ``using`` (PostgreSQL, SQLite, ...)."""
    from .stores.orm import DatabaseSnapshotStore

    return DatabaseSnapshotStore(using=using)


#: ``ai.snapshot.pg()`` reads like the seeds; it is the ORM store (PostgreSQL in production).
pg = db
