"""``manage.py execute_run`` and ``manage.py resume_run``.

Two layers: Django's ``call_command`` in this process (pytest-django's test database, where an
expected failure is a ``CommandError``) and real ``manage.py`` children on a fresh project
database, for what an operator sees: exit codes, one ``error: ...`` line on stderr, no traceback,
and the stored snapshot untouched by a refused command.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
from contextlib import closing
from io import StringIO
from urllib.parse import urlsplit

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from example_project.catalog.models import Product, StepExecution
from tests.django.project import (
    FEED,
    FLOW,
    REPO_ROOT,
    assert_refused,
    describe,
    execute_in_shell,
    feed_skus,
    manage,
    migrate,
    shell,
    snapshot_row,
    snapshot_table,
    step_counts,
    step_execution_total,
)
from warlock_ai.models import Snapshot

INPUT = '{"vendor_id": "acme"}'
MISSING_FEED = "/nonexistent/vendor_feed.json"
FAILED_RUN = "failed-1"  # failed in fetch (its feed does not exist), under version 1
DONE_RUN = "done-1"  # completed under version 1
RETIRED_RUN = "retired-1"  # a snapshot of a flow nobody registers any more
LONG_RUN_ID = "r" * 256

SIGNATURE_CODE = (
    f"from warlock_ai.registry import registry\nprint(registry.get('workflow', {FLOW!r}).signature)"
)


# --- fixtures -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """A migrated SQLite project database holding a failed, a completed and an orphaned run.

    Built once per module with ``manage.py``; each test gets its own copy (``project``).
    The runs are made through the Python API, not ``execute_run``, so that the commands
    under test are not needed to set the stage.
    """
    path = tmp_path_factory.mktemp("template") / "project.sqlite3"
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    url = f"sqlite://{path}"
    db = {"vendor": "sqlite", "url": url, "env": {**env, "WARLOCK_DB_URL": url}}
    migrate(db)
    failed = execute_in_shell(db, FAILED_RUN, {"vendor_id": "acme", "feed": MISSING_FEED})
    assert failed == "failed"
    assert execute_in_shell(db, DONE_RUN, {"vendor_id": "acme"}) == "completed"
    # The failed run again, as if written by a flow that was removed since.
    with closing(sqlite3.connect(path)) as conn, conn:
        columns = [row[1] for row in conn.execute("PRAGMA table_info(warlock_ai_snapshot)")]
        quoted = [f'"{c}"' for c in columns]
        values = ["?" if c in ("run_id", "name") else f'"{c}"' for c in columns]
        conn.execute(
            f"INSERT INTO warlock_ai_snapshot ({', '.join(quoted)}) "
            f"SELECT {', '.join(values)} FROM warlock_ai_snapshot WHERE run_id = ?",
            (RETIRED_RUN, "retired-flow", FAILED_RUN),
        )
    return path


@pytest.fixture
def project(fresh_project_db, template):
    """``fresh_project_db`` (SQLite) filled with a copy of ``template``."""
    assert fresh_project_db["vendor"] == "sqlite"
    shutil.copyfile(template, urlsplit(fresh_project_db["url"]).path)
    return fresh_project_db


# --- refused commands (real manage.py) -----------------------------------------------------

REFUSALS = {
    "execute_run-unknown-flow": (
        ["execute_run", "no-such-flow", "--input", INPUT],
        ['"no-such-flow"', "registered flows", FLOW],
    ),
    "execute_run-malformed-input": (
        ["execute_run", FLOW, "--input", '{"vendor_id": '],
        ["--input", "not valid JSON"],
    ),
    "execute_run-malformed-context": (
        ["execute_run", FLOW, "--input", INPUT, "--context", "{oops"],
        ["--context", "not valid JSON"],
    ),
    "execute_run-context-not-an-object": (
        ["execute_run", FLOW, "--input", INPUT, "--context", "[1, 2]"],
        ["--context"],
    ),
    "execute_run-run-id-too-long": (
        ["execute_run", FLOW, "--input", INPUT, "--run-id", LONG_RUN_ID],
        ["256", "255"],
    ),
    "resume_run-unknown-run": (
        ["resume_run", "no-such-run"],
        ['"no-such-run"'],
    ),
    "resume_run-unknown-flow": (
        ["resume_run", RETIRED_RUN],
        ['"retired-flow"', "registered flows", FLOW],
    ),
    "resume_run-malformed-context": (
        ["resume_run", FAILED_RUN, "--context", "{oops"],
        ["--context", "not valid JSON"],
    ),
    "resume_run-context-not-an-object": (
        ["resume_run", FAILED_RUN, "--context", "[1, 2]"],
        ["--context"],
    ),
    "resume_run-run-id-too-long": (
        ["resume_run", LONG_RUN_ID],
        [],
    ),
}


@pytest.mark.parametrize("case", list(REFUSALS), ids=list(REFUSALS))
def test_bad_input_is_one_error_line_and_exit_1(project, case):
    args, fragments = REFUSALS[case]
    before = snapshot_table(project)
    executions = step_execution_total(project)

    assert_refused(manage(project, *args), *fragments)

    assert snapshot_table(project) == before
    assert step_execution_total(project) == executions


def test_resume_refuses_a_drifted_run_without_force(project):
    saved = snapshot_row(project, FAILED_RUN)
    before = snapshot_table(project)
    executions = step_execution_total(project)
    current = shell(project, SIGNATURE_CODE, CATALOG_IMPORT_VERSION="2").strip()
    assert re.fullmatch(r"[0-9a-f]{8}", current) and current != saved["signature"]

    result = manage(project, "resume_run", FAILED_RUN, CATALOG_IMPORT_VERSION="2")

    line = assert_refused(result, FAILED_RUN, saved["signature"], current)
    assert "--force" in line, f"the drift error should tell the operator about --force: {line}"
    assert snapshot_table(project) == before
    assert step_execution_total(project) == executions


def test_resume_force_bypasses_the_drift_check_and_says_so(project, tmp_path):
    feed = tmp_path / "feed.json"  # missing at first: the run fails in fetch under version 1
    run_id = "drifted-1"
    assert execute_in_shell(project, run_id, {"vendor_id": "acme", "feed": str(feed)}) == "failed"
    saved = snapshot_row(project, run_id)["signature"]
    shutil.copyfile(FEED, feed)  # the operator fixed the feed; version 2 is deployed meanwhile

    refused = manage(project, "resume_run", run_id, CATALOG_IMPORT_VERSION="2")
    assert_refused(refused, saved)
    assert step_counts(project, run_id) == {"fetch": 1}

    result = manage(project, "resume_run", run_id, "--force", CATALOG_IMPORT_VERSION="2")

    assert result.returncode == 0, describe(result)
    assert "Traceback" not in result.stdout + result.stderr, describe(result)
    bypassed = r"drift check bypassed \(saved signature (\w+), current (\w+)\)"
    match = re.search(bypassed, result.stdout)
    assert match, describe(result)
    assert match[1] == saved and match[2] != saved
    assert re.search(rf"^run {run_id}: completed\b", result.stdout, re.M), describe(result)
    row = snapshot_row(project, run_id)
    assert row["status"] == "completed"
    assert row["signature"] == match[2]  # the run now belongs to the current definition
    assert step_counts(project, run_id) == {
        "fetch": 2,
        "normalize": 1,
        "enrich": 1,
        "save_products": 1,
    }


# --- successful commands (real manage.py) --------------------------------------------------


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("execute_run", ["flow", "--input", "--run-id", "--context", "resume_run"]),
        ("resume_run", ["run_id", "--force", "--context", "drift"]),
    ],
)
def test_help_describes_the_options(project, command, expected):
    result = manage(project, command, "--help")
    assert result.returncode == 0, describe(result)
    assert result.stderr == ""
    text = " ".join(result.stdout.split())  # argparse wraps long help lines
    for word in expected:
        assert word in text, f"{word!r} not in the help of {command}"


def test_execute_run_prints_every_step_and_the_outcome(project):
    run_id = "ok-1"
    result = manage(project, "execute_run", FLOW, "--input", INPUT, "--run-id", run_id)

    assert result.returncode == 0, describe(result)
    assert "Traceback" not in result.stdout + result.stderr
    assert result.stderr.strip() == "", describe(result)
    lines = result.stdout.splitlines()
    for step in ("fetch", "normalize", "enrich", "upsert"):
        started = lines.index(f"  step {step} started")
        ended = [i for i, line in enumerate(lines) if line.startswith(f"  step {step} completed")]
        assert ended and ended[0] > started, describe(result)
        assert re.fullmatch(rf"  step {step} completed in \d+ ms \(1 attempt\)", lines[ended[0]]), (
            describe(result)
        )
    assert lines[-1].startswith(f"run {run_id}: completed"), describe(result)
    assert snapshot_row(project, run_id)["status"] == "completed"
    assert step_counts(project, run_id) == {"fetch": 1, "normalize": 1, "enrich": 1, "upsert": 1}


def test_execute_run_that_fails_exits_1_with_the_step_error(project):
    run_id = "bad-feed-1"
    payload = json.dumps({"vendor_id": "acme", "feed": MISSING_FEED})
    result = manage(project, "execute_run", FLOW, "--input", payload, "--run-id", run_id)

    assert_refused(result, "fetch")
    assert re.search(rf"^run {run_id}: failed\b", result.stdout, re.M), describe(result)
    assert snapshot_row(project, run_id)["status"] == "failed"


def test_resume_of_a_completed_run_runs_nothing(project):
    before = snapshot_table(project)
    executions = step_execution_total(project)

    result = manage(project, "resume_run", DONE_RUN)

    assert result.returncode == 0, describe(result)
    assert "Traceback" not in result.stdout + result.stderr
    assert re.search(rf"^run {DONE_RUN}: completed\b", result.stdout, re.M), describe(result)
    assert step_execution_total(project) == executions
    assert snapshot_table(project) == before


# --- call_command in this process ---------------------------------------------------------


@pytest.fixture
def no_model_delay(monkeypatch):
    monkeypatch.setenv("WARLOCK_DEMO_WRITE_DELAY", "0")


@pytest.mark.django_db
def test_call_command_executes_and_resumes(no_model_delay):
    out = StringIO()
    call_command("execute_run", FLOW, input=INPUT, run_id="inproc-1", stdout=out, stderr=out)

    assert re.search(r"^run inproc-1: completed\b", out.getvalue(), re.M), out.getvalue()
    assert Snapshot.objects.get(pk="inproc-1").status == "completed"
    runs = StepExecution.objects.filter(run_id="inproc-1")
    assert sorted(runs.values_list("step", flat=True)) == ["enrich", "fetch", "normalize", "upsert"]
    assert set(Product.objects.values_list("sku", flat=True)) == feed_skus()

    out = StringIO()
    call_command("resume_run", "inproc-1", stdout=out, stderr=out)
    assert re.search(r"^run inproc-1: completed\b", out.getvalue(), re.M), out.getvalue()
    assert runs.count() == 4


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "options", "message"),
    [
        (["execute_run", "no-such-flow"], {"input": INPUT}, "registered flows: .*catalog-import"),
        (["execute_run", FLOW], {"input": "{nope"}, "--input is not valid JSON"),
        (["execute_run", FLOW], {"input": INPUT, "context": "[1"}, "--context is not valid JSON"),
        (["execute_run", FLOW], {"input": INPUT, "context": '"x"'}, "--context"),
        (["execute_run", FLOW], {"input": INPUT, "run_id": LONG_RUN_ID}, "255"),
        (["resume_run", "no-such-run"], {}, '"no-such-run"'),
        (["resume_run", "no-such-run"], {"context": "[1"}, "--context is not valid JSON"),
    ],
    ids=[
        "execute-unknown-flow",
        "execute-malformed-input",
        "execute-malformed-context",
        "execute-context-not-an-object",
        "execute-long-run-id",
        "resume-unknown-run",
        "resume-malformed-context",
    ],
)
def test_call_command_bad_input_raises_command_error(no_model_delay, args, options, message):
    with pytest.raises(CommandError, match=message):
        call_command(*args, **options, stdout=StringIO(), stderr=StringIO())
    assert Snapshot.objects.count() == 0
    assert StepExecution.objects.count() == 0


@pytest.mark.django_db
def test_call_command_failed_run_raises_command_error(no_model_delay):
    payload = json.dumps({"vendor_id": "acme", "feed": MISSING_FEED})
    out = StringIO()
    with pytest.raises(CommandError, match='step "fetch" failed'):
        call_command("execute_run", FLOW, input=payload, run_id="f-1", stdout=out, stderr=out)
    assert Snapshot.objects.get(pk="f-1").status == "failed"
