"""The operator commands: ``list_runs``, ``discard_run``, ``cancel_run``, ``migrate_run``,
``prune_runs``, ``drain_runs``, and ``--enqueue`` on ``execute_run`` / ``resume_run``.

Real ``manage.py`` children on a fresh project database for what an operator sees (exit
codes, one ``error: ...`` line on stderr, no traceback, the stored snapshots untouched by a
refused command, a run held by a live worker process, cancellation from outside), and
``call_command`` under pytest-django for the rest.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import sqlite3
import subprocess
import time
import uuid
from contextlib import closing, contextmanager
from datetime import UTC, datetime, timedelta
from io import StringIO
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings
from django.utils import timezone

import warlock_ai as ai
from example_project.catalog.models import Product, StepExecution
from tests.django.project import (
    FLOW,
    REPO_ROOT,
    LineReader,
    assert_refused,
    clone_run,
    completed_steps,
    describe,
    execute_in_shell,
    manage,
    manage_args,
    migrate,
    products,
    project_env,
    snapshot_row,
    snapshot_table,
    step_counts,
    step_execution_total,
)
from warlock_ai.management.base import parse_duration
from warlock_ai.models import Snapshot
from warlock_ai.registry import registry

INPUT = '{"vendor_id": "acme"}'
MISSING_FEED = "/nonexistent/vendor_feed.json"
LONG_RUN_ID = "r" * 256
DONE_RUN = "done-1"  # completed
FAILED_RUN = "failed-1"  # failed in fetch (its feed does not exist)
LEASED_RUN = "leased-1"  # running, held by a worker on another host until tomorrow
STALE_RUN = "stale-1"  # running, next step upsert, its worker's lease expired an hour ago
OTHER_HOLDER = "worker-elsewhere:4121:9f2c1a7e"
DEAD_HOLDER = "worker-gone:999:0badc0de"
WAIT = 60  # seconds: fail, do not hang, when a child never gets somewhere


# --- a project database with runs in every state ------------------------------------------


def _sqlite_time(moment: datetime) -> str:
    """How Django's SQLite backend stores an aware UTC datetime."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ")


def interrupted_before_upsert(path: Path, source: str) -> dict[str, object]:
    """Columns of a running copy of the completed ``source`` whose upsert has not run yet."""
    with closing(sqlite3.connect(path)) as conn:
        (steps,) = conn.execute(
            "SELECT steps FROM warlock_ai_snapshot WHERE run_id = ?", (source,)
        ).fetchone()
    steps = json.loads(steps)
    del steps["upsert"]
    return {
        "status": "running",
        "next_step": "upsert",
        "steps": json.dumps(steps),
        "finished_at": None,
    }


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """A migrated SQLite project database holding DONE_RUN, FAILED_RUN, LEASED_RUN and
    STALE_RUN, built once per module; each test gets its own copy (``project``)."""
    path = tmp_path_factory.mktemp("ops-template") / "project.sqlite3"
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    url = f"sqlite://{path}"
    db = {"vendor": "sqlite", "url": url, "env": {**env, "WARLOCK_DB_URL": url}}
    migrate(db)
    assert execute_in_shell(db, DONE_RUN, {"vendor_id": "acme"}) == "completed"
    failed = execute_in_shell(db, FAILED_RUN, {"vendor_id": "acme", "feed": MISSING_FEED})
    assert failed == "failed"
    now = datetime.now(UTC)
    running = interrupted_before_upsert(path, DONE_RUN)
    clone_run(
        path,
        DONE_RUN,
        LEASED_RUN,
        **running,
        lease_owner=OTHER_HOLDER,
        lease_expires_at=_sqlite_time(now + timedelta(days=1)),
        saved_at=_sqlite_time(now - timedelta(minutes=5)),
    )
    clone_run(
        path,
        DONE_RUN,
        STALE_RUN,
        **running,
        lease_owner=DEAD_HOLDER,
        lease_expires_at=_sqlite_time(now - timedelta(hours=1)),
        saved_at=_sqlite_time(now - timedelta(hours=1, minutes=5)),
    )
    return path


@pytest.fixture
def project(fresh_project_db, template):
    """``fresh_project_db`` (SQLite) filled with a copy of ``template``."""
    assert fresh_project_db["vendor"] == "sqlite"
    Path(urlsplit(fresh_project_db["url"]).path).write_bytes(template.read_bytes())
    return fresh_project_db


def assert_ok(result) -> str:
    assert result.returncode == 0, describe(result)
    assert "Traceback" not in result.stdout + result.stderr, describe(result)
    assert result.stderr.strip() == "", describe(result)
    return result.stdout


# --- refused commands (real manage.py) -----------------------------------------------------

