"""The bad-input corpus of issue 12: every bad input to a command, the Python API or an admin
POST gets one clear error naming what was wrong, and the Snapshot table is left as it was.

Each case is one row of a table. Commands run through ``call_command`` (a ``CommandError``
whose message is one line), a few through a real ``manage.py`` child (exit code 1, one
``error: ...`` line on stderr, no traceback). API cases assert the exception type (or the
``result.error`` a run returns) and a one-line message naming the offending value. Admin
cases assert the answer is never a 500 and says something. The table is seeded with runs
first, so "unchanged" means something. The store-level cases live in
tests/stores/test_bad_input_stores.py.
"""

from __future__ import annotations

import json
import math
import re
import sqlite3
from collections.abc import Callable
from contextlib import closing
from datetime import timedelta
from io import StringIO
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.utils import timezone

import warlock_ai as ai
from tests.django.project import assert_refused, manage, migrate, snapshot_table
from tests.users import make_staff_user
from warlock_ai.core.errors import (
    AIError,
    SnapshotSerializationError,
    StoreError,
    SupervisorFailedError,
    WorkflowError,
)
from warlock_ai.models import Snapshot
from warlock_ai.registry import registry

FLOW = "corpus"
DONE, FAILED, LIVE = "seed-done", "seed-failed", "seed-live"
OTHER_HOLDER = "worker-elsewhere:4121:9f2c1a7e"
HUGE_ID = "r" * 300
# Run ids an operator must never see echoed raw to a terminal, nor stored.
CONTROL_IDS = {
    "newline": "evil\nrun",
    "esc": "evil\x1b[31mrun",
    "nul": "evil\x00run",
    "tab": "evil\trun",
    "carriage-return": "evil\rrun",
    "del": "evil\x7frun",
}
CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _a(ctx: Any) -> None:
    ctx.state["a"] = 1


def _b(ctx: Any) -> None:
    if isinstance(ctx.input, dict) and ctx.input.get("fail"):
        raise ValueError("b failed on purpose")
    ctx.state["b"] = 2


def corpus_flow() -> Any:
    return ai.workflow(name=FLOW, version="1", steps=[ai.step("a", _a), ai.step("b", _b)])


def table() -> list[dict[str, Any]]:
    return list(Snapshot.objects.order_by("pk").values())


@pytest.fixture
def seeded(db: None, monkeypatch: pytest.MonkeyPatch) -> Any:
    """``corpus`` registered; a completed, a failed and a running run (leased elsewhere until
    tomorrow) stored on the ORM store."""
    monkeypatch.setenv("WARLOCK_DEMO_WRITE_DELAY", "0")
    flow = registry.register(corpus_flow(), replace=True)
    flow.execute({}, run_id=DONE)
    flow.execute({"fail": True}, run_id=FAILED)
    flow.execute({}, run_id=LIVE)
    Snapshot.objects.filter(pk=LIVE).update(
        status="running",
        next_step="b",
        finished_at=None,
        lease_owner=OTHER_HOLDER,
        lease_expires_at=timezone.now() + timedelta(days=1),
    )
    yield flow
    registry.unregister("workflow", FLOW)


def one_line(message: str) -> str:
    assert message.strip(), "the error says nothing"
    assert "\n" not in message.strip() and "\r" not in message, f"not one line: {message!r}"
    assert "Traceback" not in message, message
    return message


# --- commands through call_command ---------------------------------------------------------

