"""Process-wide defaults (``ai.config``) and store resolution.

Precedence everywhere: the store given to a definition, then ``ai.config``, then the
fallback a host framework registers (the Django app registers the stores configured in
``settings.WARLOCK_AI``), then nothing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("warlock_ai.config")

KEYS = ("default_snapshot_store", "default_checkpoint_store", "default_store")

_lock = threading.Lock()
_config: dict[str, Any] = {}
_listeners: list[Callable[[dict[str, Any]], Any]] = []
_fallbacks: dict[str, Callable[[], Any]] = {}


def config(**values: Any) -> dict[str, Any]:
    """Merge ``values`` into the defaults and return a copy; ``None`` clears a key.

    ``ai.config(default_snapshot_store=ai.snapshot.memory())``. Omitted keys keep their values.
    Unknown keys are refused so a typo does not silently do nothing.
    """
    unknown = sorted(set(values) - set(KEYS))
    if unknown:
        raise TypeError(f"ai.config() got unknown keys {unknown}; known keys: {list(KEYS)}")
    for key in ("default_snapshot_store", "default_checkpoint_store"):
        value = values.get(key)
        if value is not None and not all(
            callable(getattr(value, method, None)) for method in ("load", "save", "delete")
        ):
            raise TypeError(
                f"ai.config(): {key} must be a store (ai.snapshot.db(), ai.checkpoint.db(), "
                f"...), got {value!r}"
            )
    store = values.get("default_store")
    if store is not None and not is_cache_driver(store):
        raise TypeError(
            "ai.config(): default_store must be a cache driver (ai.cache.db(), "
            f"ai.cache.memory(), ...), got {store!r}"
        )
    with _lock:
        for key, value in values.items():
            if value is None:
                _config.pop(key, None)
            else:
                _config[key] = value
        snapshot = dict(_config)
        listeners = list(_listeners)
    for listener in listeners:
        try:
            listener(dict(snapshot))
        except Exception:
            logger.exception("ai.config listener failed")
    return snapshot


def is_cache_driver(value: Any) -> bool:
    """Whether ``value`` keeps the cache driver contract (``warlock_ai.core.cache``)."""
    from ..cache.base import CacheDriver

    return isinstance(value, CacheDriver)


def get_config() -> dict[str, Any]:
    """A copy of the current defaults; mutating it changes nothing."""
    with _lock:
        return dict(_config)


def reset_config() -> None:
    """Forget every default (for tests)."""
    with _lock:
        _config.clear()


def on_config_applied(listener: Callable[[dict[str, Any]], Any]) -> Callable[[], None]:
    """Call ``listener(copy)`` after every ``config()``; returns an unsubscribe function."""
    with _lock:
        _listeners.append(listener)

    def remove() -> None:
        with _lock:
            if listener in _listeners:
                _listeners.remove(listener)

    return remove


def register_fallback(key: str, factory: Callable[[], Any] | None) -> None:
    """Let a host framework supply the default for ``key`` when ``ai.config`` has none."""
    if key not in KEYS:
        raise ValueError(f"unknown config key {key!r}; known keys: {list(KEYS)}")
    with _lock:
        if factory is None:
            _fallbacks.pop(key, None)
        else:
            _fallbacks[key] = factory


def fallbacks() -> dict[str, Callable[[], Any]]:
    """A copy of the registered fallbacks (tests save and restore them)."""
    with _lock:
        return dict(_fallbacks)


def restore_fallbacks(saved: dict[str, Callable[[], Any]]) -> None:
    with _lock:
        _fallbacks.clear()
        _fallbacks.update(saved)


def resolve(key: str, explicit: Any = None) -> Any:
    """The store to use: ``explicit``, else ``ai.config``'s, else the registered fallback."""
    if explicit is not None:
        return explicit
    value = _config.get(key)
    if value is not None:
        return value
    factory = _fallbacks.get(key)
    return factory() if factory is not None else None
