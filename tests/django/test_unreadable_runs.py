"""A ``Snapshot`` row of unexpected shape (issue 12: "every row can be removed"): the commands
refuse it with one line, list it and discard it; the admin lists it, shows its page (HTTP 200,
"this snapshot cannot be read: ...", the stored columns as text) and discards it; the actions
that cannot act say so, never HTTP 500.

Rows are written by the real engine (``tests/django/admin_runs.py``: ``stale-1`` is a running
run whose worker is gone) and then broken with an UPDATE, as a hand edit would.
"""

from __future__ import annotations

import html
import json
import sqlite3
from contextlib import closing
from io import StringIO
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.contrib.admin.models import DELETION, LogEntry
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.utils.html import strip_tags

from tests.django.project import assert_refused, describe, execute_in_shell, manage, migrate
from tests.unreadable import COLUMN_SHAPES, COLUMNS, PROBLEM, SHAPES
from tests.users import make_staff_user
from warlock_ai.models import Snapshot

RUN = "stale-1"
LIST = "/admin/warlock_ai/snapshot/"
PERMISSIONS = (
    "view_snapshot",
    "resume_snapshot",
    "force_resume_snapshot",
    "discard_snapshot",
    "cancel_snapshot",
    "migrate_snapshot",
)
REFUSING_ACTIONS = ("resume", "force-resume", "cancel", "migrate")


def broken(runs, shape: str) -> dict:
    """``stale-1`` written by the engine, then changed to ``shape``; returns its columns."""
    runs.stale(RUN)
    changes = {COLUMNS.get(k, k): v for k, v in SHAPES[shape].changes.items()}
    assert Snapshot.objects.filter(pk=RUN).update(**changes) == 1
    return Snapshot.objects.filter(pk=RUN).values().get()


def expected_error(shape: str) -> str:
    return f'run "{RUN}": {PROBLEM}{SHAPES[shape].expected}'


@pytest.fixture
def ops() -> Client:
    client = Client()
    client.force_login(make_staff_user("ops", *PERMISSIONS))
    return client


def text(response) -> str:
    return html.unescape(response.content.decode())


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


# --- the commands ---------------------------------------------------------------------------


@pytest.mark.parametrize("shape", COLUMN_SHAPES)
@pytest.mark.parametrize(
    "command",
    [
        ["resume_run", RUN],
        ["resume_run", RUN, "--force"],
        ["cancel_run", RUN],
        ["migrate_run", RUN, "--accept-signature"],
    ],
    ids=["resume", "force-resume", "cancel", "migrate"],
)
def test_commands_refuse_an_unreadable_run_with_one_line(runs, shape, command):
    before = broken(runs, shape)
    with pytest.raises(CommandError) as caught:
        call_command(*command, stdout=StringIO(), stderr=StringIO())
    message = str(caught.value)
    assert message.startswith(expected_error(shape)), message
    assert "\n" not in message
    assert Snapshot.objects.filter(pk=RUN).values().get() == before


@pytest.mark.parametrize("shape", COLUMN_SHAPES)
def test_discard_run_removes_an_unreadable_run(runs, shape):
    before = broken(runs, shape)
    out = StringIO()
    call_command("discard_run", RUN, interactive=False, stdout=out)
    assert out.getvalue() == f"discarded run {RUN} ({before['status']}, unreadable)\n"
    assert not Snapshot.objects.filter(pk=RUN).exists()


def test_list_runs_marks_a_run_of_unknown_kind_and_lists_a_broken_one(runs):
    broken(runs, "unknown-kind")
    runs.failed("failed-1")
    Snapshot.objects.filter(pk="failed-1").update(steps=[1, 2])
    out = StringIO()
    call_command("list_runs", "--json", stdout=out)
    listed = {run["run_id"]: run for run in json.loads(out.getvalue())}
    assert listed[RUN]["kind"] == "pipeline" and listed[RUN]["status"] == "running"
    assert listed[RUN]["unreadable"] == SHAPES["unknown-kind"].expected
    # Its JSON columns are not read to list it: listed as stored, resume then refuses it.
    assert listed["failed-1"]["status"] == "failed" and listed["failed-1"]["unreadable"] is None
    table = StringIO()
    call_command("list_runs", stdout=table)
    (line,) = [line for line in table.getvalue().splitlines() if line.startswith(RUN)]
    assert "running (unreadable)" in line


def test_drain_runs_reports_an_unreadable_stale_run_and_goes_on(runs):
    broken(runs, "steps-is-a-list")
    runs.stale("stale-2")
    out = StringIO()
    with pytest.raises(CommandError) as raised:  # a run that did not complete: exit code 1
        call_command("drain_runs", "--json", stdout=out)
    assert raised.value.returncode == 1
    outcomes = {o["run_id"]: o["outcome"] for o in json.loads(out.getvalue())}
    assert outcomes["stale-2"] == "completed"
    assert outcomes[RUN].startswith(f"error: {expected_error('steps-is-a-list')}; discard")


