"""Who may call what: the permissions the admin asks for, per view and method.

Each view of the API names the ``warlock_ai`` permissions a request needs
(``required_permissions(request)``); :class:`WarlockPermissions` checks that the user has
them all, and says which one is missing. With ``IsAuthenticated`` before it, it is the
default of ``WARLOCK_AI["API_PERMISSION_CLASSES"]``.
"""

from __future__ import annotations

from typing import Any

from django.utils.module_loading import import_string
from rest_framework.permissions import BasePermission

from ..conf import warlock_settings

#: What each permission lets a user do through the API (docs/api.md has the full table).
VIEW_RUNS = "warlock_ai.view_snapshot"
START_RUN = "warlock_ai.add_snapshot"
RESUME_RUN = "warlock_ai.resume_snapshot"
FORCE_RESUME_RUN = "warlock_ai.force_resume_snapshot"
DISCARD_RUN = "warlock_ai.discard_snapshot"
CANCEL_RUN = "warlock_ai.cancel_snapshot"
MIGRATE_RUN = "warlock_ai.migrate_snapshot"
VIEW_SESSIONS = "warlock_ai.view_checkpoint"
SEND_TURN = "warlock_ai.add_checkpoint"
DISCARD_SESSION = "warlock_ai.delete_checkpoint"
VIEW_CACHE = "warlock_ai.view_cacheentry"


class WarlockPermissions(BasePermission):
    """The user has every permission the view names for this request."""

    message = "you do not have the permission to do this"

    def has_permission(self, request: Any, view: Any) -> bool:
        needed = getattr(view, "required_permissions", None)
        if needed is None:
            return False
        for permission in needed(request):
            if not request.user.has_perm(permission):
                self.message = f"{view.doing(request)} needs the permission {permission}"
                return False
        return True


def permission_classes() -> list[type[BasePermission]]:
    """``WARLOCK_AI["API_PERMISSION_CLASSES"]``, imported."""
    return [import_string(path) if isinstance(path, str) else path for path in _configured()]


def _configured() -> list[Any]:
    value = warlock_settings.API_PERMISSION_CLASSES
    return list(value) if isinstance(value, (list, tuple)) else [value]
