"""The lease heartbeat on every store: a step longer than the lease keeps its run, and a worker
whose run was taken from it stops.

Leases of 0.3 s here: without the heartbeat, a resume 0.8 s into a 1.5 s step would take the
run over and run the step a second time."""

from __future__ import annotations

import threading
import time

import pytest

import warlock_ai as ai
from tests.stores.worker import start_thread as start

LEASE = 0.3


def long_workflow(store, entered, release, calls):
    def slow(ctx):
        calls.append("slow")
        entered.set()
        release.wait(10)
        ctx.state["slow"] = True

    return ai.workflow(
        name="heartbeat",
        steps=[ai.step("quick", lambda ctx: None), ai.step("slow", slow)],
        snapshot_store=store,
    )


def test_renew_lease_is_fenced(snapshot_store):
    entered, release, calls = threading.Event(), threading.Event(), []
    store = snapshot_store
    wf = long_workflow(store, entered, release, calls)
    thread, _ = start(lambda: wf.execute(run_id="hb-1"))
    try:
        assert entered.wait(10)
        owner, expires = store.lease("hb-1")
        assert store.renew_lease("hb-1", owner) is True
        assert store.lease("hb-1")[1] >= expires
        assert store.renew_lease("hb-1", "elsewhere:1:deadbeef") is False
        assert store.renew_lease("no-such-run", owner) is False
        assert store.lease("hb-1")[0] == owner
    finally:
        release.set()
        thread.join(10)


def test_a_step_longer_than_the_lease_keeps_its_run(snapshot_backend):
    store = snapshot_backend.snapshot_store(lease_seconds=LEASE)
    entered, release, calls = threading.Event(), threading.Event(), []
    wf = long_workflow(store, entered, release, calls)
    thread, box = start(lambda: wf.execute(run_id="hb-2"))
    try:
        assert entered.wait(10)
        time.sleep(LEASE * 2.5)  # the lease would have expired twice over
        with pytest.raises(ai.LeaseHeldError):
            wf.resume("hb-2")  # another worker draining stale runs is refused
    finally:
        release.set()
        thread.join(10)
    assert box["result"].status == "completed"
    assert calls == ["slow"]  # the long step ran once
    assert store.lease("hb-2") is None  # released by the terminal write


def test_a_worker_whose_run_was_taken_stops(snapshot_backend):
    store = snapshot_backend.snapshot_store(lease_seconds=LEASE)
    entered, release, calls = threading.Event(), threading.Event(), []
    wf = long_workflow(store, entered, release, calls)
    token = ai.CancelToken()
    thread, box = start(lambda: wf.execute(run_id="hb-3", cancel=token))
    try:
        assert entered.wait(10)
        store.delete("hb-3")  # an operator discarded it while it ran
        deadline = time.monotonic() + 5
        while not token.cancelled and time.monotonic() < deadline:
            time.sleep(0.02)
        assert token.cancelled
        assert "lost the run's lease" in token.reason_text
    finally:
        release.set()
        thread.join(10)
    result = box["result"]  # the run ends with the lost lease as its error
    assert isinstance(result.error, ai.LeaseLostError)
    assert store.load("hb-3") is None  # the stopped worker wrote nothing back


def test_a_supervisor_iteration_longer_than_the_lease_keeps_its_run(snapshot_backend):
    store = snapshot_backend.snapshot_store(lease_seconds=LEASE)
    entered, release = threading.Event(), threading.Event()

    def slow(ctx):
        entered.set()
        release.wait(10)
        return {"done": True}

    sup = ai.supervisor(
        name="heartbeat-sv",
        intents={"slow": slow},
        route=lambda ctx: "slow" if ctx.iteration == 0 else ai.END,
        snapshot_store=store,
    )
    thread, box = start(lambda: sup.execute("go", run_id="hb-4"))
    try:
        assert entered.wait(10)
        time.sleep(LEASE * 2.5)
        with pytest.raises(ai.LeaseHeldError):
            sup.resume("hb-4")
    finally:
        release.set()
        thread.join(10)
    assert box["result"].status == "completed"