# case id -> (argv, fragments every one of which the error line must contain)
COMMANDS: dict[str, tuple[list[str], list[str]]] = {
    # execute_run
    "execute-unknown-flow": (["execute_run", "no-such-flow"], ['"no-such-flow"', FLOW]),
    "execute-input-not-json": (["execute_run", FLOW, "--input", "{vendor"], ["--input", "JSON"]),
    "execute-input-nan": (["execute_run", FLOW, "--input", '{"x": NaN}'], ["--input", "NaN"]),
    "execute-input-infinity": (["execute_run", FLOW, "--input", "[Infinity]"], ["Infinity"]),
    "execute-input-nul": (["execute_run", FLOW, "--input", '{"x": "a\\u0000b"}'], ["input"]),
    "execute-input-lone-surrogate": (["execute_run", FLOW, "--input", '["\\ud800"]'], ["input"]),
    "execute-context-not-object": (
        ["execute_run", FLOW, "--context", "[1, 2]"],
        ["--context", "JSON object", "list"],
    ),
    "execute-context-not-json": (["execute_run", FLOW, "--context", "{"], ["--context"]),
    "execute-context-nan": (["execute_run", FLOW, "--context", '{"x": NaN}'], ["NaN"]),
    "execute-run-id-empty": (["execute_run", FLOW, "--run-id", ""], ["run_id"]),
    "execute-run-id-too-long": (["execute_run", FLOW, "--run-id", HUGE_ID], ["300", "255"]),
    **{
        f"execute-run-id-{name}": (["execute_run", FLOW, "--run-id", run_id], ["run"])
        for name, run_id in CONTROL_IDS.items()
    },
    "execute-queue-without-enqueue": (
        ["execute_run", FLOW, "--queue", "default"],
        ["--queue", "--enqueue"],
    ),
    "execute-enqueue-with-context": (
        ["execute_run", FLOW, "--enqueue", "--context", "{}"],
        ["--context", "--enqueue"],
    ),
    "execute-unknown-option": (["execute_run", FLOW, "--inptu", "{}"], ["--inptu"]),
    # resume_run
    "resume-unknown-run": (["resume_run", "no-such-run"], ['"no-such-run"']),
    "resume-run-id-empty": (["resume_run", ""], ["run"]),
    "resume-run-id-too-long": (["resume_run", HUGE_ID], ["300", "255"]),
    "resume-run-id-newline": (["resume_run", CONTROL_IDS["newline"]], ["run"]),
    "resume-run-id-esc": (["resume_run", CONTROL_IDS["esc"]], ["run"]),
    "resume-run-id-nul": (["resume_run", CONTROL_IDS["nul"]], ["run"]),
    "resume-context-not-object": (["resume_run", FAILED, "--context", "3"], ["--context", "int"]),
    "resume-context-not-json": (["resume_run", FAILED, "--context", "{'a': 1}"], ["--context"]),
    "resume-context-nan": (["resume_run", FAILED, "--context", '{"x": -Infinity}'], ["Infinity"]),
    "resume-live-lease": (["resume_run", LIVE], [LIVE, OTHER_HOLDER]),
    "resume-queue-without-enqueue": (["resume_run", FAILED, "--queue", "q"], ["--enqueue"]),
    # discard_run
    "discard-unknown-run": (["discard_run", DONE, "no-such-run", "--yes"], ['"no-such-run"']),
    "discard-run-id-empty": (["discard_run", "", "--yes"], ["run"]),
    "discard-run-id-too-long": (["discard_run", HUGE_ID, "--yes"], ["300", "255"]),
    "discard-run-id-newline": (["discard_run", CONTROL_IDS["newline"], "--yes"], ["run"]),
    "discard-run-id-esc": (["discard_run", CONTROL_IDS["esc"], "--yes"], ["run"]),
    "discard-run-id-nul": (["discard_run", CONTROL_IDS["nul"], "--yes"], ["run"]),
    "discard-live-lease": (["discard_run", LIVE, "--yes"], [LIVE, OTHER_HOLDER]),
    "discard-no-run-id": (["discard_run", "--yes"], ["run_id"]),
    "discard-unconfirmed": (["discard_run", DONE], ["--no-input"]),
    # cancel_run
    "cancel-unknown-run": (["cancel_run", "no-such-run"], ['"no-such-run"']),
    "cancel-not-running": (["cancel_run", DONE], [DONE, "completed"]),
    "cancel-failed-run": (["cancel_run", FAILED], [FAILED, "failed"]),
    "cancel-run-id-empty": (["cancel_run", ""], ["run"]),
    "cancel-run-id-too-long": (["cancel_run", HUGE_ID], ["300", "255"]),
    "cancel-run-id-newline": (["cancel_run", CONTROL_IDS["newline"]], ["run"]),
    "cancel-run-id-esc": (["cancel_run", CONTROL_IDS["esc"]], ["run"]),
    # migrate_run
    "migrate-unknown-run": (
        ["migrate_run", "no-such-run", "--accept-signature"],
        ['"no-such-run"'],
    ),
    "migrate-nothing-to-do": (["migrate_run", FAILED], ["--rename", "--accept-signature"]),
    "migrate-malformed-rename": (["migrate_run", FAILED, "--rename", "a"], ["OLD=NEW", "'a'"]),
    "migrate-empty-old-name": (["migrate_run", FAILED, "--rename", "=a"], ["OLD=NEW"]),
    "migrate-step-not-in-run": (["migrate_run", FAILED, "--rename", "zz=a"], ['"zz"']),
    "migrate-step-not-in-definition": (
        ["migrate_run", FAILED, "--rename", "b=zz", "--accept-signature"],
        ['"zz"'],
    ),
    "migrate-renamed-twice": (
        ["migrate_run", FAILED, "--rename", "a=x", "--rename", "a=y"],
        ["renamed twice"],
    ),
    "migrate-two-to-one": (
        ["migrate_run", FAILED, "--rename", "a=x", "--rename", "b=x"],
        ["'x'"],
    ),
    "migrate-live-lease": (["migrate_run", LIVE, "--accept-signature"], [LIVE, OTHER_HOLDER]),
    "migrate-run-id-esc": (["migrate_run", CONTROL_IDS["esc"], "--accept-signature"], ["run"]),
    # list_runs
    "list-unknown-status": (["list_runs", "--status", "nope"], ["'nope'", "running"]),
    "list-empty-status": (["list_runs", "--status", ","], ["--status"]),
    "list-unknown-flow": (["list_runs", "--flow", "no-such-flow"], ['"no-such-flow"']),
    "list-negative-limit": (["list_runs", "--limit", "-1"], ["--limit"]),
    "list-limit-not-a-number": (["list_runs", "--limit", "ten"], ["--limit", "'ten'"]),
    "list-limit-huge": (["list_runs", "--limit", "99999999999999999999999"], ["--limit"]),
    "list-unknown-option": (["list_runs", "--colour"], ["--colour"]),
    # prune_runs
    "prune-no-older-than": (["prune_runs"], ["--older-than"]),
    "prune-duration-overflow": (["prune_runs", "--older-than", "99999999999d"], ["--older-than"]),
    "prune-duration-negative": (["prune_runs", "--older-than=-1d"], ["--older-than", "'-1d'"]),
    "prune-duration-word": (["prune_runs", "--older-than", "abc"], ["--older-than", "'abc'"]),
    "prune-duration-no-unit": (["prune_runs", "--older-than", "0"], ["--older-than", "'0'"]),
    "prune-duration-empty": (["prune_runs", "--older-than", ""], ["--older-than"]),
    "prune-duration-weeks": (["prune_runs", "--older-than", "1w"], ["--older-than", "'1w'"]),
    "prune-duration-seconds-overflow": (
        ["prune_runs", "--older-than", "999999999999999999999s"],
        ["--older-than"],
    ),
    "prune-running": (["prune_runs", "--older-than", "1d", "--status", "running"], ["running"]),
    "prune-unknown-status": (["prune_runs", "--older-than", "1d", "--status", "x"], ["'x'"]),
    "prune-zero-batch": (["prune_runs", "--older-than", "1d", "--batch-size", "0"], ["--batch"]),
    "prune-negative-batch": (["prune_runs", "--older-than", "1d", "--batch-size", "-5"], ["-5"]),
    "prune-batch-not-a-number": (
        ["prune_runs", "--older-than", "1d", "--batch-size", "many"],
        ["--batch-size", "'many'"],
    ),
    "prune-unconfirmed": (["prune_runs", "--older-than", "0s"], ["--no-input"]),
    # drain_runs
    "drain-unknown-option": (["drain_runs", "--all"], ["--all"]),
    "drain-extra-argument": (["drain_runs", "everything"], ["everything"]),
    "drain-enqueue-without-rq": (["drain_runs", "--enqueue"], ["RQ"]),
}


