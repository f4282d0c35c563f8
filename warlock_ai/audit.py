"""The history entries (Django's ``LogEntry``) of what operators do to runs and sessions,
written the same way whether they acted from the admin or through the API, so a run's
"History" page in the admin lists both."""

from __future__ import annotations

from typing import Any

from django.apps import apps

#: ``LogEntry.action_flag`` values (``django.contrib.admin.models``' constants, named here so
#: that the API imports nothing of the admin in a project without it).
ADDITION, CHANGE, DELETION = 1, 2, 3


def logging_enabled() -> bool:
    """``LogEntry`` is the admin's model: without ``django.contrib.admin`` nothing is logged."""
    return apps.is_installed("django.contrib.admin")


def log_action(user: Any, obj: Any, flag: int, message: str, repr_: str = "") -> None:
    """One history entry by ``user`` on ``obj`` (a ``Snapshot`` or ``Checkpoint`` row, or an
    unsaved one naming a run that has no row yet); ``repr_`` names it when ``str(obj)`` would
    not (a session has no row of its own: its entries point at its latest turn)."""
    if not logging_enabled():
        return
    from django.contrib.admin.models import LogEntry
    from django.contrib.contenttypes.models import ContentType

    LogEntry.objects.create(
        user_id=user.pk,
        content_type=ContentType.objects.get_for_model(type(obj)),
        object_id=str(obj.pk),
        object_repr=(repr_ or str(obj))[:200],
        action_flag=flag,
        change_message=message,
    )
