"""``DatabaseCacheDriver``: cache entries as ``CacheEntry`` rows on any Django database.

Similarity search is pgvector's cosine distance (``<=>``, served by the HNSW index) where the
embedding column is a ``vector``, and exact search in Python elsewhere (SQLite, PostgreSQL
without pgvector). A ``get`` or ``similar`` hit adds one to the entry's ``hits``; on PostgreSQL
each lookup is one statement that counts its hits best-effort (``orm_cache_pg``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from asgiref.sync import sync_to_async
from django.db import connections
from django.db.models import F, Q
from django.utils import timezone

from .. import vector as pgvector
from ..core.cache.base import (
    DEFAULT_NAMESPACE,
    CacheDriver,
    CacheHit,
    rank,
)
from ..core.errors import CacheConfigurationError
from ..core.runs.serialization import loads
from . import orm_cache_pg
from .orm import model_ddl
from .orm_cache_pg import DEFAULT_EF_SEARCH

__all__ = ["DEFAULT_EF_SEARCH", "DatabaseCacheDriver"]

#: The HNSW index the latest migration creates where the embedding column is a vector: the
#: shared pool only (a scoped search reads its few rows exactly, by the (namespace, scope)
#: index). ``schema()`` prints it; a test checks it against the migration.
EMBEDDING_INDEX = pgvector.CreateVectorIndex(
    model_name="cacheentry",
    field_name="embedding",
    name="warlock_cache_embed_hnsw",
    m=16,
    ef_construction=64,
    condition=Q(scope__isnull=True),
)

#: The table's fillfactor on PostgreSQL (migration 0006): room on each page, so that counting
#: a hit is a HOT update that adds no index entries.
FILLFACTOR = 80


class DatabaseCacheDriver(CacheDriver):
    """The ORM cache on database alias ``using``; ``dimensions`` defaults to
    ``WARLOCK_AI["CACHE"]["OPTIONS"]["dimensions"]`` (else 1536), the column's size.

    ``ef_search`` is pgvector's ``hnsw.ef_search`` (candidates an HNSW search keeps: more is
    slower and finds the true nearest entry more often), set once per database connection;
    ``None`` leaves the server's setting alone.
    """

    supports_similarity = True
    uses_pgvector = True  # read by the system checks (W003/W004)

    def __init__(
        self,
        using: str = "default",
        dimensions: int | None = None,
        ef_search: int | None = DEFAULT_EF_SEARCH,
    ) -> None:
        self.using = using
        self.dimensions = dimensions if dimensions is not None else pgvector.dimensions()
        self.ef_search = orm_cache_pg.check_ef_search(ef_search)
        self._column_checked = False

    def check_vector(
        self, vector: Sequence[float] | None, *, stored: bool = True
    ) -> tuple[float, ...] | None:
        floats = super().check_vector(vector, stored=stored)
        if floats is not None and not self._column_checked:
            self._check_column()
        return floats

    def _check_column(self) -> None:
        """A pgvector column sized otherwise would fail every write with a database error."""
        from ..models import CacheEntry

        connection = connections[self.using]
        if pgvector.pgvector_installed(connection):
            meta = CacheEntry._meta
            found = pgvector.column_type(connection, meta.db_table, "embedding")
            if found is not None and found[0] == "vector" and found[1] != self.dimensions:
                raise CacheConfigurationError(
                    f"{meta.db_table}.embedding on database {self.using!r} is vector({found[1]}), "
                    f"but the cache driver was given dimensions={self.dimensions}; use the "
                    "embedder the column was migrated for, or convert the column"
                )
        self._column_checked = True

    def _entries(self, namespace: str, scope: str | None) -> Any:
        from ..models import CacheEntry

        found = CacheEntry.objects.using(self.using).for_namespace(namespace).live()
        return found.filter(scope__isnull=True) if scope is None else found.filter(scope=scope)

    def get(self, key: str, *, namespace: str = DEFAULT_NAMESPACE, scope: str | None = None) -> Any:
        connection = connections[self.using]
        if connection.vendor == "postgresql":
            table = connection.ops.quote_name(self._table)
            return orm_cache_pg.get(connection, table, key, namespace, scope, timezone.now())
        row = self._entries(namespace, scope).filter(key=key).values_list("pk", "value").first()
        if row is None:
            return None
        self._count_hits(pk=row[0])
        return row[1]

    def _store(
        self,
        key: str,
        text: str,
        *,
        namespace: str,
        vector: tuple[float, ...] | None,
        ttl: float | None,
        scope: str | None,
    ) -> None:
        from ..models import CacheEntry

        stored = loads(text)
        now = timezone.now()
        entry = CacheEntry(
            namespace=namespace,
            key=key,
            scope=scope,
            value=stored,
            embedding=None if vector is None else list(vector),
            expires_at=None if ttl is None else now + timedelta(seconds=ttl),
            hits=0,
            created_at=now,
        )
        # One statement: an upsert on (namespace, key) on every backend.
        CacheEntry.objects.using(self.using).bulk_create(
            [entry],
            update_conflicts=True,
            unique_fields=["namespace", "key"],
            update_fields=["scope", "value", "embedding", "expires_at", "hits", "created_at"],
        )

    def delete(self, key: str, *, namespace: str = DEFAULT_NAMESPACE) -> None:
        from ..models import CacheEntry

        CacheEntry.objects.using(self.using).filter(namespace=namespace, key=key).delete()

    def remove_namespace(self, namespace: str) -> None:
        from ..models import CacheEntry

        CacheEntry.objects.using(self.using).for_namespace(namespace).delete()

    def _search(
        self,
        query: tuple[float, ...],
        *,
        namespace: str,
        top_k: int,
        threshold: float,
        scope: str | None,
    ) -> list[CacheHit]:
        connection = connections[self.using]
        if pgvector.pgvector_installed(connection):
            return orm_cache_pg.search(
                connection,
                connection.ops.quote_name(self._table),
                query,
                namespace=namespace,
                scope=scope,
                now=timezone.now(),
                top_k=top_k,
                threshold=threshold,
                ef_search=self.ef_search,
            )
        rows = self._entries(namespace, scope).filter(embedding__isnull=False)
        candidates = rows.values_list("key", "value", "scope", "embedding")
        hits = rank(query, candidates.iterator(), top_k, threshold)
        if hits:
            self._count_hits(namespace=namespace, key__in=[hit.key for hit in hits])
        return hits

    @property
    def _table(self) -> str:
        from ..models import CacheEntry

        return CacheEntry._meta.db_table

    def _count_hits(self, **lookup: Any) -> None:
        from ..models import CacheEntry

        CacheEntry.objects.using(self.using).filter(**lookup).update(hits=F("hits") + 1)

    def schema(self) -> str:
        """The SQL that the migrations run for ``CacheEntry`` on this database (like
        ``sqlmigrate``): the table, pgvector's HNSW index where the column is a ``vector``, and
        on PostgreSQL the table's fillfactor."""
        from ..models import CacheEntry

        connection = connections[self.using]
        statements = model_ddl(self.using, CacheEntry)
        if pgvector.pgvector_installed(connection):
            statements.insert(0, "CREATE EXTENSION IF NOT EXISTS vector;")
            with connection.schema_editor(collect_sql=True, atomic=False) as editor:
                statements.append(EMBEDDING_INDEX.sql(editor, CacheEntry) + ";")
        if connection.vendor == "postgresql":
            table = connection.ops.quote_name(CacheEntry._meta.db_table)
            statements.append(f"ALTER TABLE {table} SET (fillfactor = {FILLFACTOR});")
        return "\n".join(statements)

    async def aget(
        self, key: str, *, namespace: str = DEFAULT_NAMESPACE, scope: str | None = None
    ) -> Any:
        return await sync_to_async(self.get)(key, namespace=namespace, scope=scope)

    async def aset(
        self,
        key: str,
        value: Any,
        *,
        namespace: str = DEFAULT_NAMESPACE,
        vector: Sequence[float] | None = None,
        ttl: float | None = None,
        scope: str | None = None,
    ) -> None:
        await sync_to_async(self.set)(
            key, value, namespace=namespace, vector=vector, ttl=ttl, scope=scope
        )

    async def adelete(self, key: str, *, namespace: str = DEFAULT_NAMESPACE) -> None:
        await sync_to_async(self.delete)(key, namespace=namespace)

    async def aremove_namespace(self, namespace: str) -> None:
        await sync_to_async(self.remove_namespace)(namespace)

    async def asimilar(
        self,
        vector: Sequence[float],
        *,
        namespace: str = DEFAULT_NAMESPACE,
        top_k: int = 5,
        threshold: float = 0.0,
        scope: str | None = None,
    ) -> list[CacheHit]:
        return await sync_to_async(self.similar)(
            vector, namespace=namespace, top_k=top_k, threshold=threshold, scope=scope
        )
