"""Staff users with exactly the permissions a test names."""

from __future__ import annotations

from typing import Any

PASSWORD = "correct-horse-battery"


def make_staff_user(username: str, *codenames: str, superuser: bool = False) -> Any:
    """A staff user with those ``warlock_ai`` permissions (all of them when ``superuser``)."""
    from django.contrib.auth.models import Permission, User

    user = User.objects.create_user(
        username, password=PASSWORD, is_staff=True, is_superuser=superuser
    )
    perms = Permission.objects.filter(content_type__app_label="warlock_ai", codename__in=codenames)
    missing = set(codenames) - {p.codename for p in perms}
    assert not missing, f"unknown warlock_ai permissions: {sorted(missing)}"
    user.user_permissions.set(perms)
    return user
