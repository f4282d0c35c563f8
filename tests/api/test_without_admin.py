"""The API in a project without ``django.contrib.admin`` (an API-only service): it imports
nothing of the admin, answers, and acts (no history entry: ``LogEntry`` is the admin's). A
real child process with its own settings, since an installed app cannot be removed from a
running one. Also: the API's history entries carry the admin's action labels."""

from __future__ import annotations

import subprocess
import sys

import pytest

from warlock_ai.admin.actions import ACTIONS

SCRIPT = r"""
import json, sys
import django
from django.conf import settings

settings.configure(
    INSTALLED_APPS=[
        "django.contrib.auth", "django.contrib.contenttypes", "django.contrib.sessions",
        "rest_framework", "warlock_ai",
    ],
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
    ROOT_URLCONF="tests.api.api_only_urls",
    MIDDLEWARE=[
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
    ],
    SECRET_KEY="x", USE_TZ=True, ALLOWED_HOSTS=["testserver"],
    WARLOCK_AI={"ADMIN_RUNS_INLINE": True},
    DEFAULT_AUTO_FIELD="django.db.models.AutoField",
)
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from django.contrib.auth.models import User
from django.test import Client
user = User.objects.create_superuser("root", "r@example.com", "pw")
client = Client()
client.force_login(user)
import warlock_ai as ai
from warlock_ai.registry import registry
registry.register(ai.workflow(name="hello", steps=[ai.step("a", lambda ctx: None)]))
flow = "hello"
started = client.post("/api/runs/", json.dumps({"flow": flow, "input": {}, "run_id": "r1"}),
                      content_type="application/json")
listed = client.get("/api/runs/")
schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
print(json.dumps([started.status_code, listed.json()["count"], schema.status_code,
                  "warlock_ai.admin" in sys.modules]))
"""


def test_the_api_runs_in_a_project_without_the_admin(subprocess_env):
    child = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        env=subprocess_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == 0, child.stderr[-3000:]
    assert child.stdout.strip().splitlines()[-1] == "[201, 1, 200, false]"


@pytest.mark.parametrize("name", list(ACTIONS))
def test_the_api_logs_with_the_admins_action_labels(name):
    """The API writes "<Label>: ..." from the action's name (it does not import the admin)."""
    assert ACTIONS[name].label == name.capitalize()


def test_the_history_flags_are_the_admins():
    from django.contrib.admin import models

    from warlock_ai import audit

    assert (audit.ADDITION, audit.CHANGE, audit.DELETION) == (
        models.ADDITION,
        models.CHANGE,
        models.DELETION,
    )