@pytest.mark.parametrize("case", list(COMMANDS), ids=list(COMMANDS))
def test_command_refuses_bad_input(seeded, case):
    argv, fragments = COMMANDS[case]
    before = table()
    with pytest.raises(CommandError) as caught:
        call_command(*argv, stdout=StringIO(), stderr=StringIO(), stdin=StringIO())
    line = one_line(str(caught.value))
    assert not CONTROL.search(line), f"control character echoed raw: {line!r}"
    for fragment in fragments:
        assert fragment in line, f"{fragment!r} not in {line!r}"
    assert table() == before


# --- commands as a user runs them: manage.py children -------------------------------------

# (argv, fragments): a handful, each a real process, to prove the exit code and stderr shape.
CHILDREN: dict[str, tuple[list[str], list[str]]] = {
    "child-prune-duration-overflow": (
        ["prune_runs", "--older-than", "99999999999d", "--no-input"],
        ["--older-than"],
    ),
    "child-execute-run-id-esc": (
        [
            "execute_run",
            "catalog-import",
            "--input",
            '{"vendor_id": "acme"}',
            "--run-id",
            "a\x1b[2Jb",
        ],
        ["run"],
    ),
    "child-execute-input-nan": (
        ["execute_run", "catalog-import", "--input", '{"vendor_id": NaN}'],
        ["--input", "NaN"],
    ),
    "child-discard-run-id-newline": (["discard_run", "a\nb", "--no-input"], ["run"]),
    "child-list-limit-huge": (["list_runs", "--limit", "9" * 30], ["--limit"]),
    "child-resume-unknown-run": (["resume_run", "no-such-run"], ['"no-such-run"']),
}


