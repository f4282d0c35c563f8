"""The orchestrator's commands: ``execute_turn``, ``resume_turn``, ``list_sessions``,
``discard_session``, and what the run commands do with a turn's snapshot (``resume_run``,
``drain_runs``, ``execute_run``, ``cancel_run``, ``discard_run``).

``call_command`` under pytest-django with the orchestrators of ``tests/turns_app`` registered,
and real ``manage.py`` children (``tests.workers.settings``, which installs that app) on a
fresh project database (``turn_project``) for the exit codes, the one-line errors and signals.
"""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Iterator
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

import warlock_ai as ai
from tests.django.project import (
    REPO_ROOT,
    assert_refused,
    describe,
    manage,
    manage_args,
    project_env,
    query,
    snapshot_row,
    stored_turns,
    turn_calls,
)
from tests.turns_app import flows as turn_flows
from warlock_ai.core.orchestrator import TurnSnapshot
from warlock_ai.core.runs.interrupts import Interrupt
from warlock_ai.management.base import Reported
from warlock_ai.models import Checkpoint, Snapshot
from warlock_ai.registry import registry

COUNTER, STEPS = "turn-counter", "turn-steps"
WAIT = 60  # seconds: fail, do not hang, when a child never gets somewhere


# --- in this process ------------------------------------------------------------------------


@pytest.fixture
def turns(transactional_db, tmp_path, monkeypatch) -> Iterator[Path]:
    """The orchestrators of tests/turns_app registered; their call log in the yielded dir."""
    monkeypatch.setenv("WARLOCK_TEST_TURN_DIR", str(tmp_path))
    found = registry.register_module(turn_flows)
    try:
        yield tmp_path
    finally:
        for definition in found:
            registry.unregister(definition.kind, definition.name)


def run(*args: Any, **options: Any) -> tuple[str, str]:
    """``call_command(*args)``; returns (stdout, stderr)."""
    out, err = StringIO(), StringIO()
    call_command(*args, stdout=out, stderr=err, **options)
    return out.getvalue(), err.getvalue()


def turn_json(*args: Any, **options: Any) -> dict[str, Any]:
    out, _ = run("execute_turn", *args, "--json", **options)
    return json.loads(out)


def rows(name: str, session_id: str) -> list[Checkpoint]:
    return list(Checkpoint.objects.for_session(name, session_id).order_by("turn_index"))


def interrupt_turn(session_id: str, input: Any = "second") -> str:
    """Turn 0 of ``session_id`` of turn-steps settled, turn 1 stopped by a SIGTERM after its
    first iteration (what a command leaves when it is signalled): returns turn 1's run id."""
    orch = registry.get("orchestrator", STEPS)
    assert orch.execute("first", session_id=session_id).error is None
    token = ai.CancelToken()

    def stop(event: dict[str, Any]) -> None:
        if event["iteration"] == 0:
            token.cancel(Interrupt("SIGTERM"))

    result = orch.execute(
        input, session_id=session_id, cancel=token, on={"supervisor.iteration.completed": stop}
    )
    assert result.report.status == "running", result.error
    return result.run_id


def test_execute_turn_runs_turns_and_prints_one_line_each(turns):
    out, err = run("execute_turn", COUNTER, "--session", "s1", "--input", '"hello"')
    assert out.splitlines()[-1].startswith("turn 0 of session s1: awaiting-input in ")
    assert "  turn 0   routed to count" in out.splitlines()
    assert err == ""
    out, _ = run("execute_turn", COUNTER, "--session", "s1", "--input", '{"n": 2}', verbosity=0)
    assert out.splitlines() == [out.splitlines()[0]]
    assert out.startswith("turn 1 of session s1: awaiting-input")
    assert [r.turn_index for r in rows(COUNTER, "s1")] == [0, 1]
    assert rows(COUNTER, "s1")[-1].state == {"count": 2, "inputs": ["hello", {"n": 2}]}