REFUSALS = {
    # list_runs
    "list_runs-unknown-status": (
        ["list_runs", "--status", "running,bogus"],
        ["'bogus'", "running, completed, failed, cancelled, max-iterations"],
    ),
    "list_runs-unknown-flow": (
        ["list_runs", "--flow", "no-such-flow"],
        ['"no-such-flow"', "registered flows", FLOW],
    ),
    "list_runs-negative-limit": (["list_runs", "--limit", "-1"], ["--limit"]),
    "list_runs-limit-not-a-number": (["list_runs", "--limit", "ten"], ["--limit", "'ten'"]),
    "list_runs-unknown-option": (["list_runs", "--colour"], ["--colour", "--help"]),
    # discard_run
    "discard_run-unknown-run": (
        ["discard_run", DONE_RUN, "no-such-run", "--yes"],  # DONE_RUN is kept too
        ['"no-such-run"'],
    ),
    "discard_run-run-id-too-long": (["discard_run", LONG_RUN_ID, "--yes"], ["256", "255"]),
    "discard_run-live-lease": (["discard_run", LEASED_RUN, "--yes"], [LEASED_RUN, OTHER_HOLDER]),
    "discard_run-unconfirmed": (["discard_run", DONE_RUN], ["--no-input", DONE_RUN]),
    "discard_run-no-run-id": (["discard_run", "--yes"], ["run_id"]),
    # cancel_run
    "cancel_run-unknown-run": (["cancel_run", "no-such-run"], ['"no-such-run"']),
    "cancel_run-not-running": (["cancel_run", DONE_RUN], [DONE_RUN, "completed", "not running"]),
    "cancel_run-run-id-too-long": (["cancel_run", LONG_RUN_ID], ["256", "255"]),
    # migrate_run
    "migrate_run-unknown-run": (
        ["migrate_run", "no-such-run", "--accept-signature"],
        ['"no-such-run"'],
    ),
    "migrate_run-malformed-rename": (
        ["migrate_run", DONE_RUN, "--rename", "upsert"],
        ["--rename", "OLD=NEW", "'upsert'"],
    ),
    "migrate_run-empty-new-name": (["migrate_run", DONE_RUN, "--rename", "upsert="], ["OLD=NEW"]),
    "migrate_run-step-not-in-run": (
        ["migrate_run", DONE_RUN, "--rename", "no_such_step=upsert"],
        ['"no_such_step"', "fetch, normalize, enrich, upsert"],
    ),
    "migrate_run-step-not-in-definition": (
        ["migrate_run", DONE_RUN, "--rename", "upsert=save_products", "--accept-signature"],
        ['"save_products"', "enrich, fetch, normalize, upsert"],
    ),
    "migrate_run-nothing-to-do": (["migrate_run", DONE_RUN], ["--rename", "--accept-signature"]),
    "migrate_run-live-lease": (
        ["migrate_run", LEASED_RUN, "--accept-signature"],
        [LEASED_RUN, OTHER_HOLDER],
    ),
    # prune_runs
    "prune_runs-no-older-than": (["prune_runs"], ["--older-than"]),
    "prune_runs-bad-duration": (
        ["prune_runs", "--older-than", "a month"],
        ["--older-than", "30d", "'a month'"],
    ),
    "prune_runs-running": (
        ["prune_runs", "--older-than", "0s", "--status", "completed,running"],
        ["never deletes running runs", "discard_run"],
    ),
    "prune_runs-unknown-status": (
        ["prune_runs", "--older-than", "30d", "--status", "done"],
        ["'done'", "completed, failed, cancelled, max-iterations"],
    ),
    "prune_runs-unconfirmed": (
        ["prune_runs", "--older-than", "0s", "--status", "completed,failed"],
        ["2 completed/failed runs", "--no-input"],
    ),
    "prune_runs-zero-batch-size": (
        ["prune_runs", "--older-than", "30d", "--batch-size", "0"],
        ["--batch-size"],
    ),
    # resume_run and execute_run: the cases of the issue the operator commands share
    "resume_run-live-lease": (["resume_run", LEASED_RUN], [LEASED_RUN, OTHER_HOLDER]),
    "execute_run-input-not-json-serialisable": (
        ["execute_run", FLOW, "--input", '{"vendor_id": "acme", "score": NaN}', "--run-id", "n-1"],
        ["--input", "NaN"],
    ),
    "execute_run-queue-without-enqueue": (
        ["execute_run", FLOW, "--input", INPUT, "--queue", "default"],
        ["--queue", "--enqueue"],
    ),
    "execute_run-enqueue-without-rq-queues": (
        ["execute_run", FLOW, "--input", INPUT, "--enqueue"],
        ["RQ_QUEUES", "'default'"],
    ),
    "resume_run-enqueue-with-context": (
        ["resume_run", FAILED_RUN, "--enqueue", "--context", "{}"],
        ["--context", "--enqueue"],
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


HELP = {
    "list_runs": ["--status", "--flow", "--stale", "--limit", "--json", "lease"],
    "discard_run": ["run_id", "--no-input", "--yes", "unknown", "nothing is deleted", "lease"],
    "cancel_run": ["run_id", "--reason", "checkpoint", "cancelled"],
    "migrate_run": ["run_id", "--rename", "OLD=NEW", "--accept-signature", "nothing is saved"],
    "prune_runs": [
        "--older-than",
        "30d",
        "--status",
        "--batch-size",
        "--dry-run",
        "running",
        "--no-input",
        "--yes",
    ],
    "drain_runs": ["--enqueue", "--json", "lease", "boot"],
    "execute_run": ["--enqueue", "--queue", "job id"],
    "resume_run": ["--enqueue", "--queue", "job id"],
}


@pytest.mark.parametrize("command", list(HELP))
def test_help_describes_the_command(project, command):
    out = assert_ok(manage(project, command, "--help"))
    text = " ".join(out.split())  # argparse wraps long help lines
    for word in HELP[command]:
        assert word in text, f"{word!r} not in the help of {command}"


# --- successful commands (real manage.py) --------------------------------------------------


def test_list_runs_prints_a_table_newest_first(project):
    out = assert_ok(manage(project, "list_runs"))
    lines = out.splitlines()
    assert lines[0].split() == [
        *("RUN", "ID", "FLOW", "STATUS", "NEXT", "STEP", "AGE"),
        *("VERSION", "SIGNATURE", "DRIFTED", "LEASE"),
    ]
    order = [line.split()[0] for line in lines[1:5]]
    assert order == [FAILED_RUN, DONE_RUN, LEASED_RUN, STALE_RUN]  # by saved_at, newest first
    rows = {line.split()[0]: line for line in lines[1:5]}
    sig = snapshot_row(project, LEASED_RUN)["signature"]
    version = r"1\s+" + sig  # catalog-import version 1, as registered: no drift
    assert re.search(
        rf"{FLOW}\s+running\s+upsert\s+\d+m\s+{version}\s+no\s+{OTHER_HOLDER} until ",
        rows[LEASED_RUN],
    )
    assert re.search(
        rf"running\s+upsert\s+1h\s+{version}\s+no\s+{DEAD_HOLDER} \(expired\)", rows[STALE_RUN]
    )
    assert re.search(rf"failed\s+fetch\s+\d+[sm]\s+{version}\s+no\s+-$", rows[FAILED_RUN])
    assert re.search(rf"completed\s+-\s+\d+[sm]\s+{version}\s+-\s+-$", rows[DONE_RUN])
    assert lines[-1] == "4 runs"


def test_list_runs_json_has_the_same_fields(project):
    out = assert_ok(manage(project, "list_runs", "--json"))
    runs = json.loads(out)
    assert [run["run_id"] for run in runs] == [FAILED_RUN, DONE_RUN, LEASED_RUN, STALE_RUN]
    leased = runs[2]
    assert leased["flow"] == FLOW
    assert leased["status"] == "running"
    assert leased["next_step"] == "upsert"
    assert leased["lease_owner"] == OTHER_HOLDER
    assert leased["age_seconds"] > 290
    expires = datetime.fromisoformat(leased["lease_expires_at"])
    assert expires.tzinfo is not None and expires > datetime.now(UTC)
    saved = datetime.fromisoformat(leased["saved_at"])
    assert saved.tzinfo is not None
    assert runs[1]["finished_at"] and runs[1]["lease_owner"] is None


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--status", "running"], [LEASED_RUN, STALE_RUN]),
        (["--status", "completed,failed"], [FAILED_RUN, DONE_RUN]),
        (["--stale"], [STALE_RUN]),
        (["--flow", FLOW, "--limit", "2"], [FAILED_RUN, DONE_RUN]),
        (["--flow", f"workflow:{FLOW}", "--status", "cancelled"], []),
    ],
    ids=["running", "finished", "stale", "flow-limit", "kind-and-flow-none"],
)
def test_list_runs_filters(project, args, expected):
    runs = json.loads(assert_ok(manage(project, "list_runs", "--json", *args)))
    assert [run["run_id"] for run in runs] == expected