@pytest.fixture(scope="module")
def child_template(tmp_path_factory):
    """A migrated project database with one seeded run, copied for each child case."""
    from tests.django.project import execute_in_shell, sqlite_project

    path = tmp_path_factory.mktemp("corpus") / "project.sqlite3"
    db = sqlite_project(path)
    migrate(db)
    assert execute_in_shell(db, "seed-1", {"vendor_id": "acme"}) == "completed"
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("SELECT COUNT(*) FROM warlock_ai_snapshot").fetchone() == (1,)
    return path


@pytest.mark.parametrize("case", list(CHILDREN), ids=list(CHILDREN))
def test_manage_py_refuses_bad_input(fresh_project_db, child_template, case):
    argv, fragments = CHILDREN[case]
    Path(urlsplit(fresh_project_db["url"]).path).write_bytes(child_template.read_bytes())
    before = snapshot_table(fresh_project_db)
    line = assert_refused(manage(fresh_project_db, *argv), *fragments)
    assert not CONTROL.search(line), f"control character echoed raw: {line!r}"
    assert snapshot_table(fresh_project_db) == before


# --- the Python API --------------------------------------------------------------------------


def _noop(ctx: Any) -> None:
    pass


def _wf(**options: Any) -> Any:
    return ai.workflow(**{"name": "api", "steps": [ai.step("a", _noop)], **options})


def _execute(payload: Any = None, **options: Any) -> Callable[[Any], Any]:
    return lambda flow: flow.execute(payload if payload is not None else {}, **options)


def _circular() -> dict[str, Any]:
    value: dict[str, Any] = {}
    value["self"] = value
    return value


def _redis(**options: Any) -> Any:
    from tests import services

    return ai.snapshot.redis(url=services.redis_url(), **options)


