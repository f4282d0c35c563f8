"""Which tasks framework this project has: ``django.tasks`` (Django 6) or the ``django_tasks``
backport (Django 5.2), chosen as django-tasks-db chooses, so tasks and workers agree."""

from __future__ import annotations

from importlib.util import find_spec
from typing import Any

from .conf import warlock_settings

__all__ = ["backend", "tasks_module"]


def tasks_module() -> Any:
    """``django.tasks`` where Django has it, else ``django_tasks``; ImportError (one line)
    when neither is installed."""
    if find_spec("django.tasks") is not None:
        import django.tasks as module
    else:
        try:
            import django_tasks as module  # type: ignore[no-redef]
        except ImportError:
            raise ImportError(
                "Django's tasks framework is not installed: Django 6 has it; on Django 5.2, "
                "pip install 'warlock-ai[tasks]'"
            ) from None
    return module


def backend(alias: str | None = None) -> Any:
    """The tasks backend ``alias`` (default ``WARLOCK_AI["TASKS_BACKEND"]``)."""
    return tasks_module().task_backends[alias or warlock_settings.TASKS_BACKEND]
