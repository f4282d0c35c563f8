"""Native async statements on PostgreSQL for the ORM store's hot path (``asave``).

Django's database connections are synchronous: an ``await store.asave()`` that went through
them would hop to Django's sync thread (``sync_to_async``) for every snapshot write, which
measured 38% dearer per step than ``execute``. ``AsyncConnections`` keeps psycopg
``AsyncConnection`` objects to the same database, opened from the alias's own settings
(``DATABASES[alias]``: name, host, user, ``OPTIONS``; the test database under pytest-django;
Django's time zone and ``assume_role``), in autocommit, and reuses them across saves, event
loops, threads and stores: one connection per save in flight, at most ``MAX_IDLE`` kept open
per database and process (``shared()``; ``close_all()`` closes them, as the test suite does
before dropping its database). A connection that is not idle after its statement (broken,
or interrupted before psycopg could cancel the statement on the server) is closed, never
reused; a process that forked (an rq work horse) opens its own.

The save statements are bound server-side and prepared, as on the sync path
(``orm_prepared``: unless turned off); other statements follow Django's
``OPTIONS["server_side_binding"]`` and ``OPTIONS["prepare_threshold"]``.
"""

from __future__ import annotations

import contextlib
import os
import threading
from typing import Any

from .orm_prepared import allowed, is_prepared_statement_error

#: Connections kept open between saves, per database and process.
MAX_IDLE = 8

_shared: dict[tuple[Any, ...], AsyncConnections] = {}
_shared_lock = threading.Lock()


def shared(using: str) -> AsyncConnections:
    """The connections of this process to database ``using`` as its settings now name it
    (pytest-django renames the database to its test copy: another key, other connections)."""
    from django.db import connections

    settings = connections[using].settings_dict
    key = (using, id(settings), settings.get("NAME"))
    found = _shared.get(key)
    if found is None:
        with _shared_lock:
            found = _shared.setdefault(key, AsyncConnections(using))
    return found


def close_all() -> None:
    """Close every idle connection of this process."""
    with _shared_lock:
        pools = list(_shared.values())
    for pool in pools:
        pool.close()


class AsyncConnections:
    """Reusable psycopg ``AsyncConnection`` objects to Django database ``using``."""

    def __init__(self, using: str) -> None:
        self.using = using
        self._idle: list[tuple[Any, int]] = []
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<AsyncConnections using={self.using!r} idle={len(self._idle)}>"

    async def fetchone(self, sql: str, params: list[Any], prepare: bool = False) -> Any:
        """Run one statement and return its first row (None when it returns none);
        ``prepare``: bound server-side and prepared (``orm_prepared``)."""
        connection = await self._take()
        try:
            if prepare:
                import psycopg

                cursor = psycopg.AsyncCursor(connection)
                with allowed(connection):
                    await cursor.execute(sql, params, prepare=True)
            else:
                cursor = connection.cursor()
                await cursor.execute(sql, params)
            row = await cursor.fetchone() if cursor.description is not None else None
        except BaseException as exc:
            if prepare and is_prepared_statement_error(exc):
                _close_now(connection)  # psycopg still counts on the statements it lost
            else:
                self._drop_unless_reusable(connection)
            raise
        self._give_back(connection)
        return row

    async def _take(self) -> Any:
        pid = os.getpid()
        with self._lock:
            while self._idle:
                connection, owner = self._idle.pop()
                if owner == pid and not connection.closed:
                    return connection
        return await self._connect()

    def _give_back(self, connection: Any) -> None:
        from psycopg.pq import TransactionStatus

        if connection.closed or connection.info.transaction_status != TransactionStatus.IDLE:
            _close_now(connection)
            return
        with self._lock:
            if len(self._idle) < MAX_IDLE:
                self._idle.append((connection, os.getpid()))
                return
        _close_now(connection)

    def _drop_unless_reusable(self, connection: Any) -> None:
        """After a failed statement: a connection that answered (a constraint, a missing
        table) is idle and reusable; one interrupted mid-statement or broken is closed."""
        from psycopg.pq import TransactionStatus

        idle = TransactionStatus.IDLE
        if not connection.closed and connection.info.transaction_status == idle:
            self._give_back(connection)
            return
        _close_now(connection)

    async def _connect(self) -> Any:
        import psycopg
        from django.db import connections

        django_connection = connections[self.using]
        params = django_connection.get_connection_params()
        options = django_connection.settings_dict.get("OPTIONS", {})
        params.pop("cursor_factory", None)
        server_side = options.get("server_side_binding") is True
        connection = await psycopg.AsyncConnection.connect(
            **params,
            autocommit=True,
            cursor_factory=psycopg.AsyncCursor if server_side else psycopg.AsyncClientCursor,
        )
        try:
            await _configure(connection, django_connection, options)
        except BaseException:
            _close_now(connection)
            raise
        return connection

    def close(self) -> None:
        """Close every idle connection (a store being thrown away, tests)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for connection, owner in idle:
            if owner == os.getpid():
                _close_now(connection)


async def _configure(connection: Any, django_connection: Any, options: dict[str, Any]) -> None:
    """What Django does to each new connection: its time zone, and ``assume_role``."""
    timezone_name = django_connection.timezone_name
    if timezone_name and connection.info.parameter_status("TimeZone") != timezone_name:
        await connection.execute(django_connection.ops.set_time_zone_sql(), [timezone_name])
    role = options.get("assume_role")
    if role:
        from psycopg import sql

        await connection.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))


def _close_now(connection: Any) -> None:
    """Close without awaiting (also from a cancelled task): the socket goes at once."""
    with contextlib.suppress(Exception):  # already gone
        connection.pgconn.finish()