def test_manage_py_refuses_then_discards_an_unreadable_run(fresh_project_db):
    """What an operator sees: exit code 1, one ``error:`` line and no traceback from resume,
    cancel and migrate; list_runs and discard_run (exit 0) still work."""
    db = fresh_project_db
    migrate(db)
    assert execute_in_shell(db, "import-1", {"vendor_id": "acme"}) == "completed"
    path = Path(urlsplit(db["url"]).path)
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute(
            "UPDATE warlock_ai_snapshot SET steps = ?, status = 'running' WHERE run_id = ?",
            ("[1, 2]", "import-1"),
        )
    problem = 'run "import-1": the stored snapshot cannot be read: steps must be an object'
    for args in (["resume_run"], ["cancel_run"], ["migrate_run", "--accept-signature"]):
        assert_refused(manage(db, *args, "import-1"), problem)
    listed = manage(db, "list_runs", "--json")
    assert listed.returncode == 0, describe(listed)
    assert [run["run_id"] for run in json.loads(listed.stdout)] == ["import-1"]
    discarded = manage(db, "discard_run", "import-1", "--no-input")
    assert discarded.returncode == 0 and "Traceback" not in discarded.stderr, describe(discarded)
    assert discarded.stdout == "discarded run import-1 (running, unreadable)\n"
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("SELECT COUNT(*) FROM warlock_ai_snapshot").fetchone() == (0,)


# --- the admin ------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", COLUMN_SHAPES)
def test_the_admin_lists_shows_and_discards_an_unreadable_run(runs, ops, shape):
    broken(runs, shape)
    listing = ops.get(LIST)
    assert listing.status_code == 200 and RUN in text(listing)
    page = ops.get(f"{LIST}{RUN}/change/")
    assert page.status_code == 200
    content = text(page)
    said = " ".join(strip_tags(content).split())
    assert f"This snapshot cannot be read: {SHAPES[shape].expected}" in said
    assert "Stored columns" in content
    for column, value in SHAPES[shape].changes.items():
        assert json.dumps(value, indent=2) in content, column
    # Only Discard is offered; the other buttons say why not.
    assert f'href="{LIST}{RUN}/actions/discard/"' in content
    assert "its snapshot cannot be read" in content
    for name in REFUSING_ACTIONS:
        assert f'href="{LIST}{RUN}/actions/{name}/"' not in content
    response = ops.post(f"{LIST}{RUN}/actions/discard/", {"post": "yes"})
    assert response.status_code == 302 and response.url == LIST
    assert not Snapshot.objects.filter(pk=RUN).exists()
    (entry,) = LogEntry.objects.filter(object_id=RUN)
    assert entry.action_flag == DELETION


def test_the_changelist_marks_a_row_of_unknown_kind(runs, ops):
    broken(runs, "unknown-kind")
    content = text(ops.get(LIST))
    assert f'title="{SHAPES["unknown-kind"].expected}">unreadable</span>' in content


@pytest.mark.parametrize("shape", ["steps-is-a-list", "unknown-kind", "unknown-status"])
@pytest.mark.parametrize("name", REFUSING_ACTIONS)
def test_an_action_that_cannot_act_on_an_unreadable_run_says_so(runs, ops, shape, name):
    before = broken(runs, shape)
    url = f"{LIST}{RUN}/actions/{name}/"
    assert ops.get(url, follow=True).status_code == 200
    response = ops.post(url, {"post": "yes", "accept_signature": "on"}, follow=True)
    assert response.status_code == 200
    said = " ".join(messages_of(response)) + text(response)
    assert "cannot be read" in said
    assert Snapshot.objects.filter(pk=RUN).values().get() == before


@pytest.mark.parametrize("shape", ["steps-is-a-list", "unknown-kind"])
@pytest.mark.parametrize("name", ["resume", "force_resume", "cancel", "migrate", "discard"])
def test_bulk_actions_on_an_unreadable_run_never_fail(runs, ops, shape, name):
    broken(runs, shape)
    data = {"action": f"{name}_selected", "_selected_action": [RUN], "index": 0}
    asked = ops.post(LIST, data, follow=True)
    assert asked.status_code == 200
    done = ops.post(LIST, {**data, "post": "yes", "accept_signature": "on"}, follow=True)
    assert done.status_code == 200
    exists = Snapshot.objects.filter(pk=RUN).exists()
    assert exists == (name != "discard")
    if exists:
        said = " ".join(messages_of(asked) + messages_of(done)) + text(asked) + text(done)
        assert "cannot be read" in said