def test_execute_turn_json_is_one_document_with_the_turn(turns):
    document = turn_json(COUNTER, "--session", "s1", "--input", '"hello"')
    assert document["session_id"] == "s1" and document["turn_index"] == 0
    assert document["status"] == "awaiting-input" and document["exit_code"] == 0
    assert document["run_id"] == "s1.unversioned.0" and document["kind"] == "orchestrator"
    assert document["data"] == {"count": 1, "inputs": ["hello"]}
    assert document["error"] is None
    assert document["checkpointed"] is True and document["persisted"] is True
    assert [item["intents"] for item in document["iterations"]] == [["count"]]


def test_execute_turn_reads_input_history_and_state_from_files_and_stdin(turns, tmp_path):
    (tmp_path / "input.json").write_text('{"ask": "refund"}', encoding="utf-8")
    (tmp_path / "history.json").write_text('[{"role": "user", "content": "hi"}]', "utf-8")
    document = turn_json(
        COUNTER,
        "--session",
        "files",
        "--input-file",
        str(tmp_path / "input.json"),
        "--history-file",
        str(tmp_path / "history.json"),
        "--state",
        '{"count": 40}',
    )
    assert document["data"] == {"count": 41, "inputs": [{"ask": "refund"}]}
    document = turn_json(COUNTER, "--session", "files", "--input", "-", stdin=StringIO('"piped"'))
    assert document["data"]["inputs"][-1] == "piped" and document["turn_index"] == 1


def test_a_failed_turn_exits_1_and_appends_nothing(turns):
    run("execute_turn", COUNTER, "--session", "s1", "--input", '"one"')
    out, err = StringIO(), StringIO()
    with pytest.raises(Reported) as raised:
        call_command(
            "execute_turn", COUNTER, "--session", "s1", "--input", '{"fail": true}', "--json",
            stdout=out, stderr=err,
        )  # fmt: skip
    assert raised.value.returncode == 1
    document = json.loads(out.getvalue())
    assert document["status"] == "failed" and document["exit_code"] == 1
    assert document["checkpointed"] is False and document["turn_index"] == 1
    assert "the input asked this turn to fail" in document["error"]["message"]
    assert [r.turn_index for r in rows(COUNTER, "s1")] == [0]


def test_a_drifted_session_is_refused_without_force(turns):
    run("execute_turn", COUNTER, "--session", "s1", "--input", '"one"')
    changed = ai.orchestrator(
        name=COUNTER,
        intents={**turn_flows.counter_intents, "extra": ai.intent(lambda c: {}, description="x")},
        route=lambda ctx: "count",
    )
    registry.register(changed, replace=True)
    with pytest.raises(CommandError) as raised:
        run("execute_turn", COUNTER, "--session", "s1", "--input", '"two"')
    message = str(raised.value)
    assert "saved by another version" in message and "--force" in message
    assert "discard_session turn-counter s1" in message
    assert [r.turn_index for r in rows(COUNTER, "s1")] == [0]
    document = turn_json(COUNTER, "--session", "s1", "--input", '"two"', "--force")
    assert document["turn_index"] == 1 and document["signature"] == changed.signature


def test_a_busy_session_is_one_line(turns, monkeypatch):
    orch = registry.get("orchestrator", COUNTER)
    monkeypatch.setattr(orch, "lock_timeout", 0.2)
    lock = orch.lock_for(orch.checkpoints)
    held = lock.acquire(COUNTER, "busy", timeout=0)
    try:
        with pytest.raises(CommandError) as raised:
            run("execute_turn", COUNTER, "--session", "busy", "--input", '"x"')
    finally:
        lock.let_go(held)
    assert "is busy: another turn held its lock for the whole 0.2 s wait" in str(raised.value)
    assert rows(COUNTER, "busy") == []


def test_an_interrupted_turn_refuses_a_new_input_until_resumed_or_discarded(turns):
    run_id = interrupt_turn("s1")
    with pytest.raises(CommandError) as raised:
        run("execute_turn", STEPS, "--session", "s1", "--input", '"new"')
    message = str(raised.value)
    assert f"interrupted turn 1 (run {run_id})" in message
    assert "python manage.py resume_turn turn-steps --session s1" in message
    assert "--discard-interrupted" in message
    document = turn_json(STEPS, "--session", "s1", "--input", '"new"', "--discard-interrupted")
    assert document["turn_index"] == 1 and document["data"]["last_input"] == "new"