def test_list_runs_says_when_the_limit_hides_runs(project):
    out = assert_ok(manage(project, "list_runs", "--limit", "1"))
    assert out.splitlines()[-1] == "showing 1 of 4 runs (--limit 0 shows all)"
    out = assert_ok(manage(project, "list_runs", "--status", "cancelled"))
    assert out.strip() == "no runs match"


def test_discard_run_deletes_every_run_given(project):
    out = assert_ok(manage(project, "discard_run", DONE_RUN, FAILED_RUN, "--yes"))
    assert f"discarded run {DONE_RUN} (completed)" in out
    assert f"discarded run {FAILED_RUN} (failed)" in out
    assert [row["run_id"] for row in snapshot_table(project)] == [LEASED_RUN, STALE_RUN]


def test_discard_run_keeps_a_leased_run_and_deletes_the_others(project):
    leased = snapshot_row(project, LEASED_RUN)
    result = manage(project, "discard_run", DONE_RUN, LEASED_RUN, "--yes")
    assert_refused(result, LEASED_RUN, OTHER_HOLDER)
    assert f"discarded run {DONE_RUN}" in result.stdout
    assert snapshot_row(project, DONE_RUN) is None
    assert snapshot_row(project, LEASED_RUN) == leased


def test_discard_run_deletes_a_stale_run(project):
    assert_ok(manage(project, "discard_run", STALE_RUN, "--yes"))
    assert snapshot_row(project, STALE_RUN) is None


def test_cancel_run_stores_the_request(project):
    before = snapshot_row(project, LEASED_RUN)
    out = assert_ok(manage(project, "cancel_run", LEASED_RUN, "--reason", "wrong vendor"))
    assert "next checkpoint" in out and LEASED_RUN in out
    after = snapshot_row(project, LEASED_RUN)
    assert after["cancel_requested_at"] is not None
    assert after["cancel_reason"] == "wrong vendor"
    changed = {k for k in before if before[k] != after[k]}
    assert changed == {"cancel_requested_at", "cancel_reason"}  # the worker's lease is kept


def test_prune_runs_dry_run_then_delete(project):
    before = snapshot_table(project)
    out = assert_ok(manage(project, "prune_runs", "--older-than", "1s", "--dry-run"))
    assert out.startswith("would delete 1 completed run saved before "), out
    assert snapshot_table(project) == before

    result = manage(
        project,
        "prune_runs",
        "--older-than",
        "0s",
        "--status",
        "completed,failed",
        "--json",
        "--no-input",
    )
    outcome = json.loads(assert_ok(result))
    assert outcome["deleted"] == 2 and outcome["matched"] == 2
    assert outcome["statuses"] == ["completed", "failed"]
    assert not outcome["dry_run"]
    # The running runs are old too (the stale one by an hour), and kept.
    assert [row["run_id"] for row in snapshot_table(project)] == [LEASED_RUN, STALE_RUN]


def test_prune_runs_keeps_recent_runs(project):
    before = snapshot_table(project)
    out = assert_ok(manage(project, "prune_runs", "--older-than", "30d"))
    assert out.startswith("deleted 0 completed runs saved before "), out
    assert snapshot_table(project) == before


