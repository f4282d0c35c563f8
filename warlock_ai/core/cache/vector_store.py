"""The store and embedder a component searching by vector (the semantic cache, the memory's
vector tiers) uses, resolved and checked once at construction.

Kept out of :mod:`.base`: resolving the default reads :mod:`..runs.config`, which imports
:mod:`.base` to recognise a driver.
"""

from __future__ import annotations

from typing import Any

from ..errors import CacheConfigurationError, CacheUnsupportedError
from ..runs.config import resolve
from .base import CacheDriver


def similarity_store(where: str, what: str, explicit: CacheDriver | None) -> CacheDriver:
    """The driver ``what`` (a component searching by vector) uses: ``explicit``, else the
    configured default (``ai.config(default_store=)``, in Django ``WARLOCK_AI["CACHE"]``);
    one line naming what is missing when there is none or it cannot search."""
    found = resolve("default_store", explicit)
    if found is None:
        raise CacheConfigurationError(
            f"{where}: {what} has no store: no cache store was given (store=ai.cache.db() or "
            'another driver) nor configured (ai.config(default_store=...), WARLOCK_AI["CACHE"])'
        )
    if not isinstance(found, CacheDriver):
        raise TypeError(
            f"{where}: {what}'s store must be a cache driver (ai.cache.db(), ...), got {found!r}"
        )
    if not found.supports_similarity:
        raise CacheUnsupportedError(
            f"{where}: {what} needs similarity search, and {type(found).__name__} has no "
            "similarity search; use ai.cache.db(), ai.cache.memory() or ai.cache.lru()"
        )
    return found


def check_dimensions(where: str, what: str, embedder: Any, store: CacheDriver) -> None:
    """Refuse an embedder whose vectors are not the size ``store`` holds."""
    dimensions = getattr(embedder, "dimensions", None)
    size = store.dimensions
    if dimensions is not None and size is not None and dimensions != size:
        raise CacheConfigurationError(
            f"{where}: {what}'s store holds {size}-dimension vectors but the embedder makes "
            f"{dimensions}-dimension ones; use an embedder of the store's size or configure "
            'the cache for it (WARLOCK_AI["CACHE"]["OPTIONS"]["dimensions"])'
        )
