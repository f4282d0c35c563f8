"""Session lock factories, for an orchestrator's ``session_lock=``: ``ai.session_lock.db()``,
``ai.session_lock.redis(...)``, ``ai.session_lock.process()``.

Without one, an orchestrator uses its checkpoint store's (``store.session_lock()``);
``session_lock=False`` turns locking off.
"""

from __future__ import annotations

from typing import Any

from .core.orchestrator.locks import ProcessSessionLock, SessionLock

__all__ = ["db", "process", "redis"]


def process() -> ProcessSessionLock:
    """Serialises the turns of a session within this process only (threads and tasks)."""
    return ProcessSessionLock()


def db(using: str = "default") -> SessionLock:
    """The lock of database alias ``using``: a PostgreSQL advisory lock, or a file lock
    beside a SQLite database (an in-memory one gets ``process()``)."""
    from .stores.session_locks import database_session_lock

    return database_session_lock(using)


def redis(
    *,
    url: str | None = None,
    client: Any = None,
    prefix: str = "warlock:session-lock:",
    ttl: float = 30.0,
) -> SessionLock:
    """A Redis token lock (``url=`` or ``client=``, a ``redis.Redis``): it expires ``ttl``
    seconds after its holder stops renewing it (at once when the holder is a dead process of
    this host)."""
    from .stores.session_locks import RedisSessionLock

    return RedisSessionLock(client=client, url=url, prefix=prefix, ttl=ttl)