def test_drain_runs_resumes_the_stale_run_only(project):
    leased = snapshot_row(project, LEASED_RUN)
    out = assert_ok(manage(project, "drain_runs"))
    assert out.splitlines() == [f"run {STALE_RUN}: completed", "1 stale run: 1 completed"]
    row = snapshot_row(project, STALE_RUN)
    assert row["status"] == "completed"
    assert set(completed_steps(row)) == {"fetch", "normalize", "enrich", "upsert"}
    assert step_counts(project, STALE_RUN) == {"upsert": 1}  # only the missing step ran
    assert snapshot_row(project, LEASED_RUN) == leased

    again = manage(project, "drain_runs", "--json")
    assert json.loads(assert_ok(again)) == []
    assert assert_ok(manage(project, "drain_runs")).strip() == "no stale runs"


def test_migrate_run_renames_a_step_and_accepts_the_new_signature(project):
    """The seed's manual migration: version 2 renamed ``upsert`` to ``save_products``."""
    v2 = {"CATALOG_IMPORT_VERSION": "2"}
    run_id = "upsert-failed-1"
    interrupted = interrupted_before_upsert(Path(urlsplit(project["url"]).path), DONE_RUN)
    steps = json.loads(interrupted["steps"])
    steps["upsert"] = {**steps["enrich"], "status": "failed"}
    clone_run(
        Path(urlsplit(project["url"]).path),
        DONE_RUN,
        run_id,
        **{**interrupted, "status": "failed", "steps": json.dumps(steps)},
    )
    saved = snapshot_row(project, run_id)
    assert_refused(manage(project, "resume_run", run_id, **v2), saved["signature"], "--force")

    result = manage(
        project,
        "migrate_run",
        run_id,
        "--rename",
        "upsert=save_products",
        "--accept-signature",
        **v2,
    )

    out = assert_ok(result)
    assert "renamed step upsert -> save_products" in out
    assert re.search(rf"signature {saved['signature']} -> [0-9a-f]{{8}}", out), out
    migrated = snapshot_row(project, run_id)
    assert migrated["signature"] != saved["signature"]
    assert migrated["version"] == "2"
    assert list(migrated["steps"]) == ["fetch", "normalize", "enrich", "save_products"]
    assert migrated["next_step"] == "save_products"
    assert migrated["state"] == saved["state"]

    resumed = manage(project, "resume_run", run_id, **v2)
    assert re.search(rf"^run {run_id}: completed\b", assert_ok(resumed), re.M)
    assert step_counts(project, run_id) == {"save_products": 1}
    assert len(products(project)) == 11


# --- asking before deleting: --no-input, --noinput, --yes, a terminal (real manage.py) ----

DELETIONS = {
    # command line without the flag, the runs it deletes, what its question names
    "discard_run": (["discard_run", DONE_RUN, FAILED_RUN], [DONE_RUN, FAILED_RUN]),
    "prune_runs": (
        ["prune_runs", "--older-than", "0s", "--status", "completed,failed"],
        ["2 completed/failed runs saved before"],
    ),
}
QUESTION = "for good? [y/N] "


def manage_without_terminal(db, *args: str) -> subprocess.CompletedProcess[str]:
    """``manage.py *args`` with stdin from /dev/null, whatever stdin pytest has."""
    return subprocess.run(
        manage_args(*args),
        cwd=REPO_ROOT,
        env=project_env(db),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=False,
    )


def manage_on_terminal(db, *args: str, keys: str | None) -> subprocess.CompletedProcess[str]:
    """``manage.py *args`` with a pseudo-terminal as stdin (stdout and stderr piped). Once the
    question is on stderr, ``keys`` are typed; with ``keys=None`` a question is a failure (the
    child is killed at once rather than left waiting for an answer)."""
    primary, secondary = pty.openpty()
    try:
        child = subprocess.Popen(
            manage_args(*args),
            cwd=REPO_ROOT,
            env=project_env(db),
            stdin=secondary,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
    finally:
        os.close(secondary)
    try:
        err = b""
        deadline = time.monotonic() + WAIT
        while QUESTION.encode() not in err:
            ready, _, _ = select.select([child.stderr], [], [], deadline - time.monotonic())
            assert ready, f"no question after {WAIT} s; stderr so far: {err!r}"
            chunk = os.read(child.stderr.fileno(), 4096)
            if not chunk:  # the child closed stderr: it ends without asking
                break
            err += chunk
        if QUESTION.encode() in err:
            if keys is None:
                child.kill()
            else:
                os.write(primary, keys.encode())
        out, rest = child.communicate(timeout=WAIT)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=10)
        os.close(primary)
    return subprocess.CompletedProcess(
        child.args, child.returncode, out.decode(), (err + rest).decode()
    )


@pytest.mark.parametrize("flag", ["--no-input", "--noinput", "--yes"])
@pytest.mark.parametrize("command", list(DELETIONS))
def test_no_input_flags_delete_without_asking(project, command, flag):
    args, _ = DELETIONS[command]
    out = assert_ok(manage_without_terminal(project, *args, flag))
    assert "[y/N]" not in out
    assert [row["run_id"] for row in snapshot_table(project)] == [LEASED_RUN, STALE_RUN]


@pytest.mark.parametrize("command", list(DELETIONS))
def test_without_a_terminal_nothing_is_deleted_without_no_input(project, command):
    args, named = DELETIONS[command]
    before = snapshot_table(project)
    line = assert_refused(
        manage_without_terminal(project, *args), *named, "stdin is not a terminal", "--no-input"
    )
    assert "--yes" not in line  # the alias is in --help only
    assert snapshot_table(project) == before


