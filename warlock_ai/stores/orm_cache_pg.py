"""The ORM cache driver's lookups on PostgreSQL: one statement each, the hit count included.

Counting hits is best-effort, so that it never slows a lookup down: a row another transaction
holds is skipped (``FOR UPDATE SKIP LOCKED``) rather than waited for, so a popular entry does
not serialise its readers; and outside a transaction the statement commits without waiting for
its WAL to reach the disk (``synchronous_commit`` off for that one statement), so a lookup
never waits for a flush. A crash may lose the last counts; entries themselves are written by
``set`` with the database's own durability. Inside the caller's transaction the count is part
of that transaction, committed (and flushed) with it.

Similarity search orders by pgvector's cosine distance, which the partial HNSW index
(``scope IS NULL``, migration 0006) serves for the shared pool; a scoped search cannot use
it and reads that scope's rows through the ``(namespace, scope)`` index, exactly.
"""

from __future__ import annotations

import json
from functools import cache, lru_cache
from typing import Any

from ..core.cache.base import CacheHit

#: ``hnsw.ef_search`` the ORM cache driver sets on its connections: pgvector's own default,
#: the largest that kept a lookup near 2 ms, at recall@1 >= 0.99 on embedding-like data
#: (docs/benchmarks.md, "Semantic cache lookup").
DEFAULT_EF_SEARCH = 40
#: pgvector's range for ``hnsw.ef_search``.
MAX_EF_SEARCH = 1000
_TUNED = "_warlock_hnsw_ef_search"

_LIVE = "namespace = %s AND {scope} AND (expires_at IS NULL OR expires_at >= %s)"
_COUNT = (
    "counted AS (UPDATE {table} AS e SET hits = e.hits + 1{relax} "
    "WHERE e.id IN (SELECT c.id FROM {table} AS c JOIN found AS f ON f.id = c.id{hit} "
    "FOR UPDATE OF c SKIP LOCKED))"
)
_RELAX = " FROM (SELECT set_config('synchronous_commit', 'off', true)) AS relaxed"
_GET = (
    "WITH found AS (SELECT id, value FROM {table} WHERE key = %s AND {live}), "
    "{count} SELECT value FROM found"
)
_SEARCH = (
    "WITH found AS (SELECT id, key, value, scope, embedding <=> %s::vector AS distance "
    "FROM {table} WHERE {live} AND embedding IS NOT NULL ORDER BY distance LIMIT %s), "
    "{count} SELECT key, value, scope, distance FROM found WHERE 1 - distance >= %s "
    "ORDER BY distance, key"
)


def check_ef_search(value: int | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_EF_SEARCH:
        raise ValueError(
            f"ef_search must be None (the server's hnsw.ef_search) or an int from 1 to "
            f"{MAX_EF_SEARCH}, not {value!r}"
        )
    return value


@lru_cache(maxsize=32)
def _statement(template: str, table: str, scoped: bool, relaxed: bool, threshold: bool) -> str:
    live = _LIVE.format(scope="scope = %s" if scoped else "scope IS NULL")
    count = _COUNT.format(
        table=table,
        relax=_RELAX if relaxed else "",
        hit=" WHERE 1 - f.distance >= %s" if threshold else "",
    )
    return template.format(table=table, live=live, count=count)


def _live_params(namespace: str, scope: str | None, now: Any) -> list[Any]:
    return [namespace, now] if scope is None else [namespace, scope, now]


def get(connection: Any, table: str, key: str, namespace: str, scope: str | None, now: Any) -> Any:
    """The value under ``key`` (``None`` when absent), its hit counted."""
    relaxed = connection.get_autocommit()
    sql = _statement(_GET, table, scope is not None, relaxed, False)
    with connection.cursor() as cursor:
        cursor.execute(sql, [key, *_live_params(namespace, scope, now)])
        row = cursor.fetchone()
    return None if row is None or row[0] is None else json.loads(row[0])


def search(
    connection: Any,
    table: str,
    query: tuple[float, ...],
    *,
    namespace: str,
    scope: str | None,
    now: Any,
    top_k: int,
    threshold: float,
    ef_search: int | None,
) -> list[CacheHit]:
    """Up to ``top_k`` nearest entries by cosine, none below ``threshold``, hits counted."""
    if ef_search is not None:
        tune(connection, ef_search)
    relaxed = connection.get_autocommit()
    sql = _statement(_SEARCH, table, scope is not None, relaxed, True)
    params = [vector_literal(query), *_live_params(namespace, scope, now)]
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, top_k, threshold, threshold])
        rows = cursor.fetchall()
    return [
        CacheHit(key, None if value is None else json.loads(value), 1.0 - distance, found_scope)
        for key, value, found_scope, distance in rows
    ]


def vector_literal(query: tuple[float, ...]) -> str:
    """pgvector's text form of ``query``, each number to 9 significant digits: as many as a
    float32 (what the column stores) needs to come back exactly, and a third of the time
    ``repr`` takes (the query vector is the largest thing a lookup sends)."""
    return "[" + _format(len(query)) % query + "]"


@cache
def _format(size: int) -> str:
    return ",".join(["%.9g"] * size)


def tune(connection: Any, ef_search: int) -> None:
    """``SET hnsw.ef_search`` once per database connection (a session setting).

    Set inside a transaction, the setting is only taken as done once that transaction commits
    (a rollback undoes a ``SET``); until then each search sets it again.
    """
    connection.ensure_connection()
    raw = connection.connection
    done = getattr(connection, _TUNED, None)
    if done is not None and done[0] is raw and done[1] == ef_search:
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('hnsw.ef_search', %s, false)", [str(ef_search)])
    if connection.get_autocommit():
        setattr(connection, _TUNED, (raw, ef_search))
    else:
        from django.db import transaction

        def remember() -> None:
            setattr(connection, _TUNED, (raw, ef_search))

        transaction.on_commit(remember, using=connection.alias)
