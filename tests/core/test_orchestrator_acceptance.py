"""Orchestrator acceptance cases 49-64 of the reference (section 12), on the memory stores,
and what the port adds (no max-iterations trap, interrupted turns, failed appends)."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from typing import Any

import pytest

import warlock_ai as ai
from warlock_ai import END
from warlock_ai.core.errors import (
    CheckpointConflictError,
    InterruptedTurnError,
    OrchestratorConfigError,
    OrchestratorDriftError,
    OrchestratorFailedError,
    SessionBusyError,
    StoreError,
    StoreUnavailableError,
)
from warlock_ai.core.orchestrator import ProcessSessionLock
from warlock_ai.core.runs.cancel import CancelToken


def bump(ctx: Any) -> dict[str, Any]:
    return {"count": ctx.state.get("count", 0) + 1, "last_input": ctx.input}


def counter(store: Any = None, **options: Any) -> ai.Orchestrator:
    intents = options.pop(
        "intents",
        {"bump": ai.intent(bump, description="Increment the session counter", next=lambda c: END)},
    )
    return ai.orchestrator(
        name=options.pop("name", "counter"),
        intents=intents,
        route=options.pop("route", lambda ctx: "bump"),
        checkpoint_store=store if store is not None else ai.checkpoint.memory(),
        **options,
    )


# --- 49-53: turns, sessions, drift ----------------------------------------------------------


def test_49_first_turn_appends_turn_0_awaiting_input() -> None:
    store = ai.checkpoint.memory()
    orch = counter(store)
    result = orch.execute("one", session_id="s1")
    assert result.error is None
    assert result.turn_index == 0 and result.session_id == "s1"
    assert result.report.status == "awaiting-input"
    latest = store.load("counter", "s1")
    assert latest.turn_index == 0
    assert latest.signature == orch.signature == "5e218f74"
    assert result.report.run_id == "s1.unversioned.0"
    assert result.report.children[0].type == "supervisor"
    assert result.report.turns[0]["turn"] == 0
    assert result.report.checkpointed is True


def test_50_three_turns_continue_the_state_and_never_reseed() -> None:
    store = ai.checkpoint.memory()
    orch = counter(store, state={"count": 100})
    indexes = [orch.execute(x, session_id="s1").turn_index for x in ("one", "two", "three")]
    assert indexes == [0, 1, 2]
    latest = store.load("counter", "s1")
    assert latest.state == {"count": 103, "last_input": "three"}
    assert [r.turn_index for r in store.history("counter", "s1")] == [0, 1, 2]


def test_51_state_patch_on_the_first_turn() -> None:
    store = ai.checkpoint.memory()
    counter(store).execute("x", session_id="s1", state={"count": 41})
    assert store.load("counter", "s1").state["count"] == 42


def test_52_sessions_are_isolated() -> None:
    store = ai.checkpoint.memory()
    orch = counter(store)
    for sid in ("alice", "bob", "alice"):
        orch.execute("hi", session_id=sid)
    assert store.load("counter", "alice").state["count"] == 2
    assert store.load("counter", "bob").state["count"] == 1


def test_53_drift_raises_before_anything_runs_and_force_persists_the_new_signature() -> None:
    store = ai.checkpoint.memory()
    old = counter(store)
    old.execute("one", session_id="s1")
    calls: list[str] = []

    def extra(ctx: Any) -> dict[str, Any]:
        calls.append("extra")
        return {}

    intents = {
        "bump": ai.intent(bump, description="Increment the session counter", next=lambda c: END),
        "extra": ai.intent(extra, description="more"),
    }
    new = counter(store, intents=intents)
    with pytest.raises(OrchestratorDriftError) as info:
        new.execute("two", session_id="s1")
    error = info.value
    assert error.code == "ORCHESTRATOR_DRIFT"
    assert error.session_id == "s1"
    assert error.saved_signature == old.signature
    assert error.current_signature == new.signature != old.signature
    assert store.load("counter", "s1").turn_index == 0 and calls == []
    forced = new.execute("two", session_id="s1", force=True)
    assert forced.error is None and forced.turn_index == 1
    assert store.load("counter", "s1").signature == new.signature
    assert new.execute("hi", session_id="fresh").error is None  # a new session never drifts


# --- 54: the session lock -------------------------------------------------------------------


def test_54_a_held_session_lock_is_waited_for_then_the_turn_runs() -> None:
    store, lock = ai.checkpoint.memory(), ProcessSessionLock()
    waited: list[dict[str, Any]] = []
    orch = counter(store, session_lock=lock, on={"orchestrator.lock.waiting": waited.append})
    orch.execute("x", session_id="s1", state={"count": 4})
    held = lock.acquire("counter", "s1", timeout=0)
    releaser = threading.Timer(0.2, lock.let_go, (held,))
    releaser.start()
    start = time.monotonic()
    result = orch.execute("y", session_id="s1")
    took = time.monotonic() - start
    releaser.join()
    assert result.error is None and result.turn_index == 1
    assert store.load("counter", "s1").state["count"] == 6
    assert len(waited) == 1 and waited[0]["session_id"] == "s1"
    assert 0.15 < took < 5


def test_54_a_lock_held_for_the_whole_timeout_is_session_busy() -> None:
    store, lock = ai.checkpoint.memory(), ProcessSessionLock()
    orch = counter(store, session_lock=lock, lock_timeout=0.2)
    held = lock.acquire("counter", "s1", timeout=0)
    try:
        start = time.monotonic()
        with pytest.raises(SessionBusyError) as info:
            orch.execute("y", session_id="s1")
        assert time.monotonic() - start < 2
    finally:
        lock.let_go(held)
    assert info.value.session_id == "s1" and info.value.orchestrator_name == "counter"
    assert "busy" in info.value.message and "lock_timeout" in info.value.message
    assert store.load("counter", "s1") is None  # nothing ran
    assert orch.execute("z", session_id="s1").turn_index == 0  # free again


def test_turns_from_many_threads_land_as_consecutive_turns() -> None:
    store = ai.checkpoint.memory()
    orch = counter(store)
    inputs = [f"t{n}-{i}" for n in range(4) for i in range(10)]

    def send(chunk: list[str]) -> None:
        for text in chunk:
            assert orch.execute(text, session_id="s1").error is None

    threads = [threading.Thread(target=send, args=(inputs[n::4],)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    rows = store.history("counter", "s1")
    assert [r.turn_index for r in rows] == list(range(40))
    assert sorted(r.state["last_input"] for r in rows) == sorted(inputs)
    assert rows[-1].state["count"] == 40


def test_without_a_lock_a_second_append_of_one_turn_is_refused() -> None:
    store = ai.checkpoint.memory()
    gate = threading.Barrier(2)

    def slow(ctx: Any) -> dict[str, Any]:
        gate.wait(timeout=5)
        return bump(ctx)

    orch = counter(
        store,
        session_lock=False,
        intents={"bump": ai.intent(slow, description="d", next=lambda c: END)},
    )
    results: list[Any] = []
    threads = [
        threading.Thread(target=lambda: results.append(orch.execute("x", session_id="s")))
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    errors = [r.error for r in results if r.error is not None]
    assert len(errors) == 1 and isinstance(errors[0], CheckpointConflictError)
    assert [r.turn_index for r in store.history("counter", "s")] == [0]


# --- 55-58: iterate, cancel, resume ---------------------------------------------------------


def iterating(store: Any, snapshots: Any, **options: Any) -> ai.Orchestrator:
    def work(ctx: Any) -> dict[str, Any]:
        return {"steps": ctx.state.get("steps", 0) + 1}

    def route(ctx: Any) -> Any:
        return "work" if ctx.iteration < 2 else END

    return ai.orchestrator(
        name="iter",
        intents={"work": ai.intent(work, description="work")},
        route=options.pop("route", route),
        iterate=True,
        checkpoint_store=store,
        snapshot_store=snapshots,
        **options,
    )


def test_55_cancel_during_an_iteration_appends_nothing() -> None:
    store, snapshots = ai.checkpoint.memory(), ai.snapshot.memory()
    orch = iterating(store, snapshots)
    assert orch.execute("first", session_id="s1").error is None
    token = CancelToken()

    def route(ctx: Any) -> Any:
        if ctx.iteration == 1:
            token.cancel("user")
        return "work" if ctx.iteration < 2 else END

    cancelled_events: list[Any] = []
    orch2 = iterating(store, snapshots, route=route)
    result = orch2.execute(
        "second",
        session_id="s1",
        cancel=token,
        on={"orchestrator.turn.cancelled": cancelled_events.append},
    )
    assert result.error is not None and result.error.code == "SUPERVISOR_CANCELLED"
    assert result.report.status == "cancelled" and result.turn_index == 1
    latest = store.load("counter" if False else "iter", "s1")
    assert latest.turn_index == 0 and latest.state == {"steps": 2}
    assert len(cancelled_events) == 1


def test_56_resume_of_an_unknown_session_or_a_non_iterating_orchestrator_is_none() -> None:
    store, snapshots = ai.checkpoint.memory(), ai.snapshot.memory()
    assert iterating(store, snapshots).resume("nobody") is None
    orch = counter(store)
    orch.execute("x", session_id="s1")
    assert orch.resume("s1") is None


def interrupted_turn(store: Any, snapshots: Any) -> ai.Orchestrator:
    """Turn 0 settled; turn 1 stored mid-way, as a crash after its first iteration leaves it."""
    captured: list[Any] = []
    orch = iterating(store, snapshots)

    def grab(event: dict[str, Any]) -> None:
        if event["iteration"] == 1:  # emitted before iteration 1 is written: 0 is settled
            captured.append(snapshots.load(event["run_id"]))

    orch.execute("first", session_id="s1", on={"supervisor.iteration.completed": grab})
    snap = captured[0]
    assert snap.status == "running" and snap.iteration == 0
    assert snapshots.load("s1.unversioned.0") is None
    snapshots.save(dataclasses.replace(snap, run_id="s1.unversioned.1", input="second"))
    return orch


def test_57_resume_finishes_the_interrupted_turn_without_rerunning_settled_iterations() -> None:
    store, snapshots = ai.checkpoint.memory(), ai.snapshot.memory()
    orch = interrupted_turn(store, snapshots)
    ran: list[int] = []
    result = orch.resume(
        "s1", on={"supervisor.iteration.starting": lambda e: ran.append(e["iteration"])}
    )
    assert result is not None and result.error is None
    assert result.turn_index == 1 and result.report.status == "awaiting-input"
    assert ran == [1, 2]  # iteration 0 of the turn was settled before the crash
    latest = store.load("iter", "s1")
    assert latest.turn_index == 1
    assert snapshots.load("s1.unversioned.1") is None  # settled: the row is the record now
    assert orch.resume("s1") is None  # nothing left to finish


def test_execute_refuses_a_new_input_while_the_next_turn_is_interrupted() -> None:
    store, snapshots = ai.checkpoint.memory(), ai.snapshot.memory()
    orch = interrupted_turn(store, snapshots)
    with pytest.raises(InterruptedTurnError) as info:
        orch.execute("brand new", session_id="s1")
    assert "resume" in info.value.message and info.value.turn_index == 1
    assert info.value.run_id == "s1.unversioned.1"
    assert store.load("iter", "s1").turn_index == 0
    result = orch.execute("brand new", session_id="s1", discard_interrupted=True)
    assert result.error is None and result.turn_index == 1
    assert result.report.turns[0]["input"] == "brand new"


def test_58_resume_under_a_drifted_definition_raises() -> None:
    store, snapshots = ai.checkpoint.memory(), ai.snapshot.memory()
    interrupted_turn(store, snapshots)
    changed = iterating(store, snapshots, max_iterations=7)
    with pytest.raises(OrchestratorDriftError):
        changed.resume("s1")


def test_59_iterate_without_a_snapshot_store_is_a_config_error() -> None:
    with pytest.raises(OrchestratorConfigError) as info:
        iterating(ai.checkpoint.memory(), None)
    assert "snapshot store" in info.value.message
    ai.config(default_snapshot_store=ai.snapshot.memory())
    assert iterating(ai.checkpoint.memory(), None).iterate is True


class RecordingStore:
    """A memory checkpoint store that records prune calls."""

    def __init__(self) -> None:
        self.inner = ai.checkpoint.memory()
        self.prunes: list[tuple[str, str, int]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def prune(self, name: str, session_id: str, keep_from_turn: int) -> int:
        self.prunes.append((name, session_id, keep_from_turn))
        return self.inner.prune(name, session_id, keep_from_turn)


def test_60_keep_snapshots_prunes_with_one_meaning() -> None:
    recording = RecordingStore()
    orch = counter(recording, keep_snapshots=1)
    orch.execute("a", session_id="s1")
    assert recording.prunes == []
    orch.execute("b", session_id="s1")
    assert recording.prunes == [("counter", "s1", 1)]
    assert [r.turn_index for r in recording.history("counter", "s1")] == [1]
    keep_all = RecordingStore()
    orch = counter(keep_all, keep_snapshots="all")
    for text in "abc":
        orch.execute(text, session_id="s1")
    assert keep_all.prunes == []


def test_61_event_order_tiers_and_unbinding() -> None:
    seen: list[str] = []
    tiers: list[str] = []
    orch = counter(
        on={"orchestrator.turn.awaiting-input": lambda e: tiers.append("definition")},
    )
    orch.on("orchestrator.turn.awaiting-input", lambda e: tiers.append("instance"))
    names = sorted(n for n in orch.emitter.known if n.startswith("orchestrator."))
    per_call = {name: (lambda e: seen.append(e["event"])) for name in names}
    per_call["orchestrator.turn.awaiting-input"] = [
        lambda e: seen.append(e["event"]),
        lambda e: tiers.append("call"),
    ]
    orch.execute("x", session_id="s1", on=per_call)
    assert [
        s.removeprefix("orchestrator.") for s in seen if s != "orchestrator.memory.recalled"
    ] == [
        "turn.starting",
        "session.loaded",
        "drift.checked",
        "history.windowed",
        "turn.routed",
        "checkpoint.persisted",
        "turn.awaiting-input",
    ]
    assert tiers == ["definition", "instance", "call"]
    seen.clear()
    orch.execute("y", session_id="s1")
    assert seen == []  # per-call handlers were bound for that turn only


def test_62_compaction_is_carried_by_the_next_row_never_rewritten() -> None:
    store = ai.checkpoint.memory()
    compacted: list[Any] = []
    orch = counter(store, summarize={"after_turns": 0, "keep": 1, "on_compact": compacted.append})
    history = [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b"},
        {"role": "user", "content": "c"},
    ]
    result = orch.execute("x", session_id="s1", history=history)
    assert result.compaction is not None
    assert result.compaction.summary["role"] == "system"
    assert result.compaction.replaces_to_index == 1
    assert len(compacted) == 1
    assert store.load("counter", "s1").summarized_through == 1
    assert len(store.history("counter", "s1")) == 1  # one row, appended once
    later = counter(ai.checkpoint.memory(), summarize={"after_turns": 50})
    assert later.execute("x", session_id="s1", history=history).compaction is None


def test_62_compact_command() -> None:
    history = [{"role": "user", "content": str(i)} for i in range(3)]
    orch = counter(summarize={"keep": 1})
    assert orch.command("compact", session_id="s1", history=history).replaces_to_index == 1
    plain = counter().command("compact", session_id="s1", history=history)
    assert plain.summary["content"] == "Summary of 3 message(s)."
    assert (plain.replaces_from_index, plain.replaces_to_index) == (0, 2)
    with pytest.raises(OrchestratorFailedError):
        counter().command("explode", session_id="s1")


class ScopedMemory:
    """A small memory implementing the orchestrator's protocol (recall/remember, scopes)."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def remember(self, item: dict[str, Any]) -> None:
        self.items.append(item)

    def recall(self, query: str, *, k: int = 5, scope: str | None = None, **_: Any) -> list[Any]:
        return [i for i in reversed(self.items) if i.get("scope") == scope][:k]


