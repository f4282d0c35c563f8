"""The scriptable CLI: ``--json`` on every command, ``--input-file`` / ``--input -``, run ids
with control characters refused, numbers and durations checked, drift in ``list_runs``, the
per-step lines, and the exit codes (0 completed and durable, 1 did not complete or refused,
3 a snapshot write failed).

Real ``manage.py`` children on a fresh SQLite project database for what an operator or a
script sees, and ``call_command`` under pytest-django for the rest.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import closing
from io import StringIO
from urllib.parse import urlsplit

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

import warlock_ai as ai
from tests.django.project import (
    FLOW,
    REPO_ROOT,
    assert_refused,
    clone_run,
    describe,
    execute_in_shell,
    manage,
    manage_args,
    migrate,
    project_env,
    snapshot_row,
    snapshot_table,
    sqlite_project,
    step_execution_total,
)
from tests.services import _stop_process
from warlock_ai.core.errors import StoreError
from warlock_ai.management.base import (
    EXIT_NOT_DURABLE,
    Reported,
    RunCommand,
    exit_code,
)
from warlock_ai.management.commands.drain_runs import exit_code as drain_exit_code
from warlock_ai.registry import registry
from warlock_ai.stores.memory import MemorySnapshotStore

INPUT = '{"vendor_id": "acme"}'
MISSING_FEED = "/nonexistent/vendor_feed.json"
DONE_RUN = "done-1"
FAILED_RUN = "failed-1"
RETIRED_RUN = "retired-1"  # a run of a flow nobody registers any more
STEPS = ["fetch", "normalize", "enrich", "upsert"]


# --- a project database ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """A migrated SQLite project database holding a completed, a failed and an orphaned run."""
    path = tmp_path_factory.mktemp("cli-template") / "project.sqlite3"
    db = sqlite_project(path)
    migrate(db)
    assert execute_in_shell(db, DONE_RUN, {"vendor_id": "acme"}) == "completed"
    failed = execute_in_shell(db, FAILED_RUN, {"vendor_id": "acme", "feed": MISSING_FEED})
    assert failed == "failed"
    clone_run(path, FAILED_RUN, RETIRED_RUN, name="retired-flow")
    return path


@pytest.fixture
def project(fresh_project_db, template):
    shutil.copyfile(template, urlsplit(fresh_project_db["url"]).path)
    return fresh_project_db


def db_path(db) -> str:
    return urlsplit(db["url"]).path


def json_out(result: subprocess.CompletedProcess[str]):
    """stdout parsed as exactly one JSON document (``json.loads`` refuses trailing text)."""
    assert "Traceback" not in result.stdout + result.stderr, describe(result)
    return json.loads(result.stdout)


def assert_json_refused(result, code: str, *fragments: str) -> dict:
    """Exit 1, ``{"error": {"code", "message"}}`` alone on stdout, nothing on stderr."""
    assert result.returncode == 1, describe(result)
    document = json_out(result)
    assert set(document) == {"error"}, describe(result)
    assert document["error"]["code"] == code, describe(result)
    assert "\n" not in document["error"]["message"]
    for fragment in fragments:
        assert fragment in document["error"]["message"], describe(result)
    assert result.stderr == "", describe(result)
    return document["error"]


def run_stdin(db, *args: str, data: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        manage_args(*args),
        cwd=REPO_ROOT,
        env=project_env(db),
        input=data,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


# --- --json: one document on stdout --------------------------------------------------------


def test_execute_run_json_is_one_document_with_the_steps(project):
    result = manage(project, "execute_run", FLOW, "--input", INPUT, "--run-id", "j-1", "--json")

    assert result.returncode == 0, describe(result)
    document = json_out(result)
    assert document["run_id"] == "j-1"
    assert (document["kind"], document["name"], document["status"]) == (
        "workflow",
        FLOW,
        "completed",
    )
    assert document["exit_code"] == 0 and document["error"] is None
    assert document["persisted"] is True and document["failed_writes"] == 0
    assert document["persist_error"] is None
    assert document["signature"] == snapshot_row(project, "j-1")["signature"]
    assert document["duration_ms"] > 0 and "total" in document["usage"]
    assert [s["name"] for s in document["steps"]] == STEPS
    assert {(s["status"], s["attempts"], s["retries"]) for s in document["steps"]} == {
        ("completed", 1, 0)
    }
    # the per-step lines went to stderr, so stdout stays one document
    assert "  step fetch started" in result.stderr.splitlines(), describe(result)


def test_execute_run_json_of_a_failed_run_exits_1_with_its_error(project):
    payload = json.dumps({"vendor_id": "acme", "feed": MISSING_FEED})
    result = manage(
        project, "execute_run", FLOW, "--input", payload, "--run-id", "jf-1", "--json", "-v", "0"
    )

    assert result.returncode == 1, describe(result)
    document = json_out(result)
    assert document["status"] == "failed" and document["exit_code"] == 1
    assert document["error"]["code"] == "STEP_FAILED"
    assert 'step "fetch" failed' in document["error"]["message"]
    assert document["steps"][0]["name"] == "fetch"
    assert document["steps"][0]["status"] == "failed"
    assert result.stderr == "", describe(result)  # -v 0: no progress lines either


def test_resume_run_json_of_a_completed_run(project):
    result = manage(project, "resume_run", DONE_RUN, "--json")
    assert result.returncode == 0, describe(result)
    document = json_out(result)
    assert (document["run_id"], document["status"], document["exit_code"]) == (
        DONE_RUN,
        "completed",
        0,
    )
    assert [s["name"] for s in document["steps"]] == STEPS


def test_discard_and_prune_and_drain_json(project):
    discarded = manage(project, "discard_run", FAILED_RUN, "--no-input", "--json")
    assert discarded.returncode == 0, describe(discarded)
    assert json_out(discarded) == {
        "discarded": [{"run_id": FAILED_RUN, "status": "failed"}],
        "refused": [],
    }
    assert snapshot_row(project, FAILED_RUN) is None

    pruned = manage(project, "prune_runs", "--older-than", "0s", "--dry-run", "--json")
    assert json_out(pruned)["matched"] == 1, describe(pruned)

    drained = manage(project, "drain_runs", "--json")
    assert drained.returncode == 0 and json_out(drained) == [], describe(drained)


JSON_REFUSALS = {
    "execute_run-malformed-input": (
        ["execute_run", FLOW, "--input", "{oops"],
        ["--input is not valid JSON"],
    ),
    "execute_run-unknown-flow": (["execute_run", "no-such-flow"], ['"no-such-flow"']),
    "resume_run-unknown-run": (["resume_run", "no-such-run"], ['"no-such-run"']),
    "discard_run-unknown-run": (["discard_run", "no-such-run", "--no-input"], ['"no-such-run"']),
    "cancel_run-not-running": (["cancel_run", DONE_RUN], ["not running"]),
    "migrate_run-nothing-to-do": (["migrate_run", FAILED_RUN], ["nothing to do"]),
    "prune_runs-huge-duration": (
        ["prune_runs", "--older-than", "99999999999d", "--no-input"],
        ["too long", "36500d"],
    ),
    "list_runs-limit-not-a-number": (["list_runs", "--limit", "ten"], ["--limit", "'ten'"]),
    "drain_runs-unknown-option": (["drain_runs", "--colour"], ["--colour"]),
}
JSON_REFUSAL_CODES = {
    "execute_run-unknown-flow": "UNKNOWN_FLOW",
    "resume_run-unknown-run": "UNKNOWN_RUN",
    "discard_run-unknown-run": "UNKNOWN_RUN",
    "cancel_run-not-running": "RUN_NOT_RUNNING",
}


@pytest.mark.parametrize("case", list(JSON_REFUSALS), ids=list(JSON_REFUSALS))
def test_json_errors_are_one_document_with_a_code(project, case):
    args, fragments = JSON_REFUSALS[case]
    before = snapshot_table(project)

    result = manage(project, *args, "--json")

    assert_json_refused(result, JSON_REFUSAL_CODES.get(case, "INVALID_INPUT"), *fragments)
    assert snapshot_table(project) == before


# --- the input from a file or stdin ----------------------------------------------------------


def big_input(size: int = 1_000_000) -> dict:
    return {"vendor_id": "acme", "note": "x" * size}


def test_input_file_of_one_megabyte(project, tmp_path):
    path = tmp_path / "input.json"
    path.write_text(json.dumps(big_input()), encoding="utf-8")

    result = manage(
        project, "execute_run", FLOW, "--input-file", str(path), "--run-id", "big-1", "-v", "0"
    )

    assert result.returncode == 0, describe(result)
    assert len(snapshot_row(project, "big-1")["input"]["note"]) == 1_000_000


@pytest.mark.parametrize("option", [["--input", "-"], ["--input-file", "-"]])
def test_input_from_stdin_of_one_megabyte(project, option):
    result = run_stdin(
        project,
        *("execute_run", FLOW, *option, "--run-id", "stdin-1", "--json"),
        data=json.dumps(big_input()),
    )

    assert result.returncode == 0, describe(result)
    assert json_out(result)["status"] == "completed"
    assert len(snapshot_row(project, "stdin-1")["input"]["note"]) == 1_000_000


def test_bad_input_sources_are_one_line_naming_them(project, tmp_path):
    invalid = tmp_path / "invalid.json"
    invalid.write_text('{"vendor_id": ', encoding="utf-8")
    latin1 = tmp_path / "latin1.json"
    latin1.write_bytes('{"vendor_id": "caf\xe9"}'.encode("latin-1"))
    cases = {
        "missing": (["--input-file", str(tmp_path / "nope.json")], ["nope.json", "no such file"]),
        "directory": (["--input-file", str(tmp_path)], [str(tmp_path), "is a directory"]),
        "invalid-json": (["--input-file", str(invalid)], ["invalid.json", "not valid JSON"]),
        "not-utf8": (["--input-file", str(latin1)], ["latin1.json", "not UTF-8"]),
        "both": (["--input", INPUT, "--input-file", str(invalid)], ["not allowed with"]),
    }
    before = snapshot_table(project)
    for name, (args, fragments) in cases.items():
        result = manage(project, "execute_run", FLOW, *args)
        try:
            assert_refused(result, *fragments)
        except AssertionError as exc:
            raise AssertionError(f"case {name}: {exc}") from exc
    empty = run_stdin(project, "execute_run", FLOW, "--input", "-", data="")
    assert_refused(empty, "--input from stdin is not valid JSON")
    assert snapshot_table(project) == before


# --- run ids with control characters -------------------------------------------------------

BAD_IDS = {"newline": "a\nb", "escape": "\x1b[31mred", "del": "x\x7f", "c1": "x\x85y"}


@pytest.mark.parametrize("name", list(BAD_IDS), ids=list(BAD_IDS))
def test_run_ids_with_control_characters_are_refused_and_never_echoed_raw(project, name):
    run_id = BAD_IDS[name]
    before = snapshot_table(project)
    executions = step_execution_total(project)
    commands = [
        ["execute_run", FLOW, "--input", INPUT, "--run-id", run_id],
        ["resume_run", run_id],
        ["discard_run", run_id, "--no-input"],
        ["cancel_run", run_id],
        ["migrate_run", run_id, "--accept-signature"],
    ]
    for args in commands:
        result = manage(project, *args)
        line = assert_refused(result, "unprintable character", repr(run_id))
        assert run_id not in result.stdout + result.stderr, line
        assert not any(c in line for c in "\x1b\x7f\x85"), line
    assert snapshot_table(project) == before
    assert step_execution_total(project) == executions


def test_list_runs_escapes_a_stored_run_id(project):
    clone_run(db_path(project), DONE_RUN, "evil\x1b[2J\nid")  # written before ids were checked

    result = manage(project, "list_runs")

    assert result.returncode == 0, describe(result)
    assert "\x1b" not in result.stdout
    assert "evil\\x1b[2J\\nid" in result.stdout, describe(result)
    listed = [r["run_id"] for r in json_out(manage(project, "list_runs", "--json"))]
    assert "evil\x1b[2J\nid" in listed  # JSON escapes it; the value is the stored one


# --- numbers and durations ------------------------------------------------------------------

NUMBER_REFUSALS = {
    "older-than-huge": (["prune_runs", "--older-than", "99999999999d"], ["too long"]),
    "older-than-huge-sum": (["prune_runs", "--older-than", "36500d1s"], ["too long"]),
    "older-than-huge-seconds": (
        ["prune_runs", "--older-than", "9" * 40 + "s"],
        ["too long", "36500d"],
    ),
    "older-than-negative": (["prune_runs", "--older-than=-5d"], ["must not be negative"]),
    "older-than-garbage": (["prune_runs", "--older-than", "5x"], ["expects a duration"]),
    "older-than-empty": (["prune_runs", "--older-than", ""], ["expects a duration"]),
    "batch-size-zero": (
        ["prune_runs", "--older-than", "1d", "--batch-size", "0"],
        ["--batch-size", "from 1 to 10000"],
    ),
    "batch-size-huge": (
        ["prune_runs", "--older-than", "1d", "--batch-size", "1" + "0" * 30],
        ["--batch-size", "from 1 to 10000"],
    ),
    "batch-size-garbage": (
        ["prune_runs", "--older-than", "1d", "--batch-size", "1e3"],
        ["--batch-size", "'1e3'"],
    ),
    "limit-huge": (["list_runs", "--limit", "1" + "0" * 30], ["--limit", "1000000000"]),
    "limit-negative": (["list_runs", "--limit=-1"], ["--limit", "from 0"]),
    "limit-float": (["list_runs", "--limit", "2.5"], ["--limit", "'2.5'"]),
}


@pytest.mark.parametrize("case", list(NUMBER_REFUSALS), ids=list(NUMBER_REFUSALS))
def test_numbers_and_durations_are_checked_with_one_line(project, case):
    args, fragments = NUMBER_REFUSALS[case]
    before = snapshot_table(project)

    assert_refused(manage(project, *args), *fragments)

    assert snapshot_table(project) == before


def test_the_longest_duration_allowed_works(project):
    result = manage(project, "prune_runs", "--older-than", "36500d", "--dry-run", "--json")
    assert result.returncode == 0, describe(result)
    assert json_out(result)["matched"] == 0


# --- list_runs: version, signature, drift ---------------------------------------------------


def test_list_runs_shows_drift_for_runs_that_can_resume(project):
    saved = snapshot_row(project, FAILED_RUN)["signature"]

    same = {r["run_id"]: r for r in json_out(manage(project, "list_runs", "--json"))}
    changed = manage(project, "list_runs", "--json", CATALOG_IMPORT_VERSION="2")
    drifted = {r["run_id"]: r for r in json_out(changed)}
    table = manage(project, "list_runs", CATALOG_IMPORT_VERSION="2").stdout.splitlines()

    assert (same[FAILED_RUN]["version"], same[FAILED_RUN]["signature"]) == ("1", saved)
    assert same[FAILED_RUN]["drifted"] is False
    assert drifted[FAILED_RUN]["drifted"] is True  # version 2 is deployed: it drifted
    assert drifted[DONE_RUN]["drifted"] is None  # completed: it cannot resume
    assert drifted[RETIRED_RUN]["drifted"] is None  # its flow is not registered any more
    rows = {line.split()[0]: line.split() for line in table[1:4]}
    header = table[0].split()
    drift_column = header.index("DRIFTED") - 2  # "RUN ID" and "NEXT STEP" are two words each
    assert rows[FAILED_RUN][drift_column] == "yes"
    assert rows[DONE_RUN][drift_column] == "-"
    assert rows[RETIRED_RUN][drift_column] == "-"
    assert saved in rows[FAILED_RUN]


# --- the per-step view ------------------------------------------------------------------------


@pytest.fixture
def flaky_flow() -> Iterator[str]:
    """A registered workflow whose step "flaky" fails once, then succeeds."""
    failures = {"left": 1}

    def first(ctx: ai.WorkflowContext) -> None:
        ctx.state["first"] = True

    def flaky(ctx: ai.WorkflowContext) -> None:
        if failures["left"]:
            failures["left"] -= 1
            raise RuntimeError("the feed timed out")

    wf = ai.workflow(
        name="cli-flaky",
        steps=[
            ai.step("first", first),
            ai.step("flaky", flaky, retry=ai.Retry(attempts=3, backoff="none")),
        ],
    )
    registry.register(wf, replace=True)
    try:
        yield wf.name
    finally:
        registry.unregister("workflow", wf.name)


@pytest.mark.django_db
def test_execute_run_prints_each_step_start_and_end_with_attempts(flaky_flow):
    out, err = StringIO(), StringIO()
    call_command("execute_run", flaky_flow, run_id="flaky-1", stdout=out, stderr=err)

    lines = out.getvalue().splitlines()
    assert lines[0].startswith("starting workflow cli-flaky run flaky-1 ")
    assert lines[1] == "  step first started"
    assert lines[2].startswith("  step first completed in ") and lines[2].endswith("(1 attempt)")
    assert lines[3] == "  step flaky started"
    assert (
        lines[4] == "  step flaky retrying: attempt 2 of 3 after: RuntimeError: the feed timed out"
    )
    assert lines[5].startswith("  step flaky completed in ")
    assert lines[5].endswith(" ms (2 attempts, 1 retry)")
    assert lines[-1].startswith("run flaky-1: completed")
    assert err.getvalue() == ""


@pytest.mark.django_db
def test_verbosity_0_prints_no_step_lines(flaky_flow):
    out, err = StringIO(), StringIO()
    call_command("execute_run", flaky_flow, run_id="quiet-1", verbosity=0, stdout=out, stderr=err)
    assert out.getvalue().splitlines() == [out.getvalue().splitlines()[0]]
    assert out.getvalue().startswith("run quiet-1: completed")
    assert err.getvalue() == ""


# --- exit codes: not durable ----------------------------------------------------------------


@pytest.fixture
def memory_flow() -> Iterator[ai.Workflow]:
    wf = ai.workflow(
        name="cli-memory",
        steps=[ai.step("a", lambda ctx: None), ai.step("b", lambda ctx: None)],
        snapshot_store=MemorySnapshotStore(),
    )
    registry.register(wf, replace=True)
    try:
        yield wf
    finally:
        registry.unregister("workflow", wf.name)


def not_durable(result, writes: int = 2):
    report = dataclasses.replace(
        result.report,
        persisted=False,
        failed_writes=writes,
        persist_error=StoreError("Error 111 connecting to 127.0.0.1:1. Connection refused."),
    )
    return dataclasses.replace(result, report=report)


def report_of(result, **options) -> tuple[Reported | None, str, str]:
    out, err = StringIO(), StringIO()
    command = RunCommand(stdout=out, stderr=err)
    command.json_output = options.get("json", False)
    try:
        command.report(result)
    except Reported as exc:
        return exc, out.getvalue(), err.getvalue()
    return None, out.getvalue(), err.getvalue()


def test_a_completed_durable_run_exits_0(memory_flow):
    result = memory_flow.execute({}, run_id="ok-1")
    assert exit_code(result) == 0
    raised, out, err = report_of(result)
    assert raised is None and out.startswith("run ok-1: completed") and err == ""


def test_a_run_whose_write_failed_exits_3_saying_what_is_stored(memory_flow):
    result = not_durable(memory_flow.execute({}, run_id="nd-1"))
    assert exit_code(result) == EXIT_NOT_DURABLE

    raised, out, err = report_of(result)

    assert raised is not None and raised.returncode == 3
    assert out.startswith("run nd-1: completed")
    (line,) = err.splitlines()
    assert line.startswith("error: run nd-1 completed but is not durable: 2 snapshot writes")
    assert "(last: Error 111 connecting" in line
    assert line.endswith("the stored run says: completed, at —")


def test_not_durable_with_nothing_stored_says_so_in_json(memory_flow):
    result = not_durable(memory_flow.execute({}, run_id="nd-2"), writes=1)
    memory_flow.store.delete("nd-2")

    raised, out, err = report_of(result, json=True)

    assert raised is not None and raised.returncode == 3 and err == ""
    document = json.loads(out)
    assert document["persisted"] is False and document["failed_writes"] == 1
    assert document["persist_error"]["code"] == "STORE_ERROR"
    assert document["exit_code"] == 3
    assert document["stored"] == {"status": None}


def test_not_durable_wins_over_failed(memory_flow):
    failed = dataclasses.replace(memory_flow.execute({}, run_id="nd-3"), error=StoreError("x"))
    assert exit_code(failed) == 1
    assert exit_code(not_durable(failed)) == 3


def test_drain_exit_codes():
    assert drain_exit_code([]) == 0
    assert (
        drain_exit_code([("a", "completed"), ("b", "skipped: held"), ("c", "enqueued as job j")])
        == 0
    )
    assert drain_exit_code([("a", "completed"), ("b", "failed: boom")]) == 1
    assert drain_exit_code([("a", "error: unreadable")]) == 1
    assert drain_exit_code([("a", "failed: boom"), ("b", "not-durable: completed, but")]) == 3


def test_drain_runs_exits_1_when_a_resumed_run_fails(project):
    with closing(sqlite3.connect(db_path(project))) as conn, conn:
        conn.execute(
            "UPDATE warlock_ai_snapshot SET status = 'running' WHERE run_id = ?", (FAILED_RUN,)
        )

    result = manage(project, "drain_runs")

    assert result.returncode == 1, describe(result)
    assert f"run {FAILED_RUN}: failed: " in result.stdout, describe(result)
    assert result.stdout.splitlines()[-1] == "1 stale run: 1 failed"
    assert_refused(result, "not every stale run completed")


# --- exit code 3 through a real store that fails -----------------------------------------------


@pytest.mark.django_db
def test_execute_run_exits_3_when_redis_stops_mid_run(throwaway_redis):
    from warlock_ai.stores.redis import RedisSnapshotStore

    url, server = throwaway_redis
    # Short retries: the store stays down (test_write_retry.py covers writes that land).
    store = RedisSnapshotStore(url=url, prefix="cli-test:", write_retry_seconds=0.3)

    def stop_redis(ctx: ai.WorkflowContext) -> None:
        _stop_process(server)

    wf = ai.workflow(
        name="cli-redis-stops",
        steps=[
            ai.step("a", lambda ctx: None),
            ai.step("stop", stop_redis),
            ai.step("c", lambda ctx: None),
        ],
        snapshot_store=store,
    )
    registry.register(wf, replace=True)
    out, err = StringIO(), StringIO()
    try:
        with pytest.raises(CommandError) as raised:
            call_command(
                "execute_run", wf.name, run_id="redis-1", json=True, stdout=out, stderr=err
            )
    finally:
        registry.unregister("workflow", wf.name)
        store.close()
    assert raised.value.returncode == 3
    document = json.loads(out.getvalue())
    assert document["status"] == "completed" and document["persisted"] is False
    assert document["failed_writes"] >= 1
    assert "unreadable" in document["stored"]  # the store is still down


def test_execute_run_of_a_supervisor_prints_iterations_and_json(supervised):
    out, err = StringIO(), StringIO()
    call_command(
        "execute_run", "supervisor:support", input='{"ticket": 1}', run_id="sv-1", stdout=out
    )
    lines = out.getvalue().splitlines()
    assert "  iteration 0 started" in lines, out.getvalue()
    assert any(line.startswith("  iteration 0 ") and "ms" in line for line in lines)

    out = StringIO()
    call_command("resume_run", "sv-1", json=True, stdout=out, stderr=err)
    document = json.loads(out.getvalue())
    assert (document["kind"], document["status"], document["exit_code"]) == (
        "supervisor",
        "completed",
        0,
    )
    assert document["iterations"] and "steps" not in document
    assert {"iteration", "intents", "duration_ms", "failed"} <= set(document["iterations"][0])
