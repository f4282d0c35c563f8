"""Resumes are recorded (issue 12): each execution of a run is an attempt kept with the
snapshot: who ran it, when, where it started, why it ended."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import pytest

import warlock_ai as ai
from tests.owners import dead_owner
from warlock_ai.core.runs.attempts import RunAttempt, attempts_from, attempts_json
from warlock_ai.core.runs.leases import ACQUIRE, LeaseClaim, local_owner_prefix


def two_steps(store: Any, fail: dict[str, bool]) -> Any:
    def b(ctx: Any) -> None:
        if fail["b"]:
            raise RuntimeError("b is broken")

    return ai.workflow(
        name="attempts",
        steps=[ai.step("a", lambda ctx: None), ai.step("b", b)],
        snapshot_store=store,
    )


def test_a_fresh_run_has_one_attempt_that_ends_with_it():
    store = ai.snapshot.memory()
    result = two_steps(store, {"b": False}).execute(run_id="at-1")
    assert result.status == "completed"
    (attempt,) = store.load("at-1").attempts
    assert attempt.number == 1 and attempt.resumed_at is None
    assert attempt.end == "completed" and attempt.detail is None
    assert attempt.worker.startswith(local_owner_prefix())
    assert attempt.started_at <= attempt.ended_at


def test_a_failed_run_resumed_keeps_both_attempts():
    store, fail = ai.snapshot.memory(), {"b": True}
    wf = two_steps(store, fail)
    assert wf.execute(run_id="at-2").status == "failed"
    fail["b"] = False
    assert wf.resume("at-2").status == "completed"
    first, second = store.load("at-2").attempts
    assert (first.number, first.end, first.detail) == (1, "failed", "STEP_FAILED")
    assert (second.number, second.resumed_at, second.end) == (2, "b", "completed")
    assert first.ended_at <= second.started_at


@pytest.mark.parametrize("dead", [True, False], ids=["process-gone", "lease-expired"])
def test_an_attempt_that_never_wrote_its_end_is_closed_by_the_next(dead):
    """A worker killed mid-run writes nothing more: the resume says what became of it."""
    store = ai.snapshot.memory(lease_seconds=0.05 if not dead else 300)
    wf = two_steps(store, {"b": False})
    # A worker took the run and stored "a" done, then stopped writing.
    owner = dead_owner() if dead else f"{local_owner_prefix()}{1}:cafe"
    started = wf.execute(run_id="at-3-seed")  # a real snapshot to start from
    snap = store.load("at-3-seed")
    partial = type(snap).from_dict(
        {
            **snap.to_dict(),
            "run_id": "at-3",
            "status": "running",
            "next": "b",
            "attempts": [
                {"number": 1, "worker": owner, "started_at": "2026-01-01T00:00:00Z"},
            ],
        }
    )
    store.save(partial, claim=LeaseClaim(owner, ACQUIRE))
    assert started.status == "completed"
    if not dead:
        time.sleep(0.1)  # the lease expires; its (live) holder is silent
    assert wf.resume("at-3").status == "completed"
    first, second = store.load("at-3").attempts
    assert first.end == ("crashed" if dead else "lease-taken-over")
    assert first.detail == "it never wrote how it ended"
    assert first.ended_at == partial.saved_at
    assert second.resumed_at == "b" and second.end == "completed"


def test_attempts_round_trip_and_encode_once_per_tuple():
    attempts = (RunAttempt(1, "h:1:ab", datetime(2026, 1, 1, tzinfo=UTC), None),)
    text = attempts_json(attempts)
    assert attempts_json(attempts) is text, "the same tuple is not encoded again"
    assert attempts_from(json.loads(text)) == attempts
    assert attempts_from(None) == () and attempts_from([]) == ()