def memory_orchestrator(memory: Any, **options: Any) -> tuple[ai.Orchestrator, list[Any]]:
    recalled: list[Any] = []

    def answer(ctx: Any) -> dict[str, Any]:
        recalled.append(list(ctx.context.get("memories", [])))
        return {"answer": f"noted {ctx.input}"}

    orch = ai.orchestrator(
        name="mem",
        intents={"answer": ai.intent(answer, description="d", next=lambda c: END)},
        route=lambda ctx: "answer",
        checkpoint_store=ai.checkpoint.memory(),
        memory={"store": memory, **options},
    )
    return orch, recalled


def test_63_memory_is_scoped_to_the_session_by_default() -> None:
    memory = ScopedMemory()
    orch, recalled = memory_orchestrator(memory)
    orch.execute("I like tea", session_id="session-a")
    orch.execute("hello", session_id="session-b")
    orch.execute("again", session_id="session-a")
    assert recalled[0] == [] and recalled[1] == []
    assert recalled[2] and "I like tea" in recalled[2][0]["text"]
    assert memory.recall("q") == []  # the unscoped pool is not a wildcard
    assert memory.recall("q", scope="session:session-a")


def test_63_shared_and_function_scopes() -> None:
    shared = ScopedMemory()
    orch, recalled = memory_orchestrator(shared, scope="shared")
    orch.execute("fact", session_id="a")
    orch.execute("q", session_id="b")
    assert recalled[1] and "fact" in recalled[1][0]["text"]
    tenants = ScopedMemory()
    orch, recalled = memory_orchestrator(tenants, scope=lambda sid: sid.split(":")[0])
    orch.execute("acme secret", session_id="acme:u1")
    orch.execute("q", session_id="acme:u2")
    orch.execute("q", session_id="globex:u1")
    assert recalled[1] and "acme secret" in recalled[1][0]["text"]
    assert recalled[2] == []