# case id -> (call(flow), expected type(s), fragments of the one-line message)
API: dict[str, tuple[Callable[[Any], Any], Any, list[str]]] = {
    # definitions
    "workflow-no-steps": (lambda f: ai.workflow(name="w", steps=[]), WorkflowError, ["steps"]),
    "workflow-steps-not-list": (
        lambda f: ai.workflow(name="w", steps="a"),
        WorkflowError,
        ["steps"],
    ),
    "workflow-empty-name": (lambda f: _wf(name=""), WorkflowError, ["name", "''"]),
    "workflow-name-not-string": (lambda f: _wf(name=7), WorkflowError, ["name", "7"]),
    "workflow-duplicate-steps": (
        lambda f: ai.workflow(name="w", steps=[ai.step("a", _noop), ai.step("a", _noop)]),
        WorkflowError,
        ['"a"', "twice"],
    ),
    "workflow-name-longer-than-column": (lambda f: _wf(name="n" * 201), WorkflowError, ["200"]),
    "workflow-version-longer-than-column": (
        lambda f: _wf(version="v" * 101),
        WorkflowError,
        ["version", "100"],
    ),
    "step-name-longer-than-column": (
        lambda f: ai.workflow(name="w", steps=[ai.step("s" * 256, _noop)]),
        WorkflowError,
        ["255"],
    ),
    "workflow-unknown-option": (lambda f: _wf(retries=3), TypeError, ["retries"]),
    "workflow-snapshot-store-string": (
        lambda f: _wf(snapshot_store="nope"),
        (WorkflowError, TypeError),
        ["snapshot_store", "'nope'"],
    ),
    "workflow-snapshot-store-object": (
        lambda f: _wf(snapshot_store=object()),
        (WorkflowError, TypeError),
        ["snapshot_store"],
    ),
    "step-not-callable": (lambda f: ai.step("a", 3), WorkflowError, ['"a"', "callable", "3"]),
    "step-empty-name": (lambda f: ai.step("", _noop), WorkflowError, ["name", "''"]),
    "step-name-not-string": (lambda f: ai.step(("a",), _noop), WorkflowError, ["name"]),
    "step-bad-retry": (lambda f: ai.step("a", _noop, retry="x"), WorkflowError, ["retry", "'x'"]),
    "retry-negative-attempts": (
        lambda f: ai.Retry(attempts=-1),
        (WorkflowError, ValueError),
        ["attempts", "-1"],
    ),
    "supervisor-no-intents": (
        lambda f: ai.supervisor(name="s", intents={}, route=lambda ctx: ai.END),
        SupervisorFailedError,
        ["intents"],
    ),
    "supervisor-route-not-callable": (
        lambda f: ai.supervisor(name="s", intents={"a": _noop}, route="a"),
        SupervisorFailedError,
        ["route"],
    ),
    "supervisor-zero-iterations": (
        lambda f: ai.supervisor(name="s", intents={"a": _noop}, route=_noop, max_iterations=0),
        SupervisorFailedError,
        ["max_iterations", "0"],
    ),
    "supervisor-name-longer-than-column": (
        lambda f: ai.supervisor(name="s" * 201, intents={"a": _noop}, route=_noop),
        SupervisorFailedError,
        ["200"],
    ),
    # ai.config
    "config-unknown-key": (
        lambda f: ai.config(default_snapshot=1),
        TypeError,
        ["default_snapshot"],
    ),
    "config-store-not-a-store": (
        lambda f: ai.config(default_snapshot_store="db"),
        TypeError,
        ["default_snapshot_store", "'db'"],
    ),
    # run ids
    "execute-run-id-empty": (_execute(run_id=""), WorkflowError, ["run_id", "''"]),
    "execute-run-id-not-string": (_execute(run_id=5), WorkflowError, ["run_id", "5"]),
    "execute-run-id-too-long": (_execute(run_id=HUGE_ID), WorkflowError, ["300", "255"]),
    **{
        f"execute-run-id-{name}": (_execute(run_id=run_id), WorkflowError, ["run_id"])
        for name, run_id in CONTROL_IDS.items()
    },
    # inputs that are not JSON, or JSON a store cannot keep faithfully
    "input-set": (_execute({"tags": {1, 2}}, run_id="i-1"), SnapshotSerializationError, ["tags"]),
    "input-bytes": (_execute({"raw": b"x"}, run_id="i-2"), SnapshotSerializationError, ["raw"]),
    "input-object": (_execute({"o": object()}, run_id="i-3"), SnapshotSerializationError, ["o"]),
    "input-nan": (_execute({"n": math.nan}, run_id="i-4"), SnapshotSerializationError, ["n"]),
    "input-infinity": (_execute([1, math.inf], run_id="i-5"), SnapshotSerializationError, ["inf"]),
    "input-circular": (_execute(_circular(), run_id="i-6"), SnapshotSerializationError, ["self"]),
    "input-int-key": (_execute({1: "a"}, run_id="i-7"), SnapshotSerializationError, ["1"]),
    "input-none-key": (_execute({None: "a"}, run_id="i-8"), SnapshotSerializationError, ["None"]),
    "input-tuple-key": (_execute({(1, 2): "a"}, run_id="i-9"), SnapshotSerializationError, []),
    "input-nested-int-key": (
        _execute({"outer": {2: "a"}}, run_id="i-10"),
        SnapshotSerializationError,
        ["outer"],
    ),
    "input-nul": (
        _execute({"text": "a\x00b"}, run_id="i-11"),
        SnapshotSerializationError,
        ["text"],
    ),
    "input-lone-surrogate": (
        _execute({"text": "a\ud800b"}, run_id="i-12"),
        SnapshotSerializationError,
        ["text"],
    ),
    "input-lone-surrogate-key": (
        _execute({"\udc00": 1}, run_id="i-13"),
        SnapshotSerializationError,
        ["input"],
    ),
    "context-not-a-dict": (
        _execute(run_id="i-14", context=[1]),
        (WorkflowError, TypeError),
        ["context"],
    ),
    # stores
    "db-store-unknown-alias": (lambda f: ai.snapshot.db(using="nope"), StoreError, ["'nope'"]),
    "db-store-negative-lease": (
        lambda f: ai.snapshot.db(lease_seconds=-1),
        ValueError,
        ["lease_seconds", "-1"],
    ),
    "db-store-lease-not-a-number": (
        lambda f: ai.snapshot.db(lease_seconds="5m"),
        ValueError,
        ["lease_seconds", "'5m'"],
    ),
    "db-store-negative-write-retry": (
        lambda f: ai.snapshot.db(write_retry_seconds=-1),
        ValueError,
        ["write_retry_seconds", "-1"],
    ),
    "db-store-write-retry-too-long": (
        lambda f: ai.snapshot.db(write_retry_seconds=10**9),
        ValueError,
        ["write_retry_seconds"],
    ),
    "memory-store-zero-lease": (
        lambda f: ai.snapshot.memory(lease_seconds=0),
        ValueError,
        ["lease_seconds", "0"],
    ),
    "memory-store-nan-lease": (
        lambda f: ai.snapshot.memory(lease_seconds=math.nan),
        ValueError,
        ["lease_seconds", "nan"],
    ),
    "redis-store-no-client": (lambda f: ai.snapshot.redis(), TypeError, ["client", "url"]),
    "redis-store-zero-ttl": (lambda f: _redis(ttl=0), ValueError, ["ttl", "0"]),
    "redis-store-ttl-not-a-number": (lambda f: _redis(ttl="1h"), ValueError, ["ttl", "'1h'"]),
    "redis-store-negative-lease": (
        lambda f: _redis(lease_seconds=-5),
        ValueError,
        ["lease_seconds"],
    ),
    "redis-store-negative-write-retry": (
        lambda f: _redis(write_retry_seconds=-1),
        ValueError,
        ["write_retry_seconds"],
    ),
    "redis-store-empty-prefix": (lambda f: _redis(prefix=""), ValueError, ["prefix"]),
    "redis-store-prefix-not-string": (
        lambda f: _redis(prefix=5),
        (TypeError, ValueError),
        ["prefix"],
    ),
}


