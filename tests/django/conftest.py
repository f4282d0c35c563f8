"""Fixtures of the Django-side tests."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.django.project import TURN_SETTINGS, migrate
from tests.services import _free_port, _stop_process, _wait_for_redis
from tests.users import make_staff_user


@pytest.fixture
def staff_client(client: Any) -> Callable[..., Any]:
    """``staff_client("view_checkpoint")``: the test client logged in as a staff user with
    exactly those ``warlock_ai`` permissions."""

    def make(*codenames: str) -> Any:
        client.force_login(make_staff_user("ops", *codenames))
        return client

    return make


@pytest.fixture
def throwaway_redis(tmp_path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A private redis-server on a free port, which a test may stop mid-run."""
    binary = shutil.which("redis-server")
    assert binary, "redis-server is needed (make services installs it)"
    port = _free_port()
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp_path)]
    process = subprocess.Popen(
        [*args, "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    assert _wait_for_redis(url, process), "the throwaway redis-server did not start"
    try:
        yield url, process
    finally:
        _stop_process(process)


@pytest.fixture
def turn_project(fresh_project_db: dict[str, Any], tmp_path: Any) -> dict[str, Any]:
    """``fresh_project_db`` migrated for children running the orchestrators of
    tests/turns_app (``TURN_SETTINGS``); ``["turns"]`` is where they log calls and hold."""
    turns = tmp_path / "turns"
    turns.mkdir()
    env = {**fresh_project_db["env"], "WARLOCK_TEST_TURN_DIR": str(turns)}
    db = {**fresh_project_db, "settings": TURN_SETTINGS, "turns": turns, "env": env}
    migrate(db)
    return db