def test_63_failed_turns_never_remember() -> None:
    memory = ScopedMemory()

    def boom(ctx: Any) -> Any:
        raise RuntimeError("no")

    orch = ai.orchestrator(
        name="mem",
        intents={"boom": ai.intent(boom, description="d")},
        route=lambda ctx: "boom",
        checkpoint_store=ai.checkpoint.memory(),
        memory=memory,
    )
    assert orch.execute("x", session_id="s").error is not None
    assert memory.items == []


# --- what the port changes ------------------------------------------------------------------


def test_one_clean_dispatch_is_a_clean_turn_without_end() -> None:
    orch = counter(
        intents={"bump": ai.intent(bump, description="d")}  # no next: END
    )
    result = orch.execute("x", session_id="s1")
    assert result.error is None and result.report.status == "awaiting-input"


def test_a_failed_intent_fails_the_turn_with_its_own_error_and_appends_nothing() -> None:
    store = ai.checkpoint.memory()

    def boom(ctx: Any) -> Any:
        raise ValueError("bad thing")

    orch = counter(
        store, intents={"boom": ai.intent(boom, description="d")}, route=lambda c: "boom"
    )
    failed: list[Any] = []
    result = orch.execute("x", session_id="s1", on={"orchestrator.turn.failed": failed.append})
    assert result.report.status == "failed" and "bad thing" in result.error.message
    assert store.load("counter", "s1") is None and len(failed) == 1
    assert result.data is None