@pytest.mark.parametrize(
    ("command", "keys"),
    [
        ("discard_run", "n\n"),
        ("discard_run", "\n"),  # Enter: the default, no
        ("discard_run", "\x04"),  # Ctrl-D: end of input, no
        ("prune_runs", "n\n"),
        ("prune_runs", "nope\n"),
    ],
    ids=["discard-n", "discard-enter", "discard-ctrl-d", "prune-n", "prune-nope"],
)
def test_on_a_terminal_anything_but_yes_deletes_nothing(project, command, keys):
    args, named = DELETIONS[command]
    before = snapshot_table(project)
    result = manage_on_terminal(project, *args, keys=keys)
    question, error = result.stderr.split(QUESTION)
    assert question.startswith("Delete "), describe(result)
    for fragment in named:
        assert fragment in question, describe(result)
    assert error.strip() == "error: not confirmed: nothing deleted", describe(result)
    assert result.returncode == 1, describe(result)
    assert result.stdout == "", describe(result)
    assert snapshot_table(project) == before


@pytest.mark.parametrize("keys", ["y\n", "yes\n", "Y\n"], ids=["y", "yes", "Y"])
@pytest.mark.parametrize("command", list(DELETIONS))
def test_on_a_terminal_yes_deletes(project, command, keys):
    args, named = DELETIONS[command]
    result = manage_on_terminal(project, *args, keys=keys)
    assert result.returncode == 0, describe(result)
    question, after = result.stderr.split(QUESTION)
    assert question.startswith("Delete ") and after == "", describe(result)
    for fragment in named:
        assert fragment in question, describe(result)
    assert result.stdout.strip(), describe(result)  # what was deleted
    assert [row["run_id"] for row in snapshot_table(project)] == [LEASED_RUN, STALE_RUN]


@pytest.mark.parametrize(
    "args",
    [
        ["prune_runs", "--older-than", "0s", "--status", "completed,failed", "--dry-run"],
        ["prune_runs", "--older-than", "30d"],  # nothing that old: nothing to ask
    ],
    ids=["dry-run", "nothing-matches"],
)
def test_prune_runs_on_a_terminal_asks_nothing_when_it_deletes_nothing(project, args):
    before = snapshot_table(project)
    result = manage_on_terminal(project, *args, keys=None)
    assert "[y/N]" not in result.stderr, describe(result)
    out = assert_ok(result)
    assert re.match(r"(would delete 2|deleted 0) completed(/failed)? runs saved before ", out)
    assert snapshot_table(project) == before


# --- a run held by a live worker process --------------------------------------------------


