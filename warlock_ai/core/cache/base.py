"""The cache driver contract (``CacheDriver``) and what every driver shares: checking values,
vectors and ttls, and ranking candidates by cosine similarity."""

from __future__ import annotations

import asyncio
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from ..errors import (
    CacheConfigurationError,
    CacheUnsupportedError,
    SnapshotSerializationError,
)
from ..runs.serialization import dumps

DEFAULT_NAMESPACE = "default"


@dataclass(frozen=True)
class CacheHit:
    """One result of ``similar()``: the entry's key, value and scope, and its cosine score."""

    key: str
    value: Any
    score: float
    scope: str | None = None


class CacheDriver(ABC):
    """A namespaced JSON key-value cache with expiry, scopes and (optionally) vector search.

    ``scope`` is matched exactly inside the driver: ``scope=None`` reads only entries written
    without a scope. ``ttl`` is in seconds; an expired entry is a miss. The ``a``-twins run
    the sync method in a worker thread unless a driver has a native async path.
    """

    supports_similarity: ClassVar[bool] = False
    supports_ttl: ClassVar[bool] = True
    #: The vector size this driver accepts; ``None`` until the first vector fixes it.
    dimensions: int | None = None
    #: The driver does blocking I/O: its async twins run it in a worker thread.
    blocking_io: ClassVar[bool] = True

    @abstractmethod
    def get(self, key: str, *, namespace: str = DEFAULT_NAMESPACE, scope: str | None = None) -> Any:
        """The value under ``key``, or ``None`` when absent, expired or of another scope."""

    def set(
        self,
        key: str,
        value: Any,
        *,
        namespace: str = DEFAULT_NAMESPACE,
        vector: Sequence[float] | None = None,
        ttl: float | None = None,
        scope: str | None = None,
    ) -> None:
        """Store ``value`` (JSON) under ``key``, replacing what was there; ``ttl`` in seconds."""
        text = encode_value(value)
        floats = self.check_vector(vector)
        seconds = check_ttl(ttl)
        self._store(key, text, namespace=namespace, vector=floats, ttl=seconds, scope=scope)

    @abstractmethod
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
        """Write an entry whose value (``text``, JSON), vector and ttl are already checked."""

    @abstractmethod
    def delete(self, key: str, *, namespace: str = DEFAULT_NAMESPACE) -> None:
        """Remove ``key`` (nothing happens when it is absent)."""

    @abstractmethod
    def remove_namespace(self, namespace: str) -> None:
        """Remove every entry of ``namespace``."""

    def similar(
        self,
        vector: Sequence[float],
        *,
        namespace: str = DEFAULT_NAMESPACE,
        top_k: int = 5,
        threshold: float = 0.0,
        scope: str | None = None,
    ) -> list[CacheHit]:
        """Up to ``top_k`` entries stored with a vector, by cosine score descending, none
        below ``threshold``; ``CacheUnsupportedError`` from a driver without similarity."""
        if not self.supports_similarity:
            raise self.unsupported("similar()")
        query = self.check_vector(vector, stored=False)
        assert query is not None
        check_top_k(top_k)
        return self._search(
            query, namespace=namespace, top_k=top_k, threshold=threshold, scope=scope
        )

    def _search(
        self,
        query: tuple[float, ...],
        *,
        namespace: str,
        top_k: int,
        threshold: float,
        scope: str | None,
    ) -> list[CacheHit]:
        """The search itself, on a checked query vector (drivers with similarity)."""
        raise self.unsupported("similar()")

    def schema(self) -> str:
        """The DDL this driver's migrations create ("" when it needs no tables)."""
        return ""

    async def aget(
        self, key: str, *, namespace: str = DEFAULT_NAMESPACE, scope: str | None = None
    ) -> Any:
        return await self._async(self.get, key, namespace=namespace, scope=scope)

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
        await self._async(
            self.set, key, value, namespace=namespace, vector=vector, ttl=ttl, scope=scope
        )

    async def adelete(self, key: str, *, namespace: str = DEFAULT_NAMESPACE) -> None:
        await self._async(self.delete, key, namespace=namespace)

    async def aremove_namespace(self, namespace: str) -> None:
        await self._async(self.remove_namespace, namespace)

    async def asimilar(
        self,
        vector: Sequence[float],
        *,
        namespace: str = DEFAULT_NAMESPACE,
        top_k: int = 5,
        threshold: float = 0.0,
        scope: str | None = None,
    ) -> list[CacheHit]:
        hits: list[CacheHit] = await self._async(
            self.similar,
            vector,
            namespace=namespace,
            top_k=top_k,
            threshold=threshold,
            scope=scope,
        )
        return hits

    async def _async(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """A sync method under ``await``: in a worker thread when it does I/O, else here."""
        if self.blocking_io:
            return await asyncio.to_thread(method, *args, **kwargs)
        return method(*args, **kwargs)

    # --- shared checks ------------------------------------------------------------------

    def unsupported(self, operation: str) -> CacheUnsupportedError:
        return CacheUnsupportedError(
            f"{type(self).__name__} has no similarity search, so {operation} is not available; "
            "use ai.cache.memory(), ai.cache.lru() or ai.cache.db() for vectors"
        )

    def check_vector(
        self, vector: Sequence[float] | None, *, stored: bool = True
    ) -> tuple[float, ...] | None:
        """``vector`` as floats, refused when this driver has no similarity or another size.

        The first ``stored`` vector fixes the size of a driver built without ``dimensions``.
        """
        if vector is None:
            return None
        if not self.supports_similarity:
            raise self.unsupported("set(vector=...)" if stored else "similar()")
        floats = as_floats(vector)
        if self.dimensions is None:
            if stored:
                self.dimensions = len(floats)
        elif len(floats) != self.dimensions:
            raise CacheConfigurationError(
                f"{type(self).__name__} holds {self.dimensions}-dimension vectors, got one of "
                f"{len(floats)}; use the embedder the cache was configured for "
                '(WARLOCK_AI["CACHE"]["OPTIONS"]["dimensions"] or dimensions=)'
            )
        return floats


def encode_value(value: Any) -> str:
    """``value`` as JSON text, or ``SnapshotSerializationError`` naming the non-JSON path
    ("cache value is not JSON: value.when: datetime is not JSON-serialisable; ...")."""
    try:
        return dumps(value, path="value")
    except SnapshotSerializationError as exc:
        message = exc.message.replace("snapshot", "cache value", 1)
        raise SnapshotSerializationError(message, path=exc.path, type_name=exc.type_name) from None


def check_ttl(ttl: float | None) -> float | None:
    if ttl is None:
        return None
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not ttl > 0:
        raise ValueError(
            f"ttl must be None (no expiry) or a positive number of seconds, not {ttl!r}"
        )
    return float(ttl)


def check_top_k(top_k: int) -> int:
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"top_k must be a positive int, not {top_k!r}")
    return top_k


def as_floats(vector: Iterable[float]) -> tuple[float, ...]:
    floats = tuple(float(x) for x in vector)
    if not floats or not all(math.isfinite(x) for x in floats):
        raise ValueError("a cache vector must be a non-empty list of finite numbers")
    if not any(floats):
        raise ValueError("a cache vector must not be all zeros (its cosine is undefined)")
    return floats


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = math.fsum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(math.fsum(x * x for x in a)) * math.sqrt(math.fsum(y * y for y in b)))


def rank(
    query: Sequence[float],
    candidates: Iterable[tuple[str, Any, str | None, Sequence[float]]],
    top_k: int,
    threshold: float,
) -> list[CacheHit]:
    """Exact search: ``(key, value, scope, vector)`` candidates scored, filtered and sorted."""
    hits = []
    for key, value, scope, vector in candidates:
        score = cosine(query, vector)
        if score >= threshold:
            hits.append(CacheHit(key, value, score, scope))
    hits.sort(key=lambda hit: (-hit.score, hit.key))
    return hits[:top_k]