def test_bad_arguments_are_one_line_errors() -> None:
    orch = counter()
    for bad in (None, "", 5, "a\nb", "x" * 256):
        with pytest.raises(OrchestratorFailedError) as info:
            orch.execute("x", session_id=bad)
        assert "\n" not in info.value.message
    with pytest.raises(OrchestratorFailedError):
        orch.execute("x", session_id="s", state=[1])
    with pytest.raises(OrchestratorFailedError):
        orch.execute("x", session_id="s", history="hello")
    with pytest.raises(OrchestratorConfigError):
        counter(keep_snapshots=0)
    with pytest.raises(OrchestratorConfigError):
        counter(session_lock="yes")
    with pytest.raises(OrchestratorConfigError):
        counter(history_window={"routers": 3})
    with pytest.raises(OrchestratorConfigError):
        ai.orchestrator(name="x", intents={"a": bump})  # neither route nor router
    with pytest.raises(OrchestratorConfigError):
        counter(initial_agent="ghost")


def test_no_checkpoint_store_is_a_config_error_per_call() -> None:
    orch = ai.orchestrator(name="n", intents={"a": bump}, route=lambda c: "a")
    with pytest.raises(OrchestratorConfigError) as info:
        orch.execute("x", session_id="s")
    assert "checkpoint store" in info.value.message
    ai.config(default_checkpoint_store=ai.checkpoint.memory())
    assert orch.execute("x", session_id="s").error is None


