"""A write transaction that takes its lock at once, on PostgreSQL and SQLite alike, and rows
renewed from a thread while their holder works."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from django.db import connections, transaction
from django.db.models import QuerySet

from .conf import warlock_settings

__all__ = ["renewing", "write_lock"]

logger = logging.getLogger("warlock_ai.jobs")


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


@contextmanager
def renewing(rows: QuerySet, what: str, values: Callable[[], dict[str, Any]]) -> Iterator[None]:
    """While the block runs, ``rows.update(**values())`` every third of ``LEASE_SECONDS``
    from a thread of its own (with its own database connection): a delivery's ``seen_at``, a
    concurrency slot's ``expires_at``. A failed renewal is logged and tried at the next one."""
    stopped = threading.Event()
    every = max(float(warlock_settings.LEASE_SECONDS) / 3, 0.2)

    def beat() -> None:
        try:
            while not stopped.wait(every):
                try:
                    rows.update(**values())
                except Exception as exc:  # the next beat tries again; the lease decides
                    logger.warning("%s: could not renew it: %s", what, exc)
                    connections[rows.db].close()
        finally:
            connections[rows.db].close()

    thread = threading.Thread(target=beat, name=f"warlock-renew {what}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stopped.set()
        thread.join(timeout=10)