def test_resume_turn_finishes_the_interrupted_turn(turns):
    run_id = interrupt_turn("s1")
    out, _err = run("resume_turn", STEPS, "--session", "s1")
    lines = out.splitlines()
    assert lines[0].startswith(f"finishing turn 1 of session s1 (turn-steps, run {run_id}; ")
    assert "iterations settled: 1" in lines[0]
    assert "  iteration 0 started" not in lines  # settled before the interrupt: not run again
    assert "  iteration 1 started" in lines
    assert lines[-1].startswith("turn 1 of session s1: awaiting-input")
    assert [r.turn_index for r in rows(STEPS, "s1")] == [0, 1]
    assert rows(STEPS, "s1")[-1].state == {"steps": 6, "last_input": "second"}
    assert not Snapshot.objects.filter(run_id=run_id).exists()
    document = json.loads(run("resume_turn", STEPS, "--session", "s1", "--json")[0])
    assert document == {
        "resumed": False,
        "session_id": "s1",
        "orchestrator": STEPS,
        "latest_turn": 1,
        "message": "nothing to resume: session s1 of turn-steps has no interrupted turn; "
        "it is at turn 1",
    }


def test_resume_turn_json_of_a_resumed_turn(turns):
    interrupt_turn("s1")
    document = json.loads(run("resume_turn", STEPS, "--session", "s1", "--json")[0])
    assert document["resumed"] is True and document["turn_index"] == 1
    assert document["status"] == "awaiting-input" and document["checkpointed"] is True


def test_resume_turn_of_a_non_iterating_orchestrator_has_nothing_to_do(turns):
    out, _ = run("resume_turn", COUNTER, "--session", "nobody")
    assert out.strip() == (
        "nothing to resume: session nobody of turn-counter has no interrupted turn; it is "
        "with no turn yet (turn-counter does not iterate, so its turns are never left half-done)"
    )


def test_list_sessions_shows_latest_turn_route_and_the_interrupted_turn(turns):
    run("execute_turn", COUNTER, "--session", "alice", "--input", '"a"')
    run("execute_turn", COUNTER, "--session", "alice", "--input", '"b"')
    run("execute_turn", COUNTER, "--session", "bob", "--input", '"c"')
    interrupt_turn("carol")
    out, _ = run("list_sessions")
    lines = out.splitlines()
    assert lines[0].split() == [
        "ORCHESTRATOR", "SESSION", "LATEST", "TURN", "TURNS", "LAST", "ROUTE", "SAVED", "AT",
        "NEXT", "TURN",
    ]  # fmt: skip
    assert [line.split()[:5] for line in lines[1:4]] == [
        ["turn-counter", "alice", "1", "2", "count"],
        ["turn-counter", "bob", "0", "1", "count"],
        ["turn-steps", "carol", "0", "1", "step"],
    ]
    assert lines[3].endswith("turn 1 interrupted")
    assert lines[-1] == "3 sessions"
    document = json.loads(run("list_sessions", STEPS, "--json")[0])
    assert len(document) == 1
    (carol,) = document
    assert carol["session_id"] == "carol" and carol["latest_turn"] == 0
    assert carol["turn_count"] == 1 and carol["last_route"] == "step"
    assert carol["interrupted_turn"]["run_id"] == "carol.unversioned.1"
    assert carol["interrupted_turn"]["turn_index"] == 1
    assert carol["interrupted_turn"]["iterations_settled"] == 1
    assert carol["interrupted_turn"]["in_progress"] is False
    assert [
        s["session_id"] for s in json.loads(run("list_sessions", "--prefix", "a", "--json")[0])
    ] == ["alice"]
    assert run("list_sessions", COUNTER, "--prefix", "zz")[0].strip() == "no sessions match"


def test_list_sessions_lists_a_first_turn_that_was_interrupted(turns):
    orch = registry.get("orchestrator", STEPS)
    token = ai.CancelToken()
    on = {"supervisor.iteration.completed": lambda e: token.cancel(Interrupt("SIGINT"))}
    assert orch.execute("first", session_id="new", cancel=token, on=on).report.status == "running"
    (session,) = json.loads(run("list_sessions", STEPS, "--json")[0])
    assert session["session_id"] == "new" and session["latest_turn"] is None
    assert session["turn_count"] == 0 and session["interrupted_turn"]["turn_index"] == 0