class FlakyStore:
    """A checkpoint store whose first saves cannot reach the store."""

    def __init__(self, failures: int, error: Exception) -> None:
        self.inner = ai.checkpoint.memory()
        self.failures, self.error = failures, error
        self.write_retry_seconds = 2.0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def save(self, record: Any) -> None:
        if self.failures:
            self.failures -= 1
            raise self.error
        self.inner.save(record)


def test_an_append_survives_a_blip() -> None:
    store = FlakyStore(2, StoreUnavailableError("connection refused"))
    result = counter(store).execute("x", session_id="s1")
    assert result.error is None and store.inner.load("counter", "s1").turn_index == 0


def test_an_append_that_cannot_land_fails_the_turn() -> None:
    store = FlakyStore(10**6, StoreError("disk full"))
    result = counter(store).execute("x", session_id="s1")
    assert result.report.status == "failed" and "disk full" in result.error.message
    assert result.report.checkpointed is False
    assert store.inner.load("counter", "s1") is None


def test_history_windows_reach_router_and_agents() -> None:
    seen: list[Any] = []

    def look(ctx: Any) -> dict[str, Any]:
        seen.append(ctx.history)
        return {}

    orch = counter(
        intents={"look": ai.intent(look, description="d")},
        route=lambda c: "look",
        history_window={"agents": 2},
    )
    history = [{"role": "user", "content": str(i)} for i in range(5)]
    orch.execute("x", session_id="s", history=history)
    assert [m["content"] for m in seen[0]] == ["3", "4"]
    assert (
        counter(history_window={"agents": 3}).signature
        == counter(history_window={"agents": 4}).signature
        != counter().signature
    )


