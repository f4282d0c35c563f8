"""Cache driver factories: ``ai.cache.memory()``, ``ai.cache.lru(max_entries=)``,
``ai.cache.file(path)``, ``ai.cache.redis(...)``,
``ai.cache.db(using=, dimensions=, ef_search=)``."""

from __future__ import annotations

import os
from typing import Any

from .core.cache import CacheDriver, CacheHit, FileCacheDriver, LRUCacheDriver, MemoryCacheDriver
from .stores.orm_cache_pg import DEFAULT_EF_SEARCH

__all__ = ["CacheDriver", "CacheHit", "db", "file", "lru", "memory", "redis"]


def memory(dimensions: int | None = None) -> MemoryCacheDriver:
    """A process-local cache with exact similarity search; it does not survive a restart."""
    return MemoryCacheDriver(dimensions=dimensions)


def lru(max_entries: int = 1000, dimensions: int | None = None) -> LRUCacheDriver:
    """A process-local cache of at most ``max_entries``, least recently used evicted first."""
    return LRUCacheDriver(max_entries=max_entries, dimensions=dimensions)


def file(path: str | os.PathLike[str]) -> FileCacheDriver:
    """One JSON file per entry below ``path``, written atomically; no similarity search."""
    return FileCacheDriver(path)


def redis(
    *,
    client: Any = None,
    url: str | None = None,
    async_client: Any = None,
    prefix: str = "warlock:cache:",
) -> Any:
    """Redis (``client=`` a ``redis.Redis``, or ``url=``): get/set with Redis expiry; no
    similarity search (``similar()`` raises ``CacheUnsupportedError``)."""
    from .stores.redis_cache import RedisCacheDriver

    return RedisCacheDriver(client=client, url=url, async_client=async_client, prefix=prefix)


def db(
    using: str = "default",
    dimensions: int | None = None,
    ef_search: int | None = DEFAULT_EF_SEARCH,
) -> Any:
    """``CacheEntry`` rows on database ``using``: pgvector HNSW search on PostgreSQL with the
    extension, exact search elsewhere. ``ef_search`` is pgvector's ``hnsw.ef_search`` for the
    driver's searches (``None`` leaves the server's setting)."""
    from .stores.orm_cache import DatabaseCacheDriver

    return DatabaseCacheDriver(using=using, dimensions=dimensions, ef_search=ef_search)