def api_error(call: Callable[[], Any]) -> BaseException:
    """The exception ``call`` raised, or the error its run returned; fails when it accepted."""
    try:
        result = call()
    except (AIError, TypeError, ValueError) as exc:
        return exc
    error = getattr(result, "error", None)
    assert error is not None, f"accepted: {result!r}"
    return error


@pytest.mark.parametrize("case", list(API), ids=list(API))
def test_api_refuses_bad_input(seeded, case):
    call, expected, fragments = API[case]
    flow = _wf()
    before = table()
    try:
        error = api_error(lambda: call(flow))
    finally:
        ai.reset_config()
    assert isinstance(error, expected), f"{type(error).__name__}: {error}"
    message = one_line(str(error))
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert table() == before


# State a step writes that cannot be stored: the run fails naming the key path, and its row
# keeps the last state that could be stored (nothing half-written).
STATES: dict[str, Any] = {
    "set": {1, 2},
    "nan": math.nan,
    "int-key": {1: "a"},
    "none-key": {None: "a"},
    "nul": "a\x00b",
    "lone-surrogate": "a\udfffb",
}


@pytest.mark.parametrize("case", list(STATES), ids=list(STATES))
def test_state_that_cannot_be_stored_fails_the_run_naming_its_path(seeded, case):
    value = STATES[case]

    def bad(ctx: Any) -> None:
        ctx.state["bad"] = value

    flow = ai.workflow(name="state", steps=[ai.step("a", _a), ai.step("b", bad)])
    before = table()
    result = flow.execute({}, run_id="state-1")
    assert isinstance(result.error, SnapshotSerializationError), repr(result.error)
    assert "state.bad" in one_line(str(result.error))
    stored = Snapshot.objects.get(pk="state-1")
    assert stored.status == "failed" and stored.state == {"a": 1}
    assert [row for row in table() if row["run_id"] != "state-1"] == before


# --- admin POSTs -----------------------------------------------------------------------------

LIST = "/admin/warlock_ai/snapshot/"


def action(run_id: str, name: str) -> str:
    return f"{LIST}{quote(run_id, safe='')}/actions/{name}/"


def messages_of(response: Any) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


def bulk(name: str, run_ids: list[str], **extra: Any) -> tuple[str, dict[str, Any]]:
    return LIST, {"action": name, "_selected_action": run_ids, "index": 0, **extra}