def test_aexecute_and_aresume() -> None:
    store, snapshots = ai.checkpoint.memory(), ai.snapshot.memory()
    orch = interrupted_turn(store, snapshots)

    async def main() -> tuple[Any, Any]:
        resumed = await orch.aresume("s1")
        nxt = await orch.aexecute("third", session_id="s1")
        return resumed, nxt

    resumed, nxt = asyncio.run(main())
    assert resumed.turn_index == 1 and nxt.turn_index == 2 and nxt.error is None
    assert [r.turn_index for r in store.history("iter", "s1")] == [0, 1, 2]


def test_async_turns_of_one_session_serialise_without_blocking_the_loop() -> None:
    store = ai.checkpoint.memory()

    async def slow(ctx: Any) -> dict[str, Any]:
        await asyncio.sleep(0.02)
        return bump(ctx)

    orch = counter(store, intents={"bump": ai.intent(slow, description="d")})

    async def main() -> int:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.005)

        task = asyncio.create_task(ticker())
        await asyncio.gather(*(orch.aexecute(f"m{i}", session_id="s") for i in range(6)))
        task.cancel()
        return ticks

    ticks = asyncio.run(main())
    rows = store.history("counter", "s")
    assert [r.turn_index for r in rows] == list(range(6)) and rows[-1].state["count"] == 6
    assert ticks > 10


def test_discard_removes_rows_and_turn_snapshots() -> None:
    store, snapshots = ai.checkpoint.memory(), ai.snapshot.memory()
    orch = interrupted_turn(store, snapshots)
    assert orch.discard("s1") == 2  # one row, one interrupted turn
    assert store.load("iter", "s1") is None and snapshots.load("s1.unversioned.1") is None
    assert orch.execute("again", session_id="s1").turn_index == 0


# --- 64: as a tool --------------------------------------------------------------------------


def test_64_as_tool_binds_the_session_never_the_model() -> None:
    store = ai.checkpoint.memory()
    orch = counter(store)
    with pytest.raises(OrchestratorConfigError):
        orch.as_tool(session_scope="shared")
    bound = orch.as_tool(session_scope="shared", session="mine")
    bound.run({"session_id": "victim", "text": "hi"}, None)
    assert store.load("counter", "victim") is None
    assert store.load("counter", "mine").state["count"] == 1
    from_ctx = orch.as_tool(session_scope="shared", session=lambda ctx: ctx.options["session_id"])
    from warlock_ai.core.agents.middleware import PipelineContext

    from_ctx.run({}, PipelineContext(level="tool", options={"session_id": "caller"}))
    assert store.load("counter", "caller").turn_index == 0
    empty = orch.as_tool(session_scope="shared", session=lambda ctx: "")
    with pytest.raises(OrchestratorFailedError):
        empty.run({"session_id": "victim"}, None)
    fresh = orch.as_tool()
    fresh.run({"q": 1}, None)
    fresh.run({"q": 2}, None)
    assert len(store.list("counter", "session_")) == 2
    assert fresh.name == "counter" and "counter" in fresh.description


