"""``RedisCacheDriver``: one string key per entry with Redis's own expiry; no similarity
search (that would need RediSearch).

Keys are ``<prefix><len(namespace)>:<namespace>:<key>``: the length prefix keeps namespaces
``a:b`` and ``a`` apart, and ``remove_namespace`` scans ``<prefix><len>:<namespace>:*``.
"""

from __future__ import annotations

import re
from typing import Any

from ..core.cache.base import DEFAULT_NAMESPACE, CacheDriver, encode_value
from ..core.runs.serialization import loads
from .redis_connection import Connection

__all__ = ["CACHE_PREFIX", "RedisCacheDriver"]

CACHE_PREFIX = "warlock:cache:"
_GLOB = re.compile(r"([*?\[\]\\])")


class RedisCacheDriver(CacheDriver):
    """Entries as JSON strings in Redis; ``ttl`` becomes the key's expiry (``PX``)."""

    supports_similarity = False

    def __init__(
        self,
        *,
        client: Any = None,
        url: str | None = None,
        async_client: Any = None,
        prefix: str = CACHE_PREFIX,
    ) -> None:
        self._conn = Connection(type(self).__name__, client, async_client, url)
        self.prefix = prefix

    def key(self, key: str, namespace: str = DEFAULT_NAMESPACE) -> str:
        return f"{self._namespace_prefix(namespace)}{key}"

    def _namespace_prefix(self, namespace: str) -> str:
        return f"{self.prefix}{len(namespace)}:{namespace}:"

    def get(self, key: str, *, namespace: str = DEFAULT_NAMESPACE, scope: str | None = None) -> Any:
        name = self.key(key, namespace)
        with self._conn.errors("GET", name):
            raw = self._conn.client.get(name)
        if raw is None:
            return None
        entry = loads(raw)
        return entry["value"] if entry.get("scope") == scope else None

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
        head = encode_value({"scope": scope})
        name = self.key(key, namespace)
        px = None if ttl is None else max(1, round(ttl * 1000))
        with self._conn.errors("SET", name):
            self._conn.client.set(name, f'{head[:-1]},"value":{text}}}', px=px)

    def delete(self, key: str, *, namespace: str = DEFAULT_NAMESPACE) -> None:
        name = self.key(key, namespace)
        with self._conn.errors("DEL", name):
            self._conn.client.delete(name)

    def remove_namespace(self, namespace: str) -> None:
        pattern = _GLOB.sub(r"\\\1", self._namespace_prefix(namespace)) + "*"
        client = self._conn.client
        with self._conn.errors("SCAN", pattern):
            batch: list[Any] = []
            for name in client.scan_iter(match=pattern, count=1000):
                batch.append(name)
                if len(batch) >= 1000:
                    client.unlink(*batch)
                    batch.clear()
            if batch:
                client.unlink(*batch)

    def close(self) -> None:
        self._conn.close()
