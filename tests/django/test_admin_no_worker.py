"""The admin never runs a run inside a web request: without django-rq (a new project's
default) resume, force-resume and restart run nothing, change nothing, and show the exact
command to run on a server; that command, run, does the job."""

from __future__ import annotations

import html
import re
import shlex

import pytest
from django.contrib.admin.models import LogEntry
from django.core.management import call_command

from tests.django.admin_runs import CALLS
from tests.django.test_admin_runs import ALL_ACTIONS, action, bulk, client_for, detail, row
from warlock_ai import operations
from warlock_ai.models import Snapshot

NOTHING_RAN = "nothing was run or changed for"
CODE = re.compile(r'<code class="warlock-command">(.*?)</code>', re.S)


@pytest.fixture
def ops():
    return client_for(*ALL_ACTIONS)


def messages_of(response):
    return [str(m) for m in response.context["messages"]]


def shown_commands(response):
    """The commands the messages show, as an operator copies them from the page."""
    return [html.unescape(c) for m in messages_of(response) for c in CODE.findall(m)]


def unchanged(before: Snapshot) -> None:
    """The stored run is exactly as it was: nothing ran, nothing was written."""
    after = Snapshot.objects.get(pk=before.pk)
    fields = ("saved_at", "status", "steps", "next_step", "state", "input", "lease_owner")
    assert [getattr(after, f) for f in fields] == [getattr(before, f) for f in fields]


def run_shown(command: str) -> None:
    """Run a command the admin showed, as an operator would paste it (``a && b`` too)."""
    argv = shlex.split(command)
    while argv:
        end = argv.index("&&") if "&&" in argv else len(argv)
        python, manage, *args = argv[:end]
        assert (python, manage) == ("python", "manage.py")
        call_command(*args)
        argv = argv[end + 1 :]


def test_resume_runs_nothing_and_shows_the_command(runs, ops):
    before = runs.stale()
    calls = dict(CALLS)
    response = ops.post(action("stale-1", "resume"), {"post": "yes"}, follow=True)
    (message,) = messages_of(response)
    assert message.startswith(f"Resume: {NOTHING_RAN} 1 run ({operations.NO_WORKER}).")
    assert '<code class="warlock-command">python manage.py resume_run stale-1</code>' in message
    assert [m.level_tag for m in response.context["messages"]] == ["warning"]
    unchanged(before)
    assert dict(CALLS) == calls
    assert not LogEntry.objects.filter(object_id="stale-1").exists()  # nothing happened


def test_the_command_shown_resumes_the_run(runs, ops):
    runs.stale()
    response = ops.post(action("stale-1", "resume"), {"post": "yes"}, follow=True)
    (shown,) = shown_commands(response)
    fetched = CALLS["fetch"]
    run_shown(shown)
    assert row("stale-1").status == "completed" and CALLS["fetch"] == fetched


def test_force_resume_shows_the_command_with_force(runs, ops):
    before = runs.drifted()
    response = ops.post(action("drift-1", "force-resume"), {"post": "yes"}, follow=True)
    (message,) = messages_of(response)
    assert '<code class="warlock-command">python manage.py resume_run drift-1 --force</code>' in (
        message
    )
    unchanged(before)
    run_shown("python manage.py resume_run drift-1 --force")
    assert row("drift-1").status == "completed"


def test_a_refusal_still_comes_first(runs, ops):
    before = runs.drifted()
    response = ops.post(action("drift-1", "resume"), {"post": "yes"}, follow=True)
    (message,) = messages_of(response)
    assert "changed since" in message and "manage.py" not in message
    unchanged(before)


def test_restart_deletes_nothing_and_shows_both_commands(runs, ops):
    before = runs.failed()
    data = {"post": "yes", "restart": "on"}
    response = ops.post(action("failed-1", "discard"), data, follow=True)
    assert response.redirect_chain[-1][0] == detail("failed-1")  # the run is still there
    (message,) = messages_of(response)
    command = (
        "python manage.py discard_run failed-1 --no-input && python manage.py execute_run "
        """workflow:orders --run-id failed-1 --input '{"fail": true}'"""
    )
    assert f'<code class="warlock-command">{html.escape(command)}</code>' in message
    unchanged(before)
    assert not LogEntry.objects.filter(object_id="failed-1").exists()
    Snapshot.objects.filter(pk="failed-1").update(input={"items": 5})  # the input was fixed
    fixed = row("failed-1")
    response = ops.post(action("failed-1", "discard"), data, follow=True)
    unchanged(fixed)
    (shown,) = shown_commands(response)
    run_shown(shown)
    again = row("failed-1")
    assert again.status == "completed" and again.started_at > before.started_at
    assert again.state["items"] == 5


