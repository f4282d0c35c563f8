"""Fixtures of the API tests: a client logged in with exactly the permissions a test names."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from tests.users import make_staff_user

API = "/api/warlock/"


class ApiClient:
    """Django's test client speaking JSON to the API; each answer's body is ``.json()``."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def get(self, path: str, **params: Any) -> Any:
        return self.client.get(API + path, params)

    def post(self, path: str, body: Any = None, raw: str | None = None) -> Any:
        data = raw if raw is not None else json.dumps({} if body is None else body)
        return self.client.post(API + path, data, content_type="application/json")

    def delete(self, path: str) -> Any:
        return self.client.delete(API + path)


@pytest.fixture
def api_as(db: None) -> Callable[..., ApiClient]:
    """``api_as("view_snapshot", ...)``: a logged-in (not staff) user with exactly those
    ``warlock_ai`` permissions; ``api_as(superuser=True)`` has all."""
    count = [0]

    def make(*codenames: str, superuser: bool = False) -> ApiClient:
        count[0] += 1
        user = make_staff_user(f"api{count[0]}", *codenames, superuser=superuser)
        user.is_staff = False  # the API asks for permissions, not for admin access
        user.save()
        client = Client()
        client.force_login(user)
        return ApiClient(client)

    return make


@pytest.fixture
def anonymous(db: None) -> ApiClient:
    return ApiClient(Client())


def error_of(response: Any, status: int, code: str) -> dict[str, Any]:
    """The refusal's body, checked to have the one shape: its code, one line of message."""
    assert response.status_code == status, (response.status_code, response.content)
    assert response["Content-Type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    assert isinstance(body["message"], str) and body["message"].strip()
    assert "\n" not in body["message"]
    return body