def test_list_sessions_reads_a_redis_checkpoint_store(turns, redis_url):
    import uuid

    store = ai.checkpoint.redis(url=redis_url, prefix=f"turn-test-{uuid.uuid4().hex[:8]}:")
    orch = ai.orchestrator(
        name="redis-counter",
        intents={"count": ai.intent(turn_flows.count, description="count")},
        route=lambda ctx: "count",
        checkpoint_store=store,
    )
    registry.register(orch)
    try:
        run("execute_turn", "redis-counter", "--session", "r1", "--input", '"x"')
        run("execute_turn", "redis-counter", "--session", "r1", "--input", '"y"')
        (session,) = json.loads(run("list_sessions", "redis-counter", "--json")[0])
        assert (session["session_id"], session["latest_turn"], session["turn_count"]) == (
            "r1", 1, 2,
        )  # fmt: skip
        assert rows("redis-counter", "r1") == []  # nothing went to the database
        run("discard_session", "redis-counter", "r1", "--no-input")
        assert store.load("redis-counter", "r1") is None
    finally:
        registry.unregister("orchestrator", "redis-counter")
        store.close()


def test_discard_session_removes_rows_and_turn_snapshots(turns):
    run_id = interrupt_turn("s1")
    out, _ = run("discard_session", STEPS, "s1", interactive=False)
    assert (
        out.strip() == "discarded session s1 of turn-steps: 2 stored row(s) and snapshot(s) removed"
    )
    assert rows(STEPS, "s1") == [] and not Snapshot.objects.filter(run_id=run_id).exists()
    with pytest.raises(CommandError, match='orchestrator "turn-steps" has no session "s1"'):
        run("discard_session", STEPS, "s1", "--no-input")


def test_discard_session_asks_first(turns):
    run("execute_turn", COUNTER, "--session", "s1", "--input", '"a"')
    with pytest.raises(CommandError, match="stdin is not a terminal; pass --no-input"):
        run("discard_session", COUNTER, "s1", stdin=StringIO("y\n"))

    class Terminal(StringIO):
        def isatty(self) -> bool:
            return True

    with pytest.raises(CommandError, match="not confirmed: nothing deleted"):
        run("discard_session", COUNTER, "s1", stdin=Terminal("n\n"))
    assert len(rows(COUNTER, "s1")) == 1
    out, err = run("discard_session", COUNTER, "s1", "--json", stdin=Terminal("y\n"))
    assert "Delete session s1 of turn-counter (1 turn(s)) for good? [y/N]" in err
    assert json.loads(out) == {"orchestrator": COUNTER, "session_id": "s1", "removed": 1}
    assert rows(COUNTER, "s1") == []