MIGRATE = "migrate"
# case id -> (url, POST data or None for a GET, fragment a message must contain or None)
ADMIN: dict[str, tuple[str, dict[str, Any] | None, str | None]] = {
    "discard-unknown-run": (action("no-such-run", "discard"), {"post": "yes"}, "no-such-run"),
    "cancel-unknown-run": (action("no-such-run", "cancel"), {"post": "yes"}, "no-such-run"),
    "resume-unknown-run": (action("no-such-run", "resume"), {"post": "yes"}, "no-such-run"),
    "migrate-unknown-run": (action("no-such-run", MIGRATE), {"post": "yes"}, "no-such-run"),
    "discard-run-id-newline": (action("a\nb", "discard"), {"post": "yes"}, None),
    "discard-run-id-nul": (action("a\x00b", "discard"), {"post": "yes"}, None),
    "discard-run-id-too-long": (action(HUGE_ID, "discard"), {"post": "yes"}, None),
    "cancel-not-running": (action(DONE, "cancel"), {"post": "yes"}, "not running"),
    "discard-live-lease": (action(LIVE, "discard"), {"post": "yes"}, OTHER_HOLDER),
    "resume-completed": (action(DONE, "resume"), {"post": "yes"}, "completed"),
    "migrate-unknown-target": (
        action(FAILED, MIGRATE),
        {"post": "yes", "step_0": "a", "step_1": "no-such-step"},
        "no-such-step",
    ),
    "migrate-two-to-one": (
        action(FAILED, MIGRATE),
        {"post": "yes", "step_0": "a", "step_1": "a"},
        "both mapped to",
    ),
    "migrate-missing-fields": (action(FAILED, MIGRATE), {"post": "yes"}, "required"),
    "migrate-control-character-target": (
        action(FAILED, MIGRATE),
        {"post": "yes", "step_0": "a\x1b[2J", "step_1": "b"},
        "not one of the available choices",
    ),
    "bulk-unknown-ids": (*bulk("discard_selected", ["no-such-run"], post="yes"), "None of"),
    "bulk-malformed-ids": (
        *bulk("discard_selected", ["", "a\x00b", "r" * 1000], post="yes"),
        "None of",
    ),
    "bulk-nothing-selected": (*bulk("discard_selected", []), "must be selected"),
    "bulk-unknown-action": (*bulk("explode_selected", [DONE]), None),
    "bulk-cancel-not-running": (*bulk("cancel_selected", [DONE, FAILED], post="yes"), "not"),
    "bulk-discard-live-lease": (*bulk("discard_selected", [LIVE], post="yes"), OTHER_HOLDER),
    "bulk-migrate-unknown-target": (
        *bulk("migrate_selected", [FAILED], post="yes", step_0="a", step_1="zz"),
        "zz",
    ),
    "filter-status-garbage": (f"{LIST}?status=nope", None, None),
    "filter-status-exact-garbage": (f"{LIST}?status__exact=nope", None, None),
    "filter-saved-at-garbage": (f"{LIST}?saved_at__gte=garbage", None, None),
    "filter-lease-garbage": (f"{LIST}?lease=garbage", None, None),
    "filter-definition-garbage": (f"{LIST}?definition=garbage", None, None),
    "filter-flow-nul": (f"{LIST}?flow=a%00b", None, None),
    "filter-kind-garbage": (f"{LIST}?kind__exact=nope", None, None),
    "search-nul": (f"{LIST}?q=a%00b", None, None),
    "ordering-garbage": (f"{LIST}?o=zz.-x", None, None),
    "page-garbage": (f"{LIST}?p=-3", None, None),
    "date-hierarchy-garbage": (f"{LIST}?saved_at__year=20x6", None, None),
    "detail-unknown-run": (f"{LIST}no-such-run/change/", None, "no-such-run"),
    "detail-run-id-control-characters": (f"{LIST}{quote(chr(27) + '[2J')}/change/", None, None),
}


@pytest.fixture
def admin_client(seeded: Any) -> Client:
    from django.contrib.auth.models import User

    User.objects.create_superuser("root", "root@example.com", "pw")
    client = Client(raise_request_exception=False)
    client.login(username="root", password="pw")
    return client


@pytest.mark.parametrize("case", list(ADMIN), ids=list(ADMIN))
def test_admin_answers_bad_input_without_a_500(admin_client, case):
    url, data, fragment = ADMIN[case]
    before = table()
    if data is None:
        response = admin_client.get(url, follow=True)
    else:
        response = admin_client.post(url, data, follow=True)
    assert response.status_code != 500 and response.status_code < 500, response.status_code
    if fragment is not None:
        page = response.content.decode(errors="replace")
        said = [*messages_of(response), page]
        assert any(fragment in text for text in said), f"{fragment!r} not said"
    elif response.status_code == 200:
        assert response.templates, "an empty answer"
    assert table() == before


def test_staff_user_without_permission_gets_403_not_500(seeded):
    client = Client(raise_request_exception=False)
    client.force_login(make_staff_user("viewer", "view_snapshot"))
    before = table()
    for name in ("discard", "cancel", "resume", "migrate"):
        assert client.post(action("no-such-run", name), {"post": "yes"}).status_code in (302, 403)
        assert client.post(action(FAILED, name), {"post": "yes"}).status_code == 403
    assert table() == before