def test_64_as_tool_through_an_agent() -> None:
    from warlock_ai.testing import FakeModel

    store = ai.checkpoint.memory()
    orch = counter(store)
    tool = orch.as_tool(
        name="count", session_scope="shared", session=lambda ctx: ctx.options["session_id"]
    )
    model = FakeModel(
        responses=[
            {"tool_calls": [{"id": "1", "name": "count", "arguments": {"session_id": "victim"}}]},
            "done",
        ]
    )
    agent = ai.agent(name="caller", model=model, tools=[tool])
    result = agent.execute("go", session_id="user-1")
    assert result.error is None
    assert store.load("counter", "user-1").turn_index == 0
    assert store.load("counter", "victim") is None


def test_a_memory_that_fails_to_remember_does_not_fail_a_stored_turn() -> None:
    class Broken(ScopedMemory):
        def remember(self, item: dict[str, Any]) -> None:
            raise RuntimeError("vector store down")

    errors: list[Any] = []
    orch, _ = memory_orchestrator(Broken())
    result = orch.execute("x", session_id="s", on={"orchestrator.error": errors.append})
    assert result.error is None and result.report.status == "awaiting-input"
    assert orch.history("s")[0].turn_index == 0
    assert errors[0]["phase"] == "memory" and "vector store down" in errors[0]["error"].message


def test_a_running_snapshot_of_a_checkpointed_turn_is_removed_not_rerun() -> None:
    """A process that died after appending the row but before deleting the turn's snapshot
    leaves a running snapshot of a settled turn: resuming it (what drain does) removes it."""
    store, snapshots = ai.checkpoint.memory(), ai.snapshot.memory()
    orch = interrupted_turn(store, snapshots)
    stale = snapshots.load("s1.unversioned.1")
    snapshots.save(dataclasses.replace(stale, run_id="s1.unversioned.0"))
    ran: list[int] = []
    on = {"supervisor.iteration.starting": lambda e: ran.append(e["iteration"])}
    assert orch.resume_run("s1.unversioned.0", on=on) is None
    assert snapshots.load("s1.unversioned.0") is None and ran == []
    assert [r.turn_index for r in store.history("iter", "s1")] == [0]
    assert snapshots.load("s1.unversioned.1").status == "running"  # the real one is kept
    assert orch.resume_run("s1.unversioned.1").turn_index == 1


def test_a_turn_key_is_stored_with_the_turn_and_found_again() -> None:
    store = ai.checkpoint.memory()
    orch = counter(store)
    orch.execute("a", session_id="s", turn_key="job-1")
    orch.execute("b", session_id="s")
    assert orch.find_turn("s", "job-1").turn_index == 0
    assert orch.find_turn("s", "job-2") is None
    assert store.load("counter", "s").turn_key is None
    for bad in ("", "x" * 256, "a\nb", 5):
        with pytest.raises(OrchestratorFailedError):
            orch.execute("c", session_id="s", turn_key=bad)
    assert len(store.history("counter", "s")) == 2


def test_lock_waiting_handlers_may_be_coroutines_under_execute_and_aexecute() -> None:
    lock, seen = ProcessSessionLock(), []

    async def handler(event: dict[str, Any]) -> None:
        await asyncio.sleep(0)
        seen.append(event["session_id"])

    orch = counter(session_lock=lock, on={"orchestrator.lock.waiting": handler})
    for run in (
        lambda: orch.execute("x", session_id="s"),
        lambda: asyncio.run(orch.aexecute("y", session_id="s")),
    ):
        held = lock.acquire("counter", "s", timeout=0)
        releaser = threading.Timer(0.1, lock.let_go, (held,))
        releaser.start()
        assert run().error is None
        releaser.join()
    assert seen == ["s", "s"]