def test_a_plain_discard_still_deletes(runs, ops):
    runs.failed()
    ops.post(action("failed-1", "discard"), {"post": "yes"})
    assert row("failed-1") is None


def test_bulk_resume_lists_one_command_per_run(runs, ops):
    before = [runs.stale("stale-1"), runs.stale("stale-2"), runs.completed("done-1")]
    response = bulk(ops, "resume_selected", ["stale-1", "stale-2", "done-1"], index=0)
    errors, commands = messages_of(response)
    assert errors == 'done-1: run "done-1" is already completed: there is nothing to resume'
    assert commands.startswith(f"Resume: {NOTHING_RAN} 2 runs")
    assert commands.count('<br><code class="warlock-command">') == 2
    for run_id in ("stale-1", "stale-2"):
        assert f"python manage.py resume_run {run_id}</code>" in commands
    for snapshot in before:
        unchanged(snapshot)


def test_the_command_is_quoted_for_the_shell_and_escaped_for_the_page(runs, ops):
    run_id = "o'<b>&x"
    before = runs.stale(run_id)
    response = bulk(ops, "resume_selected", [run_id], index=0)
    (message,) = messages_of(response)
    quoted = shlex.quote(run_id)
    assert quoted == "'o'\"'\"'<b>&x'"
    assert f"python manage.py resume_run {html.escape(quoted)}</code>" in message
    assert "<b>" not in message
    unchanged(before)
    run_shown(f"python manage.py resume_run {quoted}")
    assert row(run_id).status == "completed"


def test_the_run_page_shows_the_resume_command(runs, ops):
    runs.stale()
    runs.completed()
    runs.interrupted()
    page = ops.get(detail("stale-1")).content.decode()
    assert '<code class="warlock-command">python manage.py resume_run stale-1</code>' in page
    assert operations.NO_WORKER in page
    runs.drifted()  # registers version 2
    page = ops.get(detail("drift-1")).content.decode()
    assert "python manage.py resume_run drift-1 --force</code>" in page  # only force applies
    for run_id in ("done-1", "live-1"):  # nothing to resume now: no command
        assert "warlock-command" not in ops.get(detail(run_id)).content.decode()


def test_the_run_page_shows_no_command_without_the_permission(runs):
    runs.stale()
    page = client_for("discard_snapshot").get(detail("stale-1")).content.decode()
    assert "warlock-command" not in page


def test_opted_in_the_page_shows_no_command_and_resume_runs(runs, ops, admin_runs_inline):
    runs.stale()
    assert "warlock-command" not in ops.get(detail("stale-1")).content.decode()
    ops.post(action("stale-1", "resume"), {"post": "yes"})
    assert row("stale-1").status == "completed"


def test_only_true_opts_in(runs, ops, settings):
    settings.WARLOCK_AI = {"ADMIN_RUNS_INLINE": "false"}  # truthy, and reported by checks
    before = runs.stale()
    response = ops.post(action("stale-1", "resume"), {"post": "yes"}, follow=True)
    assert "python manage.py resume_run stale-1" in messages_of(response)[0]
    unchanged(before)


@pytest.mark.parametrize(
    ("run_id", "force", "expected"),
    [
        ("import-7", False, "python manage.py resume_run import-7"),
        ("import-7", True, "python manage.py resume_run import-7 --force"),
        ("-x", True, "python manage.py resume_run --force -- -x"),
        ("a b;rm", False, "python manage.py resume_run 'a b;rm'"),
    ],
)
def test_resume_command(run_id, force, expected):
    assert operations.resume_command(run_id, force=force) == expected


def test_restart_command():
    assert operations.restart_command("-r", "workflow:orders", -5) == (
        "python manage.py discard_run --no-input -- -r && "
        "python manage.py execute_run workflow:orders --run-id=-r --input=-5"
    )
    assert operations.restart_command("r", "workflow:orders", None) == (
        "python manage.py discard_run r --no-input && "
        "python manage.py execute_run workflow:orders --run-id r"
    )
    assert operations.restart_command("r", "w:o", {"n": "é\n"}).endswith(
        """--input '{"n": "\\u00e9\\n"}'"""
    )
