"""Build the stores named in ``settings.WARLOCK_AI`` (like Django's cache handler): once,
cached, rebuilt when the setting changes. A bad dotted path raises ``ImproperlyConfigured``
naming it."""

from __future__ import annotations

import threading
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.utils.module_loading import import_string

from ..conf import warlock_settings
from ..core.runs.config import is_cache_driver

_lock = threading.Lock()
_built: dict[str, Any] = {}


def build(key: str, config: dict[str, Any]) -> Any:
    """Instantiate ``config["BACKEND"](**config["OPTIONS"])`` for the setting ``key``."""
    path = config["BACKEND"]
    try:
        cls = import_string(path)
    except ImportError as exc:
        raise ImproperlyConfigured(
            f'settings.WARLOCK_AI["{key}"]["BACKEND"] = {path!r} cannot be imported: {exc}'
        ) from exc
    try:
        store = cls(**config["OPTIONS"])
    except TypeError as exc:
        raise ImproperlyConfigured(
            f'settings.WARLOCK_AI["{key}"]["OPTIONS"] do not fit {path}: {exc}'
        ) from exc
    if key == "CACHE" and not is_cache_driver(store):
        raise ImproperlyConfigured(
            f'settings.WARLOCK_AI["CACHE"]["BACKEND"] = {path!r} is not a cache driver '
            "(a warlock_ai.cache.CacheDriver such as warlock_ai.stores.orm_cache."
            "DatabaseCacheDriver)"
        )
    return store


def get_store(key: str) -> Any:
    """The store configured under ``key`` (``SNAPSHOT_STORE``, ...), or ``None``."""
    store = _built.get(key)
    if store is None:
        with _lock:
            store = _built.get(key)
            if store is None:
                config = getattr(warlock_settings, key)
                if config is None:
                    return None
                store = _built[key] = build(key, config)
    return store


def get_snapshot_store() -> Any:
    return get_store("SNAPSHOT_STORE")


def get_checkpoint_store() -> Any:
    return get_store("CHECKPOINT_STORE")


def get_cache_driver() -> Any:
    """The driver built from ``WARLOCK_AI["CACHE"]``, or ``None`` when none is configured."""
    return get_store("CACHE")


def reset() -> None:
    with _lock:
        _built.clear()


def _reset_on_change(*, setting: str, **kwargs: Any) -> None:
    if setting in ("WARLOCK_AI", "DATABASES"):
        reset()


setting_changed.connect(_reset_on_change)