@contextmanager
def running_import(db, run_id: str, write_delay: str):
    """``execute_run`` of the catalog flow in a child, its output read line by line;
    SIGKILLed on the way out if it is still alive."""
    args = ["execute_run", FLOW, "--input", INPUT, "--run-id", run_id]
    child = subprocess.Popen(
        manage_args(*args),
        cwd=REPO_ROOT,
        env=project_env(db, WARLOCK_DEMO_WRITE_DELAY=write_delay),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    reader = LineReader(child)
    try:
        yield child, reader
    finally:
        if child.poll() is None:
            os.kill(child.pid, signal.SIGKILL)
            child.wait(timeout=10)
        reader.join()
        if child.stdout:
            child.stdout.close()


def wait_for_row(db, run_id: str, predicate, timeout: float = WAIT) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        row = snapshot_row(db, run_id)
        if row is not None and predicate(row):
            return row
        assert time.monotonic() < deadline, f"run {run_id} never got there: {row}"
        time.sleep(0.05)


def test_a_live_worker_keeps_its_run(project):
    """A worker process in the middle of ``enrich`` holds the run: resume, discard and
    migrate are refused naming it, drain leaves it alone, and nothing changes."""
    run_id = "live-1"
    with running_import(project, run_id, write_delay="120") as (child, _):
        row = wait_for_row(project, run_id, lambda r: r["next_step"] == "enrich")
        holder = row["lease_owner"]
        assert holder and holder.split(":")[1] == str(child.pid)

        for args in (
            ["resume_run", run_id],
            ["resume_run", run_id, "--force"],
            ["discard_run", run_id, "--yes"],
            ["migrate_run", run_id, "--accept-signature"],
        ):
            assert_refused(manage(project, *args), run_id, holder)

        drained = assert_ok(manage(project, "drain_runs"))
        assert f"run {run_id}" not in drained
        listed = json.loads(
            assert_ok(manage(project, "list_runs", "--json", "--status", "running"))
        )
        assert {run["run_id"]: run["lease_owner"] for run in listed}[run_id] == holder
        stale = json.loads(assert_ok(manage(project, "list_runs", "--json", "--stale")))
        assert run_id not in [run["run_id"] for run in stale]

        assert child.poll() is None, "the worker should still be in enrich"
        assert snapshot_row(project, run_id) == row
        assert step_counts(project, run_id) == {"fetch": 1, "normalize": 1, "enrich": 1}


@pytest.mark.parametrize("fresh_project_db", ["sqlite", "postgres"], indirect=True)
def test_cancel_from_outside_ends_the_run_cancelled_with_its_state(fresh_project_db):
    """``cancel_run`` while the worker is in ``enrich``: the worker notices at its next
    snapshot write, the run ends ``cancelled``, the finished steps and state are kept and
    ``upsert`` never runs."""
    db = fresh_project_db
    migrate(db)
    run_id = "cancel-1"
    with running_import(db, run_id, write_delay="0.4") as (child, reader):
        reader.wait_for(lambda line: line.startswith("enrich:"), 1, WAIT)
        cancelled = manage(db, "cancel_run", run_id, "--reason", "wrong feed")
        assert "next checkpoint" in assert_ok(cancelled)
        reader.wait_for(lambda line: line.startswith(f"run {run_id}:"), 1, WAIT)
        assert child.wait(timeout=WAIT) == 1  # the run did not complete
    output = "\n".join(reader.lines)
    assert "Traceback" not in output, output
    assert re.search(rf"^run {run_id}: cancelled\b", output, re.M), output

    row = snapshot_row(db, run_id)
    assert row["status"] == "cancelled"
    assert row["error"]["code"] == "WORKFLOW_CANCELLED"
    assert row["error"]["reason"] == "wrong feed"
    assert row["cancel_requested_at"] is None  # the request was consumed by the terminal write
    assert row["lease_owner"] is None
    assert set(completed_steps(row)) == {"fetch", "normalize", "enrich"}
    assert row["next_step"] == "upsert"
    assert len(row["state"]["products"]) == 11
    assert all(p["description"] for p in row["state"]["products"])
    assert step_counts(db, run_id) == {"fetch": 1, "normalize": 1, "enrich": 1}
    assert products(db) == []

    refused = manage(db, "cancel_run", run_id)
    assert_refused(refused, run_id, "cancelled")

    # The kept state is worth something: resuming runs only the step that never ran.
    resumed = manage(db, "resume_run", run_id)
    assert re.search(rf"^run {run_id}: completed\b", assert_ok(resumed), re.M)
    assert step_counts(db, run_id) == {"fetch": 1, "normalize": 1, "enrich": 1, "upsert": 1}
    assert len(products(db)) == 11


# --- call_command in this process ---------------------------------------------------------


@pytest.fixture
def no_model_delay(monkeypatch):
    monkeypatch.setenv("WARLOCK_DEMO_WRITE_DELAY", "0")


class TTYStringIO(StringIO):
    def isatty(self) -> bool:
        return True


def run(*args, **options) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command(*args, **options, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def catalog_run(run_id: str, **changes) -> Snapshot:
    """A completed catalog-import run, then ``changes`` written over its row."""
    registry.find(FLOW).execute({"vendor_id": "acme"}, run_id=run_id)
    if changes:
        Snapshot.objects.filter(pk=run_id).update(**changes)
    return Snapshot.objects.get(pk=run_id)


def running_changes(run_id: str, owner: str, expires: datetime) -> dict:
    steps = Snapshot.objects.get(pk=run_id).steps
    del steps["upsert"]
    return {
        "status": "running",
        "next_step": "upsert",
        "steps": steps,
        "finished_at": None,
        "lease_owner": owner,
        "lease_expires_at": expires,
    }


@pytest.mark.django_db
def test_call_command_list_runs_json(no_model_delay):
    catalog_run("a-1")
    catalog_run("b-1")
    out, err = run("list_runs", json=True)
    assert err == ""
    assert [r["run_id"] for r in json.loads(out)] == ["b-1", "a-1"]
    out, _ = run("list_runs", flow=FLOW, status="completed", limit=1)
    assert out.splitlines()[1].split()[:3] == ["b-1", FLOW, "completed"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "options", "message"),
    [
        (["list_runs"], {"status": "nope"}, "valid values: running"),
        (["list_runs"], {"flow": "nope"}, "registered flows"),
        (["discard_run", "a-1", "nope"], {"yes": True}, '"nope"'),
        (["discard_run", "a-1"], {}, "--no-input"),
        (["cancel_run", "a-1"], {}, "not running"),
        (["migrate_run", "a-1"], {"rename": ["upsert"]}, "OLD=NEW"),
        (["migrate_run", "a-1"], {"rename": ["nope=upsert"]}, 'no step "nope"'),
        (["migrate_run", "a-1"], {"rename": ["fetch=x", "fetch=y"]}, "renamed twice"),
        (["prune_runs"], {"older_than": "soon"}, "--older-than"),
        (["prune_runs"], {"older_than": "1d", "status": "running"}, "never deletes running"),
        (["prune_runs"], {"older_than": "0s"}, "--no-input"),
        (["execute_run", FLOW], {"input": "[NaN]"}, "NaN"),
        (["execute_run", FLOW], {"input": INPUT, "queue": "q"}, "--enqueue"),
    ],
    ids=[
        "list-status",
        "list-flow",
        "discard-unknown",
        "discard-unconfirmed",
        "cancel-not-running",
        "migrate-malformed",
        "migrate-no-such-step",
        "migrate-twice",
        "prune-duration",
        "prune-running",
        "prune-unconfirmed",
        "execute-nan",
        "execute-queue-alone",
    ],
)
def test_call_command_bad_input_raises_command_error(no_model_delay, args, options, message):
    catalog_run("a-1")
    before = list(Snapshot.objects.values())
    with pytest.raises(CommandError, match=re.escape(message)):
        run(*args, **options)
    assert list(Snapshot.objects.values()) == before


@pytest.mark.django_db
def test_call_command_discard_checks_every_id_before_deleting(no_model_delay):
    catalog_run("a-1")
    with pytest.raises(CommandError, match='"missing"'):
        run("discard_run", "a-1", "missing", yes=True)
    assert Snapshot.objects.filter(pk="a-1").exists()
    out, _ = run("discard_run", "a-1", "a-1", yes=True)  # a repeated id is deleted once
    assert out.splitlines() == ["discarded run a-1 (completed)"]
    assert not Snapshot.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "options", [{"interactive": False}, {"yes": True}], ids=["interactive", "yes"]
)
def test_call_command_deletes_without_asking(no_model_delay, options):
    for run_id in ("a-1", "b-1", "c-1"):
        catalog_run(run_id)
    out, err = run("discard_run", "a-1", **options)
    assert out == "discarded run a-1 (completed)\n" and err == ""
    out, err = run("prune_runs", older_than="0s", **options)
    assert out.startswith("deleted 2 completed runs saved before ") and err == ""
    assert not Snapshot.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "options"),
    [(["discard_run", "a-1"], {}), (["prune_runs"], {"older_than": "0s"})],
    ids=["discard", "prune"],
)
def test_call_command_asks_on_the_stdin_given(no_model_delay, args, options):
    catalog_run("a-1")
    err = StringIO()
    with pytest.raises(CommandError, match=r"^not confirmed: nothing deleted$"):
        call_command(*args, **options, stdin=TTYStringIO("n\n"), stdout=StringIO(), stderr=err)
    assert err.getvalue().startswith("Delete ") and err.getvalue().endswith(" for good? [y/N] ")
    assert Snapshot.objects.filter(pk="a-1").exists()
    out = StringIO()
    call_command(*args, **options, stdin=TTYStringIO("y\n"), stdout=out, stderr=StringIO())
    assert out.getvalue().startswith(("discarded run a-1", "deleted 1 completed run "))
    assert not Snapshot.objects.exists()


