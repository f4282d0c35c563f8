"""Fixtures of the Django-side tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.users import make_staff_user


@pytest.fixture
def staff_client(client: Any) -> Callable[..., Any]:
    """``staff_client("view_checkpoint")``: the test client logged in as a staff user with
    exactly those ``warlock_ai`` permissions."""

    def make(*codenames: str) -> Any:
        client.force_login(make_staff_user("ops", *codenames))
        return client

    return make
