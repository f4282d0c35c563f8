"""An operator's cancel on every store that leases runs (memory, SQLite, PostgreSQL 16 and 15,
Redis): it reaches a running step through the heartbeat, a run no live worker holds is
cancelled at once, and a second request keeps the first.

Leases of 0.6 s here, so the heartbeat renews (and reads any cancel request) every 0.2 s."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

import warlock_ai as ai
from tests.owners import dead_owner
from tests.stores.worker import make_snapshot, save_claimed
from tests.stores.worker import start_thread as start
from warlock_ai import operations
from warlock_ai.core.runs.cancel import CancelRequest
from warlock_ai.core.runs.leases import ACQUIRE, RELEASE, LeaseClaim, new_owner_id
from warlock_ai.registry import registry

LEASE = 0.6
INTERVAL = LEASE / 3
STEP_SECONDS = 30.0  # how long the polling step would run if the cancel never reached it


def polling_workflow(store: Any, seen: dict[str, Any]) -> Any:
    """``prepare``; ``poll``, a long step that polls ``ctx.cancel`` and says when it noticed
    (then stops, unfinished); ``after``, which a cancelled run never reaches."""

    def prepare(ctx: Any) -> None:
        ctx.state["prepared"] = True

    def poll(ctx: Any) -> None:
        seen["entered"].set()
        deadline = time.monotonic() + STEP_SECONDS
        while time.monotonic() < deadline:
            if ctx.cancel.wait(0.01):
                seen["noticed_at"] = time.monotonic()
                seen["reason"] = ctx.cancel.reason_text
                # Stop without finishing: a resume runs the step again.
                raise ai.WorkflowCancelledError(ctx.cancel.reason_text)
        seen["finished"] = True

    def after(ctx: Any) -> None:
        seen["after"] = True

    return ai.workflow(
        name="cancel-conformance",
        steps=[ai.step("prepare", prepare), ai.step("poll", poll), ai.step("after", after)],
        snapshot_store=store,
    )


@pytest.fixture
def leased_store(snapshot_backend: Any) -> Any:
    store = snapshot_backend.snapshot_store(lease_seconds=LEASE)
    assert store.supports_leases and store.supports_cancel
    return store


# --- the store contract --------------------------------------------------------------------


def test_renew_lease_brings_back_a_pending_cancel_request(snapshot_store):
    owner = new_owner_id()
    save_claimed(snapshot_store, make_snapshot("rc-1"), owner)
    assert snapshot_store.renew_lease("rc-1", owner) is True
    assert snapshot_store.request_cancel("rc-1", "wrong feed") is True
    renewed = snapshot_store.renew_lease("rc-1", owner)
    assert isinstance(renewed, CancelRequest) and renewed  # still held: truthy
    assert renewed.reason == "wrong feed" and renewed.requested_at is not None
    assert snapshot_store.renew_lease("rc-1", "elsewhere:1:deadbeef") is False
    assert snapshot_store.lease("rc-1")[0] == owner


def test_a_second_request_keeps_the_first(snapshot_store):
    owner = new_owner_id()
    save_claimed(snapshot_store, make_snapshot("rc-2"), owner)
    assert snapshot_store.request_cancel("rc-2", "first") is True
    again = snapshot_store.request_cancel("rc-2", "second")
    assert isinstance(again, CancelRequest) and again.reason == "first"
    renewed = snapshot_store.renew_lease("rc-2", owner)
    assert renewed.reason == "first" and renewed.requested_at == again.requested_at
    (info,) = snapshot_store.runs()
    assert info.cancel_requested_at == again.requested_at


def test_the_terminal_write_clears_the_request(snapshot_store):
    owner = new_owner_id()
    save_claimed(snapshot_store, make_snapshot("rc-3"), owner)
    assert snapshot_store.request_cancel("rc-3") is True
    save_claimed(snapshot_store, make_snapshot("rc-3", status="cancelled"), owner, RELEASE)
    assert snapshot_store.request_cancel("rc-3") is False  # not running: nothing recorded
    (info,) = snapshot_store.runs()
    assert info.cancel_requested_at is None and snapshot_store.lease("rc-3") is None


# --- a running step --------------------------------------------------------------------------


def test_cancel_reaches_a_step_polling_ctx_cancel_within_one_heartbeat(leased_store):
    seen: dict[str, Any] = {"entered": threading.Event()}
    wf = polling_workflow(leased_store, seen)
    thread, box = start(lambda: wf.execute({"n": 1}, run_id="poll-1"))
    try:
        assert seen["entered"].wait(10)
        asked_at = time.monotonic()
        outcome = operations.request_cancel("poll-1", "wrong feed", store=leased_store)
        thread.join(10)
    finally:
        seen.setdefault("noticed_at", None)
        thread.join(STEP_SECONDS + 5)
    assert outcome.action == "requested" and outcome.ok
    assert outcome.within_seconds == pytest.approx(INTERVAL)
    assert "next checkpoint" in outcome.message and f"within {INTERVAL:g} s" in outcome.message
    assert outcome.worker is not None and outcome.worker in outcome.message
    assert seen["noticed_at"] is not None, "the step never saw ctx.cancel"
    # One heartbeat interval, plus slack for two shared cores.
    assert seen["noticed_at"] - asked_at < INTERVAL + 1.0
    assert seen["reason"] == "wrong feed"
    assert "finished" not in seen and "after" not in seen
    result = box["result"]
    assert result.status == "cancelled" and result.error.reason == "wrong feed"
    stored = leased_store.load("poll-1")
    assert (stored.status, stored.next_step) == ("cancelled", "poll")
    assert stored.state == {"prepared": True}
    assert stored.error["code"] == "WORKFLOW_CANCELLED"
    assert leased_store.lease("poll-1") is None


def test_a_second_cancel_says_one_is_pending(snapshot_store):
    """A long lease: the heartbeat does not tick during the test, the request stays pending."""
    seen: dict[str, Any] = {"entered": threading.Event()}
    wf = polling_workflow(snapshot_store, seen)
    token = ai.CancelToken()
    thread, box = start(lambda: wf.execute(run_id="twice-1", cancel=token))
    try:
        assert seen["entered"].wait(10)
        first = operations.request_cancel("twice-1", "first reason", store=snapshot_store)
        second = operations.request_cancel("twice-1", "second reason", store=snapshot_store)
    finally:
        token.cancel("test over")
        thread.join(10)
    assert first.action == "requested"
    assert second.action == "pending" and second.ok
    assert second.message.startswith('a cancel is already pending for run "twice-1" (requested at ')
    assert "first reason" in second.message
    assert second.reason == "first reason" and second.requested_at is not None
    assert box["result"].status == "cancelled"


# --- no live worker ----------------------------------------------------------------------------


@pytest.fixture
def registered(snapshot_store: Any) -> Any:
    seen: dict[str, Any] = {"entered": threading.Event()}
    wf = polling_workflow(snapshot_store, seen)
    registry.register(wf, replace=True)
    ai.config(default_snapshot_store=snapshot_store)
    try:
        yield wf
    finally:
        ai.reset_config()
        registry.unregister("workflow", wf.name)


def stranded(store: Any, wf: Any, run_id: str, owner: str | None, **fields: Any) -> Any:
    """A running snapshot at step "poll", leased by ``owner``, as a worker would leave it."""
    snapshot = make_snapshot(
        run_id,
        state={"prepared": True},
        workflow_name=wf.name,
        signature=wf.signature,
        next="poll",
        **fields,
    )
    save_claimed(store, snapshot, owner)
    return snapshot


def test_cancel_of_a_run_whose_worker_died_cancels_it_at_once(snapshot_store, registered):
    stranded(snapshot_store, registered, "dead-1", dead_owner())
    outcome = operations.request_cancel("dead-1", "worker gone")
    assert outcome.action == "cancelled" and outcome.ok
    assert outcome.message == 'run "dead-1" cancelled (no live worker held it)'
    stored = snapshot_store.load("dead-1")
    assert (stored.status, stored.next_step, stored.state) == (
        "cancelled",
        "poll",
        {"prepared": True},
    )
    assert stored.error["code"] == "WORKFLOW_CANCELLED"
    assert stored.error["reason"] == "worker gone"
    assert stored.error["message"] == "workflow cancelled: worker gone"
    assert snapshot_store.lease("dead-1") is None
    (info,) = snapshot_store.runs()
    assert info.cancel_requested_at is None and info.finished_at is not None
    with pytest.raises(operations.RunNotRunningError, match="cancelled, not running"):
        operations.request_cancel("dead-1")
    # It resumes like any cancelled run, from the step it stopped at.
    result = operations.resume_run("dead-1")
    assert result.status == "completed"
    assert [name for name in snapshot_store.load("dead-1").steps] == ["poll", "after"]


def test_cancel_of_a_run_with_an_expired_lease_or_none_cancels_it_at_once(
    snapshot_store, registered
):
    lease_seconds, snapshot_store.lease_seconds = snapshot_store.lease_seconds, -1
    try:
        stranded(snapshot_store, registered, "expired-1", new_owner_id())
    finally:
        snapshot_store.lease_seconds = lease_seconds
    stranded(snapshot_store, registered, "unleased-1", None)
    for run_id in ("expired-1", "unleased-1"):
        outcome = operations.request_cancel(run_id)
        assert outcome.action == "cancelled", outcome
        stored = snapshot_store.load(run_id)
        assert stored.status == "cancelled"
        assert stored.error["reason"] == "cancel requested by an operator"


def test_a_pending_request_whose_worker_then_died_is_cancelled_at_once(snapshot_store, registered):
    stranded(snapshot_store, registered, "asked-1", dead_owner())
    assert snapshot_store.request_cancel("asked-1", "asked while it ran") is True
    outcome = operations.request_cancel("asked-1")
    assert outcome.action == "cancelled"
    assert snapshot_store.load("asked-1").status == "cancelled"
    (info,) = snapshot_store.runs()
    assert info.cancel_requested_at is None


def test_the_immediate_cancel_and_a_resuming_worker_never_both_win(snapshot_store, registered):
    """The cancel's write is conditional like a resume's first write: on the lease *and* on
    the snapshot read. Whichever writes second is refused and changes nothing."""
    read = stranded(snapshot_store, registered, "race-1", dead_owner())
    # A worker resumed the run between the operator's read and write: the cancel loses and
    # falls back to asking that worker.
    worker = new_owner_id()
    snapshot_store.save(
        make_snapshot("race-1", workflow_name=registered.name, signature=registered.signature),
        claim=LeaseClaim(worker, ACQUIRE, read.saved_at),
    )
    assert operations._cancel_unheld(snapshot_store, read, "too late") is None
    assert snapshot_store.load("race-1").status == "running"
    assert snapshot_store.lease("race-1")[0] == worker
    outcome = operations.request_cancel("race-1")
    assert outcome.action == "requested" and worker in outcome.message

    # The other order: the cancel wins, and a worker that loaded the run before it is refused.
    read = stranded(snapshot_store, registered, "race-2", dead_owner())
    assert operations.request_cancel("race-2").action == "cancelled"
    with pytest.raises(ai.LeaseLostError, match="changed since this worker loaded it"):
        snapshot_store.save(read, claim=LeaseClaim(new_owner_id(), ACQUIRE, read.saved_at))
    assert snapshot_store.load("race-2").status == "cancelled"