# --- the REST API: the same bad inputs, as requests -----------------------------------------

REST = "/api/warlock/"
#: name -> (method, path, JSON body or raw text, status, code, fragment of the message)
REST_CASES: dict[str, tuple[str, str, Any, int, str, str | None]] = {
    "start-unknown-flow": ("post", "runs/", {"flow": "nope"}, 400, "UNKNOWN_FLOW", "nope"),
    "start-flow-not-text": ("post", "runs/", {"flow": ["corpus"]}, 400, "INVALID", "flow"),
    "start-run-id-huge": (
        "post",
        "runs/",
        {"flow": FLOW, "run_id": HUGE_ID},
        400,
        "INVALID",
        "run_id",
    ),
    "start-existing-run-other-input": (
        "post",
        "runs/",
        {"flow": FLOW, "run_id": DONE, "input": {"other": 1}},
        409,
        "RUN_EXISTS",
        DONE,
    ),
    "start-body-not-json": ("post", "runs/", "{flow:", 400, "PARSE_ERROR", None),
    "start-body-a-list": ("post", "runs/", "[]", 400, "INVALID", None),
    "start-unknown-key": ("post", "runs/", {"flow": FLOW, "imput": {}}, 400, "INVALID", "imput"),
    "resume-unknown-run": ("post", "runs/no-such-run/resume/", {}, 404, "UNKNOWN_RUN", None),
    "resume-completed": ("post", f"runs/{DONE}/resume/", {}, 409, "RUN_COMPLETED", DONE),
    "resume-live-lease": ("post", f"runs/{LIVE}/resume/", {}, 409, "LEASE_HELD", OTHER_HOLDER),
    "resume-force-not-bool": (
        "post",
        f"runs/{FAILED}/resume/",
        {"force": "no"},
        400,
        "INVALID",
        "force",
    ),
    "discard-live-lease": ("delete", f"runs/{LIVE}/", None, 409, "LEASE_HELD", OTHER_HOLDER),
    "cancel-finished": ("post", f"runs/{DONE}/cancel/", {}, 409, "RUN_NOT_RUNNING", DONE),
    "cancel-reason-not-text": (
        "post",
        f"runs/{LIVE}/cancel/",
        {"reason": {}},
        400,
        "INVALID",
        "reason",
    ),
    "migrate-unknown-target": (
        "post",
        f"runs/{FAILED}/migrate/",
        {"rename": {"a": "zz"}},
        400,
        "MIGRATION_INVALID",
        "zz",
    ),
    "migrate-live-lease": ("post", f"runs/{LIVE}/migrate/", {}, 409, "LEASE_HELD", OTHER_HOLDER),
    "run-id-control-characters": (
        "get",
        f"runs/{quote(chr(27) + '[2J')}/",
        None,
        404,
        "UNKNOWN_RUN",
        None,
    ),
    "run-id-newline": ("delete", "runs/a%0Ab/", None, 404, "UNKNOWN_RUN", None),
    "filter-status-garbage": ("get", "runs/?status=nope", None, 400, "INVALID", "status"),
    "filter-date-garbage": (
        "get",
        "runs/?saved_after=garbage",
        None,
        400,
        "INVALID",
        "saved_after",
    ),
    "filter-flow-nul": ("get", "runs/?flow=a%00b", None, 400, "INVALID", "flow"),
    "page-size-garbage": ("get", "runs/?page_size=-3", None, 400, "INVALID", "page_size"),
    "page-garbage": ("get", "runs/?page=zz", None, 404, "NOT_FOUND", None),
    "unknown-route": ("get", "nothing/here/", None, 404, "NOT_FOUND", None),
    "method-not-allowed": ("put", "runs/", None, 405, "METHOD_NOT_ALLOWED", "PUT"),
}


@pytest.mark.parametrize("case", list(REST_CASES), ids=list(REST_CASES))
def test_rest_api_refuses_bad_input_in_one_line_changing_nothing(seeded, case):
    method, path, body, status, code, fragment = REST_CASES[case]
    from django.contrib.auth.models import User

    client = Client(raise_request_exception=False)
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    before = table()
    url = REST + path
    if body is None:
        response = getattr(client, method)(url)
    else:
        data = body if isinstance(body, str) else json.dumps(body)
        response = getattr(client, method)(url, data, content_type="application/json")
    assert response.status_code == status, response.content
    error = response.json()
    assert error["code"] == code, error
    one_line(error["message"])
    if fragment is not None:
        assert fragment in error["message"], error["message"]
    assert table() == before
