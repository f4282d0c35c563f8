"""The orchestrator on every store (memory, SQLite, PostgreSQL 16 and 15, Redis): turns append
one row each, an iterating turn is a stored run while it runs and is gone once settled, an
interrupted turn resumes, pruning keeps ``keep_snapshots`` turns, a session is discarded whole."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.db import connections

import warlock_ai as ai
from warlock_ai import END
from warlock_ai.core.errors import InterruptedTurnError, OrchestratorDriftError
from warlock_ai.core.orchestrator import TurnSnapshot


def note(ctx: Any) -> dict[str, Any]:
    notes = [*ctx.state.get("notes", []), ctx.input]
    return {"notes": notes, "count": len(notes), "text": "héllo ✓"}


def chat(checkpoints: Any, **options: Any) -> ai.Orchestrator:
    return ai.orchestrator(
        name=options.pop("name", "chat"),
        intents=options.pop("intents", {"note": ai.intent(note, description="take a note")}),
        route=options.pop("route", lambda ctx: "note"),
        checkpoint_store=checkpoints,
        **options,
    )


def test_turns_append_one_row_each(checkpoint_backend: Any) -> None:
    checkpoints = checkpoint_backend.checkpoint_store()
    orch = chat(checkpoints)
    for text in ("a", "b", "c"):
        result = orch.execute(text, session_id="s-1")
        assert result.error is None and result.report.status == "awaiting-input"
    rows = checkpoints.history("chat", "s-1")
    assert [r.turn_index for r in rows] == [0, 1, 2]
    assert rows[-1].state == {"notes": ["a", "b", "c"], "count": 3, "text": "héllo ✓"}
    assert rows[-1].last_route == "note" and rows[-1].signature == orch.signature
    if checkpoint_backend.alias is not None:
        assert checkpoint_backend.checkpoint_rows(checkpoints) == 3
    assert orch.sessions() == ["s-1"]


def test_keep_snapshots_prunes_below_the_kept_turns(checkpoint_backend: Any) -> None:
    checkpoints = checkpoint_backend.checkpoint_store()
    orch = chat(checkpoints, keep_snapshots=2)
    for text in "abcde":
        orch.execute(text, session_id="s")
    assert [r.turn_index for r in checkpoints.history("chat", "s")] == [3, 4]
    assert checkpoints.load("chat", "s").state["count"] == 5


def test_drift_and_force(checkpoint_backend: Any) -> None:
    checkpoints = checkpoint_backend.checkpoint_store()
    chat(checkpoints).execute("a", session_id="s")
    changed = chat(checkpoints, max_iterations=3)
    with pytest.raises(OrchestratorDriftError):
        changed.execute("b", session_id="s")
    assert changed.execute("b", session_id="s", force=True).turn_index == 1
    assert checkpoints.load("chat", "s").signature == changed.signature


def iterating(checkpoints: Any, snapshots: Any, work: Any) -> ai.Orchestrator:
    return chat(
        checkpoints,
        name="iter",
        iterate=True,
        snapshot_store=snapshots,
        intents={"work": ai.intent(work, description="work")},
        route=lambda ctx: "work" if ctx.iteration < 3 else END,
    )


def test_an_iterating_turn_is_a_stored_run_until_it_settles(checkpoint_backend: Any) -> None:
    checkpoints = checkpoint_backend.checkpoint_store()
    snapshots = checkpoint_backend.snapshot_store()
    seen: list[Any] = []

    def work(ctx: Any) -> dict[str, Any]:
        seen.append(snapshots.load(ctx.run_id))
        return {"steps": ctx.state.get("steps", 0) + 1}

    result = iterating(checkpoints, snapshots, work).execute("go", session_id="s")
    assert result.error is None and result.report.run_id == "s.unversioned.0"
    assert all(isinstance(s, TurnSnapshot) and s.status == "running" for s in seen)
    assert seen[-1].session_id == "s" and seen[-1].turn_index == 0
    assert [len(s.snapshots) for s in seen] == [0, 1, 2]
    assert snapshots.load("s.unversioned.0") is None
    assert checkpoints.load("iter", "s").state == {"steps": 3}


def test_an_interrupted_turn_resumes_where_it_stopped(checkpoint_backend: Any) -> None:
    checkpoints = checkpoint_backend.checkpoint_store()
    snapshots = checkpoint_backend.snapshot_store()
    calls: list[int] = []
    stop = {"at": 1}

    def work(ctx: Any) -> dict[str, Any]:
        calls.append(ctx.iteration)
        if ctx.iteration == stop["at"]:
            stop["at"] = -1
            raise KeyboardInterrupt  # the process is stopped mid-turn (Ctrl-C)
        return {"steps": ctx.state.get("steps", 0) + 1}

    orch = iterating(checkpoints, snapshots, work)
    with pytest.raises(KeyboardInterrupt):
        orch.execute("go", session_id="s")
    stored = snapshots.load("s.unversioned.0")
    assert isinstance(stored, TurnSnapshot) and stored.status == "running"
    assert len(stored.snapshots) == 1 and checkpoints.load("iter", "s") is None
    with pytest.raises(InterruptedTurnError):
        orch.execute("another", session_id="s")
    result = orch.resume("s")
    assert result is not None and result.error is None and result.turn_index == 0
    assert calls == [0, 1, 1, 2]  # iteration 0 settled before the stop: not run again
    assert checkpoints.load("iter", "s").state == {"steps": 3}
    assert snapshots.load("s.unversioned.0") is None
    assert orch.execute("next", session_id="s").turn_index == 1


def test_discard_removes_the_session_and_its_interrupted_turn(checkpoint_backend: Any) -> None:
    checkpoints = checkpoint_backend.checkpoint_store()
    snapshots = checkpoint_backend.snapshot_store()
    first = {"done": False}

    def work(ctx: Any) -> dict[str, Any]:
        if first["done"] and ctx.iteration == 1:
            raise KeyboardInterrupt
        return {"steps": ctx.state.get("steps", 0) + 1}

    orch = iterating(checkpoints, snapshots, work)
    orch.execute("a", session_id="s")
    first["done"] = True
    with pytest.raises(KeyboardInterrupt):
        orch.execute("b", session_id="s")
    assert orch.discard("s") == 2
    assert checkpoints.history("iter", "s") == [] and snapshots.load("s.unversioned.1") is None


def test_async_turns(checkpoint_backend: Any) -> None:
    checkpoints = checkpoint_backend.checkpoint_store()
    orch = chat(checkpoints)

    async def main() -> list[int]:
        try:
            results = [await orch.aexecute(t, session_id="s") for t in ("a", "b")]
        finally:  # the ORM store's async calls ran in asgiref's thread: close its connections
            await sync_to_async(connections.close_all)()
        return [r.turn_index for r in results]

    assert asyncio.run(main()) == [0, 1]
    assert checkpoints.load("chat", "s").state["notes"] == ["a", "b"]