@pytest.mark.django_db
def test_call_command_discard_names_every_refused_run(no_model_delay):
    later = timezone.now() + timedelta(hours=1)
    for run_id in ("held-1", "held-2"):
        catalog_run(run_id)
        Snapshot.objects.filter(pk=run_id).update(**running_changes(run_id, OTHER_HOLDER, later))
    catalog_run("free-1")
    with pytest.raises(CommandError) as caught:
        run("discard_run", "held-1", "free-1", "held-2", yes=True)
    message = str(caught.value)
    assert message.startswith("2 of 3 runs were not discarded: ")
    assert '"held-1"' in message and '"held-2"' in message and OTHER_HOLDER in message
    assert sorted(Snapshot.objects.values_list("pk", flat=True)) == ["held-1", "held-2"]


@pytest.mark.django_db
def test_call_command_cancel_and_list_show_the_request(no_model_delay):
    later = timezone.now() + timedelta(hours=1)
    catalog_run("held-1")
    Snapshot.objects.filter(pk="held-1").update(**running_changes("held-1", OTHER_HOLDER, later))
    run("cancel_run", "held-1", reason="operator said so")
    row = Snapshot.objects.get(pk="held-1")
    assert row.cancel_reason == "operator said so" and row.cancel_requested_at is not None
    out, _ = run("list_runs")
    assert "running (cancel requested)" in out
    (listed,) = json.loads(run("list_runs", json=True)[0])
    assert listed["cancel_requested_at"] is not None


@pytest.mark.django_db
def test_call_command_prune_in_batches_with_a_progress_bar(no_model_delay):
    old = timezone.now() - timedelta(days=40)
    for index in range(5):
        catalog_run(f"old-{index}")
    catalog_run("new-1")
    catalog_run("failed-old")
    Snapshot.objects.filter(pk__startswith="old-").update(saved_at=old)
    Snapshot.objects.filter(pk="failed-old").update(saved_at=old, status="failed")

    err = TTYStringIO()
    out = StringIO()
    call_command(
        "prune_runs", older_than="30d", batch_size=2, interactive=False, stdout=out, stderr=err
    )

    assert out.getvalue().startswith("deleted 5 completed runs saved before ")
    assert "pruning [" in err.getvalue() and err.getvalue().endswith("\n")
    assert err.getvalue().count("\r") == 3  # batches of 2, 2 and 1
    assert "5/5" in err.getvalue()
    assert sorted(Snapshot.objects.values_list("pk", flat=True)) == ["failed-old", "new-1"]


@pytest.mark.django_db
def test_call_command_progress_bar_only_on_a_terminal(no_model_delay):
    catalog_run("old-1")
    Snapshot.objects.filter(pk="old-1").update(saved_at=timezone.now() - timedelta(days=2))
    _, err = run("prune_runs", older_than="1d", interactive=False)
    assert err == ""  # not a terminal: no bar
    catalog_run("old-2")
    Snapshot.objects.filter(pk="old-2").update(saved_at=timezone.now() - timedelta(days=2))
    err = TTYStringIO()
    call_command(
        "prune_runs", older_than="1d", verbosity=0, interactive=False, stdout=StringIO(), stderr=err
    )
    assert err.getvalue() == ""  # verbosity 0: no bar either
    assert not Snapshot.objects.exists()


@pytest.mark.django_db
def test_call_command_drain_resumes_a_run_whose_worker_died(no_model_delay):
    catalog_run("stale-1")
    changes = running_changes("stale-1", DEAD_HOLDER, timezone.now() - timedelta(minutes=1))
    Snapshot.objects.filter(pk="stale-1").update(**changes)
    executions = StepExecution.objects.count()

    out, _ = run("drain_runs", json=True)

    assert json.loads(out) == [{"run_id": "stale-1", "outcome": "completed", "ok": True}]
    assert Snapshot.objects.get(pk="stale-1").status == "completed"
    assert StepExecution.objects.count() == executions + 1  # upsert only
    assert Product.objects.count() == 11