BAD_INPUT = {
    "unknown-orchestrator": (
        ["execute_turn", "nope", "--session", "s", "--input", "1"],
        'unknown orchestrator "nope"; registered orchestrators: support-chat, turn-counter, '
        "turn-steps",
    ),
    "missing-session": (["execute_turn", COUNTER, "--input", "1"], "--session"),
    "missing-input": (["execute_turn", COUNTER, "--session", "s"], "--input"),
    "bad-json": (["execute_turn", COUNTER, "--session", "s", "--input", "{oops"], "not valid JSON"),
    "control-character": (
        ["execute_turn", COUNTER, "--session", "a\nb", "--input", "1"],
        "unprintable character (U+000A at position 1)",
    ),
    "history-not-a-list": (
        ["execute_turn", COUNTER, "--session", "s", "--input", "1", "--history", "{}"],
        "--history must be a JSON array",
    ),
    "state-not-an-object": (
        ["execute_turn", COUNTER, "--session", "s", "--input", "1", "--state", "[]"],
        "--state must be a JSON object",
    ),
    "turn-key-without-enqueue": (
        ["execute_turn", COUNTER, "--session", "s", "--input", "1", "--turn-key", "k"],
        "--turn-key only applies with --enqueue",
    ),
    "resume-unknown-orchestrator": (
        ["resume_turn", "nope", "--session", "s"],
        "registered orchestrators: support-chat, turn-counter, turn-steps",
    ),
    "list-unknown-orchestrator": (["list_sessions", "nope"], "registered orchestrators"),
    "discard-unknown-orchestrator": (
        ["discard_session", "nope", "s", "--no-input"],
        "registered orchestrators",
    ),
    "execute-run-of-an-orchestrator": (
        ["execute_run", COUNTER, "--input", "1"],
        'orchestrator "turn-counter" does not start runs by name: a turn of a session is '
        "started with execute_turn",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_is_a_command_error_and_changes_nothing(turns, case):
    args, fragment = BAD_INPUT[case]
    with pytest.raises(CommandError) as raised:
        run(*args)
    assert fragment in str(raised.value)
    assert not Checkpoint.objects.exists() and not Snapshot.objects.exists()


# --- the run commands on a turn's snapshot ---------------------------------------------------


def test_resume_run_of_a_turn_finishes_it_as_the_sessions_next_turn(turns):
    run_id = interrupt_turn("s1")
    out, _ = run("resume_run", run_id)
    lines = out.splitlines()
    assert lines[0].startswith(f"resuming orchestrator turn-steps run {run_id} (was running; ")
    assert "session s1, turn 1; iterations settled: 1" in lines[0]
    assert lines[-1].startswith(f"run {run_id}: awaiting-input in ")
    assert [r.turn_index for r in rows(STEPS, "s1")] == [0, 1]


def test_resume_run_of_a_turn_checkpointed_before_its_snapshot_went(turns):
    """A process that died between appending the row and removing the snapshot."""
    run_id = interrupt_turn("s1")
    leftover = Snapshot.objects.get(run_id=run_id)
    call_command("resume_turn", STEPS, "--session", "s1", stdout=StringIO())
    leftover.save(force_insert=True)  # as the dead process left it
    out, _ = run("resume_run", run_id, "--json")
    assert json.loads(out)["resumed"] is False
    assert not Snapshot.objects.filter(run_id=run_id).exists()  # the leftover is removed
    assert [r.turn_index for r in rows(STEPS, "s1")] == [0, 1]


def test_drain_runs_finishes_an_interrupted_turn_and_names_session_and_turn(turns):
    run_id = interrupt_turn("s1")
    out, _ = run("drain_runs")
    assert f"run {run_id} (session_id=s1, turn_index=1): completed: awaiting-input" in out
    assert out.splitlines()[-1] == "1 stale run: 1 completed"
    assert [r.turn_index for r in rows(STEPS, "s1")] == [0, 1]
    run_id = interrupt_turn("s2")
    (item,) = json.loads(run("drain_runs", "--json")[0])
    assert item == {
        "run_id": run_id,
        "outcome": "completed: awaiting-input",
        "session_id": "s2",
        "turn_index": 1,
        "ok": True,
    }


def test_cancel_and_discard_run_act_on_a_turns_snapshot(turns):
    run_id = interrupt_turn("s1")
    out, _ = run("cancel_run", run_id)
    assert out.strip() == f'run "{run_id}" cancelled (no live worker held it)'
    assert Snapshot.objects.get(run_id=run_id).status == "cancelled"
    document = turn_json(STEPS, "--session", "s1", "--input", '"after"')
    assert document["turn_index"] == 1  # a cancelled turn is replaced by the next one
    run_id = interrupt_turn("s2")
    run("discard_run", run_id, "--no-input")
    assert turn_json(STEPS, "--session", "s2", "--input", '"after"')["turn_index"] == 1


def test_the_admins_operations_resume_a_turn_and_refuse_to_restart_it(turns):
    from warlock_ai import operations
    from warlock_ai.core.errors import NotStartableError

    run_id = interrupt_turn("s1")
    with pytest.raises(NotStartableError, match="execute_turn"):
        operations.restart_run(run_id, inline=True, enqueue=False)
    command = operations.start_resume(run_id, enqueue=False)
    assert command.command == f"python manage.py resume_run {run_id}"
    outcome = operations.start_resume(run_id, inline=True, enqueue=False)
    assert outcome.ok and outcome.message.startswith(f'run "{run_id}" awaiting-input in ')
    assert [r.turn_index for r in rows(STEPS, "s1")] == [0, 1]
    assert operations.resume_turn_command(STEPS, "-odd") == (
        "python manage.py resume_turn turn-steps --session=-odd"
    )


def test_list_runs_shows_a_turn_as_an_orchestrator_run(turns):
    run_id = interrupt_turn("s1")
    (row,) = json.loads(run("list_runs", "--json")[0])
    assert (row["run_id"], row["kind"], row["flow"], row["status"]) == (
        run_id, "orchestrator", STEPS, "running",
    )  # fmt: skip
    assert row["drifted"] is False
    assert isinstance(Snapshot.objects.get(run_id=run_id).to_snapshot(), TurnSnapshot)


def test_a_turn_whose_snapshot_writes_failed_exits_3(turns, throwaway_redis):
    """A turn that did not settle, and whose snapshot writes failed, is not durable."""
    from tests.services import _stop_process
    from warlock_ai.stores.redis import RedisSnapshotStore

    url, server = throwaway_redis
    store = RedisSnapshotStore(url=url, prefix="turn-test:", write_retry_seconds=0.3)

    def stop_then_fail(ctx: Any) -> Any:
        if ctx.iteration == 1:
            _stop_process(server)
        if ctx.iteration == 2:
            raise RuntimeError("the route broke")
        return "step"

    orch = ai.orchestrator(
        name="turn-redis-stops",
        intents={"step": ai.intent(lambda ctx: {}, description="work")},
        route=stop_then_fail,
        iterate=True,
        snapshot_store=store,
    )
    registry.register(orch)
    out = StringIO()
    try:
        with pytest.raises(Reported) as raised:
            call_command(
                "execute_turn", orch.name, "--session", "s1", "--input", "1", "--json",
                stdout=out, stderr=StringIO(),
            )  # fmt: skip
    finally:
        registry.unregister("orchestrator", orch.name)
        store.close()
    assert raised.value.returncode == 3
    document = json.loads(out.getvalue())
    assert document["status"] == "failed" and document["persisted"] is False
    assert document["checkpointed"] is False and document["exit_code"] == 3
    assert rows(orch.name, "s1") == []


# --- real manage.py children ------------------------------------------------------------------


@pytest.fixture
def project(turn_project: dict[str, Any]) -> dict[str, Any]:
    return turn_project


def start(db: dict[str, Any], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        manage_args(*args),
        cwd=REPO_ROOT,
        env=project_env(db),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_file(path: Path, process: subprocess.Popen[str]) -> None:
    import time

    deadline = time.monotonic() + WAIT
    while not path.exists():
        assert process.poll() is None, f"the child exited {process.returncode} first"
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def held_then(db: dict[str, Any], name: str, session_id: str, input: Any, run_id: str) -> Any:
    """Start ``execute_turn`` of ``input`` (which holds) and return it once it holds."""
    process = start(db, "execute_turn", name, "--session", session_id, "--input", json.dumps(input))
    wait_for_file(db["turns"] / f"held-{run_id}", process)
    return process


def test_exit_codes_of_real_commands(project):
    ok = manage(project, "execute_turn", COUNTER, "--session", "s1", "--input", '"one"')
    assert ok.returncode == 0 and "turn 0 of session s1: awaiting-input" in ok.stdout, describe(ok)
    failed = manage(project, "execute_turn", COUNTER, "--session", "s1", "--input", '{"fail": 1}')
    assert failed.returncode == 1, describe(failed)
    assert failed.stdout.splitlines()[-1].startswith("turn 1 of session s1: failed in ")
    assert_refused(failed, "the input asked this turn to fail")
    drifted = manage(
        project, "execute_turn", COUNTER, "--session", "s1", "--input", '"two"',
        WARLOCK_TEST_TURN_EXTRA="1",
    )  # fmt: skip
    assert_refused(drifted, "saved by another version", "--force")
    nothing = manage(project, "resume_turn", STEPS, "--session", "s1")
    assert nothing.returncode == 0, describe(nothing)
    assert nothing.stdout.startswith("nothing to resume: session s1 of turn-steps")
    listed = manage(project, "list_sessions", "--json")
    assert [s["session_id"] for s in json.loads(listed.stdout)] == ["s1"], describe(listed)
    no_terminal = manage(project, "discard_session", COUNTER, "s1")
    assert_refused(no_terminal, "stdin is not a terminal; pass --no-input")
    assert [r["turn_index"] for r in stored_turns(project, COUNTER, "s1")] == [0]
    help_text = manage(project, "execute_turn", "--help").stdout
    assert "Exit codes: 0 the turn ended cleanly" in " ".join(help_text.split())


REFUSED = {
    "unknown-orchestrator": (
        ["execute_turn", "nope", "--session", "s", "--input", "1"],
        ["registered orchestrators: support-chat, turn-counter, turn-steps"],
    ),
    "missing-session": (
        ["execute_turn", COUNTER, "--input", "1"],
        ["the following arguments are required: --session"],
    ),
    "bad-json": (
        ["execute_turn", COUNTER, "--session", "s", "--input", "{oops"],
        ["--input is not valid JSON"],
    ),
    "control-character": (
        ["execute_turn", COUNTER, "--session", "a\x1b[2Jb", "--input", "1"],
        ["unprintable character (U+001B at position 1)"],
    ),
    "both-inputs": (
        ["execute_turn", COUNTER, "--session", "s", "--input", "1", "--input-file", "x.json"],
        ["argument --input-file: not allowed with argument --input"],
    ),
    "missing-input-file": (
        ["execute_turn", COUNTER, "--session", "s", "--input-file", "/nonexistent.json"],
        ["--input-file /nonexistent.json: no such file"],
    ),
    "resume-missing-session": (["resume_turn", STEPS], ["--session"]),
    "discard-unknown-session": (
        ["discard_session", STEPS, "nobody", "--no-input"],
        ['orchestrator "turn-steps" has no session "nobody"'],
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_refused_commands_are_one_line_and_exit_1(project, case):
    args, fragments = REFUSED[case]
    result = manage(project, *args)
    line = assert_refused(result, *fragments)
    assert "\x1b" not in line
    assert query(project, "SELECT COUNT(*) AS n FROM warlock_ai_checkpoint")[0]["n"] == 0


def test_json_refusal_keeps_the_error_code(project):
    result = manage(project, "execute_turn", "nope", "--session", "s", "--input", "1", "--json")
    assert result.returncode == 1 and result.stderr == "", describe(result)
    assert json.loads(result.stdout)["error"]["code"] == "UNKNOWN_FLOW"


@pytest.mark.parametrize(("sent", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_the_turn_at_a_check_point_and_names_resume_turn(project, sent, code):
    process = held_then(project, STEPS, "s1", {"hold": 1}, "s1.unversioned.0")
    process.send_signal(sent)
    out, err = process.communicate(timeout=WAIT)
    assert process.returncode == code, f"{out}\n{err}"
    (line,) = [line for line in err.splitlines() if line.strip()]
    assert line.startswith(f"interrupted by {signal.Signals(sent).name}: run s1.unversioned.0 ")
    assert line.endswith("resume it with: python manage.py resume_turn turn-steps --session s1")
    row = snapshot_row(project, "s1.unversioned.0")
    assert row["status"] == "running" and row["lease_owner"] is None
    resumed = manage(project, "resume_turn", STEPS, "--session", "s1")
    assert resumed.returncode == 0, describe(resumed)
    assert turn_calls(project["turns"], "s1.unversioned.0") == [
        0,
        1,
        2,
    ]  # 1 returned when asked to stop
    assert stored_turns(project, STEPS, "s1")[0]["state"]["steps"] == 3


def test_a_turn_a_live_process_is_running_is_listed_and_not_resumed(project):
    run_id = "live.unversioned.0"
    process = held_then(project, STEPS, "live", {"hold": 1}, run_id)
    try:
        (session,) = json.loads(manage(project, "list_sessions", "--json").stdout)
        assert session["interrupted_turn"]["in_progress"] is True
        assert session["interrupted_turn"]["lease_owner"].split(":")[1] == str(process.pid)
        refused = manage(project, "resume_turn", STEPS, "--session", "live")
        assert_refused(refused, f'cannot resume run "{run_id}": it is leased by worker')
    finally:
        (project["turns"] / f"release-{run_id}").touch()
        out, err = process.communicate(timeout=WAIT)
    assert process.returncode == 0, out + err
    assert turn_calls(project["turns"], run_id) == [0, 1, 2]


# --- crashes: SIGKILL --------------------------------------------------------------------------


def kill_mid_iteration(db: dict[str, Any], session_id: str) -> str:
    """Turn 0 of turn-steps settled; turn 1 SIGKILLed while its iteration 1 runs."""
    first = manage(db, "execute_turn", STEPS, "--session", session_id, "--input", '"first"')
    assert first.returncode == 0, describe(first)
    run_id = f"{session_id}.unversioned.1"
    process = held_then(db, STEPS, session_id, {"hold": 1}, run_id)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=WAIT)
    row = snapshot_row(db, run_id)
    assert row is not None and row["status"] == "running" and row["kind"] == "orchestrator"
    assert len(row["steps"]) == 1  # iteration 0 settled, 1 was running
    assert [r["turn_index"] for r in stored_turns(db, STEPS, session_id)] == [0]
    return run_id


def assert_finished_once(db: dict[str, Any], session_id: str, run_id: str) -> None:
    turns_stored = stored_turns(db, STEPS, session_id)
    assert [r["turn_index"] for r in turns_stored] == [0, 1]
    assert turns_stored[1]["state"] == {"steps": 6, "last_input": {"hold": 1}}
    assert turn_calls(db["turns"], run_id) == [0, 1, 1, 2]  # only the killed iteration ran twice
    assert snapshot_row(db, run_id) is None
    after = manage(db, "execute_turn", STEPS, "--session", session_id, "--input", '"next"')
    assert after.returncode == 0 and "turn 2 of session" in after.stdout, describe(after)


@pytest.mark.crash
@pytest.mark.parametrize("fresh_project_db", ["sqlite", "postgres"], indirect=True)
def test_a_turn_killed_mid_iteration_is_finished_by_drain_runs(project):
    run_id = kill_mid_iteration(project, "k1")
    listed = json.loads(manage(project, "list_sessions", STEPS, "--json").stdout)
    assert listed[0]["interrupted_turn"]["run_id"] == run_id
    refused = manage(project, "execute_turn", STEPS, "--session", "k1", "--input", '"new"')
    assert_refused(refused, "interrupted turn 1", "resume_turn turn-steps --session k1")
    drained = manage(project, "drain_runs", "--json")
    assert drained.returncode == 0, describe(drained)
    assert json.loads(drained.stdout) == [
        {
            "run_id": run_id,
            "outcome": "completed: awaiting-input",
            "session_id": "k1",
            "turn_index": 1,
            "ok": True,
        }
    ]
    assert_finished_once(project, "k1", run_id)


@pytest.mark.crash
def test_a_turn_killed_mid_iteration_is_finished_by_resume_turn(project):
    run_id = kill_mid_iteration(project, "k2")
    resumed = manage(project, "resume_turn", STEPS, "--session", "k2")
    assert resumed.returncode == 0, describe(resumed)
    assert resumed.stdout.splitlines()[0].startswith("finishing turn 1 of session k2 ")
    assert_finished_once(project, "k2", run_id)


@pytest.mark.crash
def test_a_non_iterating_turn_killed_mid_dispatch_leaves_the_session_at_its_previous_turn(
    project,
):
    first = manage(project, "execute_turn", COUNTER, "--session", "k3", "--input", '"first"')
    assert first.returncode == 0, describe(first)
    process = held_then(project, COUNTER, "k3", {"hold": 0}, "k3.unversioned.1")
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=WAIT)
    assert [r["turn_index"] for r in stored_turns(project, COUNTER, "k3")] == [0]
    assert query(project, "SELECT COUNT(*) AS n FROM warlock_ai_snapshot")[0]["n"] == 0
    nothing = manage(project, "resume_turn", COUNTER, "--session", "k3")
    assert nothing.returncode == 0 and nothing.stdout.startswith("nothing to resume")
    again = manage(project, "execute_turn", COUNTER, "--session", "k3", "--input", '"again"')
    assert again.returncode == 0 and "turn 1 of session k3" in again.stdout, describe(again)
    assert stored_turns(project, COUNTER, "k3")[1]["state"] == {
        "count": 2,
        "inputs": ["first", "again"],
    }
