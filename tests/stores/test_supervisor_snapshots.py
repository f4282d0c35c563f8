"""Supervisor runs on every snapshot store: the iterations, the state and the lease round-trip,
and a run resumes from what the store gives back."""

from __future__ import annotations

import warlock_ai as ai


def worker(ctx):
    return {"count": ctx.state.get("count", 0) + 1, "note": "naïve ✓"}


def supervisor(store, stop_at=3):
    return ai.supervisor(
        name="sv-store",
        intents={"worker": worker, "other": lambda ctx: {"other": True}},
        route=lambda ctx: ai.END if ctx.iteration >= stop_at else ["worker", "other"],
        snapshot_store=store,
    )


def test_a_supervisor_run_round_trips(snapshot_store):
    result = supervisor(snapshot_store).execute({"ticket": 42}, run_id="sv-1")
    assert result.status == "completed"
    snap = snapshot_store.load("sv-1")
    assert isinstance(snap, ai.SupervisorSnapshot)
    assert (snap.kind, snap.name, snap.status, snap.iteration) == (
        "supervisor",
        "sv-store",
        "completed",
        3,
    )
    assert snap.input == {"ticket": 42}
    assert snap.state == {"count": 3, "note": "naïve ✓", "other": True}
    assert [s["iteration"] for s in snap.snapshots] == [0, 1, 2, 3]
    assert snap.snapshots[1]["result"]["worker"]["output"]["count"] == 2
    assert snap.snapshots[3]["decision"]["next"] == ai.END
    assert snap.signature == supervisor(snapshot_store).signature
    assert snap.fingerprint == supervisor(snapshot_store).fingerprint


def test_a_stored_supervisor_run_resumes(snapshot_store):
    first = supervisor(snapshot_store, stop_at=100)
    first.max_iterations = 2  # stops early with max-iterations, resumable
    assert first.execute("go", run_id="sv-2").status == "max-iterations"
    resumed = supervisor(snapshot_store, stop_at=3).resume("sv-2", force=True)
    assert resumed.status == "completed"
    assert resumed.report.state["count"] == 3
    assert [s["iteration"] for s in resumed.report.snapshots] == [0, 1, 2, 3]