@pytest.fixture
def two_versions(no_model_delay):
    """``ops-demo`` version 1 (``a``, ``b`` failing), then version 2 (``a``, ``b2``)."""
    calls = []

    def a(ctx):
        calls.append("a")
        ctx.state["a"] = 1

    def b(ctx):
        raise RuntimeError("b is broken in version 1")

    def b2(ctx):
        calls.append("b2")
        ctx.state["b2"] = ctx.state["a"] + 1

    v1 = ai.workflow(name="ops-demo", version="1", steps=[ai.step("a", a), ai.step("b", b)])
    v2 = ai.workflow(name="ops-demo", version="2", steps=[ai.step("a", a), ai.step("b2", b2)])
    registry.register(v1)
    try:
        yield v1, v2, calls
    finally:
        registry.unregister("workflow", "ops-demo")


@pytest.mark.django_db
def test_call_command_migrate_then_resume(two_versions):
    v1, v2, calls = two_versions
    assert v1.execute({}, run_id="demo-1").report.status == "failed"
    registry.register(v2, replace=True)
    with pytest.raises(CommandError, match="another version"):
        run("resume_run", "demo-1")

    with pytest.raises(CommandError, match='"b2"'):  # b2 is new: not in the run
        run("migrate_run", "demo-1", rename=["b2=b"])
    out, _ = run("migrate_run", "demo-1", rename=["b=b2"], accept_signature=True)
    assert "renamed step b -> b2" in out
    assert f"-> {v2.signature}" in out

    out, _ = run("resume_run", "demo-1")
    assert re.search(r"^run demo-1: completed\b", out, re.M), out
    assert calls == ["a", "b2"]
    assert Snapshot.objects.get(pk="demo-1").state == {"a": 1, "b2": 2}


def test_parse_duration():
    assert parse_duration("--x", "30d") == timedelta(days=30)
    assert parse_duration("--x", "12h") == timedelta(hours=12)
    assert parse_duration("--x", "90m") == timedelta(minutes=90)
    assert parse_duration("--x", "45s") == timedelta(seconds=45)
    assert parse_duration("--x", "1d12h") == timedelta(days=1, hours=12)
    assert parse_duration("--x", "0s") == timedelta(0)
    for bad in ("", "30", "d", "30 days", "1.5h", "30d!", "1w", "1d-1h"):
        with pytest.raises(CommandError, match="--x expects a duration"):
            parse_duration("--x", bad)
    with pytest.raises(CommandError, match="--x must not be negative, got '-1d'"):
        parse_duration("--x", "-1d")


# --- --enqueue with a real Redis ------------------------------------------------------------


@pytest.fixture
def rq_queue(redis_url):
    """A private django-rq queue on the session's Redis; its jobs are deleted afterwards."""
    import django_rq

    name = f"ops-{uuid.uuid4().hex[:8]}"
    with override_settings(RQ_QUEUES={name: {"URL": redis_url}}, WARLOCK_AI={"RQ_QUEUE": name}):
        queue = django_rq.get_queue(name)
        try:
            yield queue
        finally:
            queue.empty()  # deletes the jobs too, so their ids are free again


def unique(prefix: str) -> str:
    """A run id no other test (or earlier session on this Redis) used: job ids follow it."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.mark.django_db(transaction=True)  # autocommit, as under manage.py
def test_execute_run_enqueue_prints_the_job_and_the_run(no_model_delay, rq_queue):
    run_id = unique("bg")
    out, _ = run("execute_run", FLOW, input=INPUT, run_id=run_id, enqueue=True)
    assert out.strip() == f"run {run_id}: job warlock-run-{run_id} queued on {rq_queue.name}"
    assert rq_queue.job_ids == [f"warlock-run-{run_id}"]
    assert not Snapshot.objects.exists()  # nothing ran here

    again, _ = run("execute_run", FLOW, input=INPUT, run_id=run_id, enqueue=True)
    assert again == out
    assert rq_queue.job_ids == [f"warlock-run-{run_id}"]  # one run, one job

    out, _ = run("execute_run", FLOW, input=INPUT, enqueue=True)
    line = rf"run (\S+): job warlock-run-(\S+) queued on {rq_queue.name}"
    match = re.fullmatch(line, out.strip())
    assert match and match[1] == match[2], out
    assert len(rq_queue.job_ids) == 2


@pytest.mark.django_db(transaction=True)
def test_resume_run_enqueue(no_model_delay, rq_queue):
    run_id, held = unique("bg"), unique("held")
    catalog_run(run_id, status="failed")
    out, _ = run("resume_run", run_id, enqueue=True, queue=rq_queue.name)
    assert out.strip() == f"run {run_id}: job warlock-run-{run_id} queued on {rq_queue.name}"
    assert rq_queue.job_ids == [f"warlock-run-{run_id}"]

    later = timezone.now() + timedelta(hours=1)
    catalog_run(held)
    Snapshot.objects.filter(pk=held).update(**running_changes(held, OTHER_HOLDER, later))
    with pytest.raises(CommandError, match=OTHER_HOLDER):
        run("resume_run", held, enqueue=True)
    with pytest.raises(CommandError, match="unknown rq queue 'nope'"):
        run("resume_run", run_id, enqueue=True, queue="nope")
    assert rq_queue.job_ids == [f"warlock-run-{run_id}"]


@pytest.mark.django_db(transaction=True)
def test_drain_runs_enqueue(no_model_delay, rq_queue):
    run_id = unique("stale")
    catalog_run(run_id)
    changes = running_changes(run_id, DEAD_HOLDER, timezone.now() - timedelta(minutes=1))
    Snapshot.objects.filter(pk=run_id).update(**changes)

    out, _ = run("drain_runs", enqueue=True)

    assert out.splitlines() == [
        f"run {run_id}: enqueued as job warlock-run-{run_id}",
        "1 stale run: 1 enqueued",
    ]
    assert rq_queue.job_ids == [f"warlock-run-{run_id}"]
    assert Snapshot.objects.get(pk=run_id).status == "running"  # a worker will resume it
