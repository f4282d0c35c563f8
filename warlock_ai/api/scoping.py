"""The hook that narrows what the API reads: ``WARLOCK_AI["API_QUERYSET"]``.

A dotted path to ``narrow(request, queryset) -> queryset``, called with every queryset the
API reads (``Snapshot``, ``Checkpoint`` and ``CacheEntry`` rows; ``queryset.model`` says
which) before it lists, reads or acts. A multi-tenant project keeps each user to their
tenant's runs with it; a row it leaves out is, to that user, a row that does not exist (404).
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db.models import QuerySet
from django.utils.module_loading import import_string

from ..conf import warlock_settings


def narrowed(request: Any, queryset: QuerySet[Any]) -> QuerySet[Any]:
    """``queryset`` as the configured hook narrows it for ``request`` (as is without one)."""
    hook = _hook()
    if hook is None:
        return queryset
    result = hook(request, queryset)
    if not isinstance(result, QuerySet) or result.model is not queryset.model:
        raise ImproperlyConfigured(
            f'WARLOCK_AI["API_QUERYSET"] must return a queryset of {queryset.model.__name__}, '
            f"got {type(result).__name__}"
        )
    return result


def _hook() -> Any:
    path = warlock_settings.API_QUERYSET
    if path is None:
        return None
    if callable(path):
        return path
    try:
        return import_string(path)
    except ImportError as exc:
        raise ImproperlyConfigured(f'WARLOCK_AI["API_QUERYSET"] {path!r}: {exc}') from exc
