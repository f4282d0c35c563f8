"""What both Redis stores share: the redis-py clients (built from a URL or passed in, one
async client per event loop), errors naming the server with its password hidden, and small
helpers for replies and options."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypedDict
from urllib.parse import parse_qsl, urlencode, urlsplit

try:
    import redis
    import redis.asyncio as aioredis
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("the Redis stores need redis-py: pip install 'warlock-ai[redis]'") from exc

from ..core.errors import StoreError, StoreUnavailableError


class _UrlDefaults(TypedDict):
    socket_connect_timeout: float
    socket_timeout: float


# Applied to clients built from a URL (query parameters in the URL win): a server that does
# not answer fails the operation instead of hanging the run.
_URL_DEFAULTS: _UrlDefaults = {"socket_connect_timeout": 5.0, "socket_timeout": 30.0}


class Connection:
    """The sync client, the async one, and the server's URL (password hidden) for errors."""

    def __init__(self, owner: str, client: Any, async_client: Any, url: str | None) -> None:
        if (client is None) == (url is None):
            got = "both" if client is not None else "neither"
            raise TypeError(
                f"{owner} needs exactly one of client= (a redis.Redis) or "
                f'url= (such as "redis://localhost:6379/0"); got {got}'
            )
        self._url = url
        self._async_client = async_client
        self._loop_clients: dict[int, tuple[weakref.ref[Any], Any]] = {}
        if url is not None:
            if async_client is not None:
                raise TypeError(f"{owner}: async_client= goes with client=, not with url=")
            self.client = redis.Redis.from_url(url, **_URL_DEFAULTS)
            self.url = hide_password(url)
            return
        if isinstance(client, aioredis.Redis):
            raise TypeError(
                f"{owner}: client= must be a sync redis.Redis; pass a redis.asyncio.Redis "
                "as async_client= (next to client=)"
            )
        if not isinstance(client, redis.Redis):
            raise TypeError(f"{owner}: client= must be a redis.Redis, not {type(client)!r}")
        if async_client is not None and not isinstance(async_client, aioredis.Redis):
            raise TypeError(
                f"{owner}: async_client= must be a redis.asyncio.Redis, not {type(async_client)!r}"
            )
        self.client = client
        self.url = client_url(client)

    def async_client(self) -> Any | None:
        """The async client for the running event loop, or None (then use a worker thread).

        An asyncio client is bound to the loop that first used it, so a client built from the
        URL is made per loop; those of loops that have closed are dropped.
        """
        if self._async_client is not None or self._url is None:
            return self._async_client
        loop = asyncio.get_running_loop()
        entry = self._loop_clients.get(id(loop))
        if entry is not None and entry[0]() is loop:
            return entry[1]
        self._loop_clients = {
            key: (ref, client)
            for key, (ref, client) in self._loop_clients.items()
            if (alive := ref()) is not None and not alive.is_closed()
        }
        client = aioredis.Redis.from_url(self._url, **_URL_DEFAULTS)
        self._loop_clients[id(loop)] = (weakref.ref(loop), client)
        return client

    def close(self) -> None:
        """Close the sync client if it was built from the URL (a caller's client is theirs)."""
        if self._url is not None:
            self.client.close()

    async def aclose(self) -> None:
        """``close()``, and close the running loop's async client built from the URL."""
        self.close()
        if self._url is not None:
            loop = asyncio.get_running_loop()
            entry = self._loop_clients.pop(id(loop), None)
            if entry is not None and entry[0]() is loop:
                await entry[1].aclose()

    @contextmanager
    def errors(self, operation: str, key: str) -> Iterator[None]:
        """Turn any redis-py error into a one-line ``StoreError``."""
        try:
            yield
        except redis.RedisError as exc:
            detail = " ".join(str(exc).split()) or type(exc).__name__
            # Unreachable or restarting (loading its data): retrying may work. redis-py's
            # pool opens a new connection for the next command by itself.
            error = (
                StoreUnavailableError
                if isinstance(exc, redis.ConnectionError | redis.TimeoutError)
                else StoreError
            )
            raise error(
                f'Redis {operation} of key "{key}" failed at {self.url}: {detail}', cause=exc
            ) from exc


def hide_password(url: str) -> str:
    """``url`` with its password (in the authority or the query) replaced by ``***``."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        user, _, host = netloc.rpartition("@")
        netloc = f"{user.partition(':')[0]}:***@{host}"
    query = parts.query
    if "password=" in query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, "***" if k == "password" else v) for k, v in pairs], safe="*")
    # Built by hand: urlunsplit would turn "unix:///path" into "unix:/path".
    return f"{parts.scheme}://{netloc}{parts.path}" + (f"?{query}" if query else "")


def client_url(client: Any) -> str:
    """A URL naming the server of a ``redis.Redis`` (password hidden)."""
    pool = client.connection_pool
    kwargs = pool.connection_kwargs
    db = kwargs.get("db", 0)
    if kwargs.get("path"):
        return f"unix://{kwargs['path']}?db={db}"
    scheme = "rediss" if issubclass(pool.connection_class, redis.SSLConnection) else "redis"
    user = kwargs.get("username") or ""
    auth = f"{user}:***@" if kwargs.get("password") else (f"{user}@" if user else "")
    return f"{scheme}://{auth}{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}/{db}"


def as_text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def check_ttl(ttl: Any) -> int | None:
    if ttl is None:
        return None
    if isinstance(ttl, bool) or not isinstance(ttl, int) or ttl <= 0:
        raise ValueError(
            f"ttl must be None (no expiry) or a positive number of seconds, not {ttl!r}"
        )
    return ttl
