"""Prepared statements for the ORM store's saves on PostgreSQL (psycopg 3).

Django leaves psycopg's prepared statements off (``OPTIONS["prepare_threshold"]`` defaults
to None), so every statement is parsed, analysed and planned again by the server: for the
store's save, the hot path, that measured 50-80 µs of a 400 µs write. The store's own save
statements are few and fixed (one text per vendor and mode), so it prepares them on the
connection it is given, whatever the project's setting, with server-side binding; everything
else on that connection stays as Django configured it.

What can go wrong is a connection pooler that hands each transaction a different server
connection (pgbouncer in transaction mode before 1.21, or without ``max_prepared_statements``):
a statement prepared on one server connection is then missing on the next (SQLSTATE 26000)
or already there (42P05). Django's documented setting for such a pooler,
``DATABASES[alias]["DISABLE_SERVER_SIDE_CURSORS"] = True``, turns preparing off for that
alias, as does ``ai.snapshot.db(prepared=False)``. Without either, the first such error turns
it off for that alias in this process (logged once, as a warning) and the save is made again
unprepared; inside the caller's own transaction, which the error has aborted, the save fails
with a ``StoreError`` saying so instead.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any

logger = logging.getLogger("warlock_ai.persistence")

#: SQLSTATEs of a prepared statement the server does not have, or has already.
PREPARED_STATEMENT_ERRORS = frozenset({"26000", "42P05"})

#: A ``prepare_threshold`` no count of executions reaches.
_NEVER_BY_COUNT = sys.maxsize

_stopped: set[str] = set()
_lock = threading.Lock()


def prepares(using: str, connection: Any, setting: bool | None) -> bool:
    """Whether the store's saves on Django connection ``connection`` (alias ``using``) are
    prepared: only on PostgreSQL with psycopg 3; ``setting`` (the store's ``prepared``)
    when given, else unless the alias sets ``DISABLE_SERVER_SIDE_CURSORS``; never after a
    prepared statement failed on that alias in this process."""
    if connection.vendor != "postgresql" or using in _stopped or setting is False:
        return False
    if not _psycopg3():
        return False
    return setting or not connection.settings_dict.get("DISABLE_SERVER_SIDE_CURSORS")


def is_prepared_statement_error(exc: BaseException) -> bool:
    """Whether ``exc`` (psycopg's, or Django's wrapping it) says the server lacks or already
    has a prepared statement: the sign of a pooler in transaction mode."""
    for error in (exc, exc.__cause__):
        if getattr(error, "sqlstate", None) in PREPARED_STATEMENT_ERRORS:
            return True
    return False


def stop_preparing(using: str, exc: BaseException) -> None:
    """Saves on alias ``using`` are no longer prepared in this process (logged once)."""
    with _lock:
        if using in _stopped:
            return
        _stopped.add(using)
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    logger.warning(
        "database %r: a prepared save statement failed (%s); saves there are no longer "
        "prepared in this process. Behind a connection pooler in transaction mode, set "
        'DATABASES[%r]["DISABLE_SERVER_SIDE_CURSORS"] = True or ai.snapshot.db(prepared=False).',
        using,
        detail,
        using,
    )


def stopped_hint(using: str) -> str:
    return (
        f"; saves on database {using!r} are no longer prepared in this process (a connection "
        "pooler in transaction mode? see DISABLE_SERVER_SIDE_CURSORS)"
    )


def reset() -> None:
    """Forget the failures (tests): every alias may prepare again. A connection that lost
    its statements still names them in psycopg's cache: close it first."""
    with _lock:
        _stopped.clear()


def preparing_cursor(raw_connection: Any) -> Any:
    """A cursor on psycopg connection ``raw_connection`` that binds server-side and prepares
    every statement it executes (psycopg keeps the prepared statements per connection)."""
    return _preparing_cursor_class()(raw_connection)


@contextmanager
def allowed(raw_connection: Any) -> Iterator[None]:
    """psycopg prepares nothing, even when asked, on a connection whose
    ``prepare_threshold`` is None (Django's default): while this lasts it is a count no
    statement reaches, so only what is executed with ``prepare=True`` is prepared (the
    connection serves one statement at a time: Django's are per thread, the async ones are
    taken by one save)."""
    threshold = raw_connection.prepare_threshold
    if threshold is not None:
        yield
        return
    raw_connection.prepare_threshold = _NEVER_BY_COUNT
    try:
        yield
    finally:
        raw_connection.prepare_threshold = None


@cache
def _preparing_cursor_class() -> type:
    from django.db.backends.postgresql import base

    # Defined by Django only with psycopg 3 (``prepares`` checks that first).
    server_binding: Any = base.ServerBindingCursor

    class PreparingCursor(server_binding):
        """Django's server-binding cursor, with ``prepare=True`` on every execute."""

        prepares = True

        def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
            kwargs["prepare"] = True
            with allowed(self.connection):
                return super().execute(query, params, **kwargs)

    return PreparingCursor


@cache
def _psycopg3() -> bool:
    from django.db.backends.postgresql.psycopg_any import is_psycopg3

    return bool(is_psycopg3)
