"""A write transaction that takes its lock at once, on PostgreSQL and SQLite alike."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import connections, transaction

__all__ = ["write_lock"]


@contextmanager
def write_lock(db: str) -> Iterator[None]:
    """A transaction that takes the write lock at once: ``select_for_update`` on PostgreSQL;
    on SQLite (which has no row locks) ``BEGIN IMMEDIATE``, so two workers' read-then-write
    never meet halfway ("database is locked")."""
    connection = connections[db]
    if connection.vendor != "sqlite" or connection.in_atomic_block:
        with transaction.atomic(using=db):
            yield
        return
    sqlite: Any = connection  # Django's SQLite backend reads transaction_mode at BEGIN
    if not hasattr(sqlite, "transaction_mode"):
        sqlite.get_connection_params()  # sets transaction_mode from OPTIONS
    mode = sqlite.transaction_mode
    sqlite.transaction_mode = "IMMEDIATE"
    try:
        with transaction.atomic(using=db):
            yield
    finally:
        sqlite.transaction_mode = mode
