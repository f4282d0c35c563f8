"""The operations layer: external cancellation, discard, migrate, prune, stale runs, drain."""

import threading
from datetime import timedelta

import pytest
from django.utils import timezone

import warlock_ai as ai
from warlock_ai import operations
from warlock_ai.models import Snapshot
from warlock_ai.registry import registry

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def flow():
    """A registered 3-step workflow on the default ORM store; step "two" can be held open."""
    gate = {"entered": threading.Event(), "release": threading.Event(), "calls": []}

    def one(ctx):
        gate["calls"].append("one")
        ctx.state["one"] = 1

    def two(ctx):
        gate["calls"].append("two")
        gate["entered"].set()
        gate["release"].wait(10)
        ctx.state["two"] = 2

    def three(ctx):
        gate["calls"].append("three")

    wf = ai.workflow(
        name="ops-flow",
        steps=[ai.step("one", one), ai.step("two", two), ai.step("three", three)],
    )
    registry.register(wf, replace=True)
    yield wf, gate
    gate["release"].set()
    registry.unregister("workflow", "ops-flow")


def run_in_thread(fn):
    box = {}
    thread = threading.Thread(target=lambda: box.setdefault("result", fn()))
    thread.start()
    return thread, box


def test_cancel_from_outside_is_noticed_at_the_next_checkpoint(flow):
    wf, gate = flow
    thread, box = run_in_thread(lambda: wf.execute(run_id="c-1"))
    assert gate["entered"].wait(10)
    operations.request_cancel("c-1", reason="bad deploy")
    assert Snapshot.objects.get(pk="c-1").cancel_requested_at is not None
    gate["release"].set()
    thread.join(10)
    result = box["result"]
    assert result.status == "cancelled"
    assert "bad deploy" in result.error.message
    assert gate["calls"] == ["one", "two"]  # "three" never ran
    row = Snapshot.objects.get(pk="c-1")
    assert (row.status, row.next_step) == ("cancelled", "three")
    assert row.state == {"one": 1, "two": 2}  # partial state kept
    assert row.cancel_requested_at is None and row.lease_owner is None  # cleared on release
    gate["entered"].clear()
    assert operations.resume_run("c-1").status == "completed"
    assert gate["calls"] == ["one", "two", "three"]


def test_cancel_refuses_a_run_that_is_not_running(flow):
    wf, _ = flow
    flow[1]["release"].set()
    wf.execute(run_id="c-2")
    with pytest.raises(operations.RunNotRunningError, match="completed, not running"):
        operations.request_cancel("c-2")
    with pytest.raises(operations.UnknownRunError):
        operations.request_cancel("nope")


def test_discard_refuses_a_live_lease_then_works(flow):
    wf, gate = flow
    thread, _ = run_in_thread(lambda: wf.execute(run_id="d-1"))
    assert gate["entered"].wait(10)
    with pytest.raises(ai.LeaseHeldError, match='cannot discard run "d-1": it is leased by'):
        operations.discard_run("d-1")
    assert Snapshot.objects.filter(pk="d-1").exists()
    gate["release"].set()
    thread.join(10)
    operations.discard_run("d-1")
    assert not Snapshot.objects.filter(pk="d-1").exists()


def test_migrate_renames_and_accepts_the_signature(flow):
    wf, gate = flow
    gate["release"].set()
    old = ai.workflow(
        name="ops-flow",
        version="0",
        steps=[ai.step("first", lambda ctx: None), ai.step("two", lambda ctx: 1 / 0)],
    )
    old.execute(run_id="m-1")
    before = Snapshot.objects.get(pk="m-1")
    with pytest.raises(operations.MigrationError, match='no step "zero"'):
        operations.migrate_run("m-1", {"zero": "one"})
    with pytest.raises(operations.MigrationError, match='"uno" is not a step of ops-flow'):
        operations.migrate_run("m-1", {"first": "uno"})
    assert Snapshot.objects.get(pk="m-1").steps == before.steps  # nothing saved
    migrated = operations.migrate_run("m-1", {"first": "one"}, accept_signature=True)
    assert set(migrated.steps) == {"one", "two"} and migrated.signature == wf.signature
    result = operations.resume_run("m-1")
    assert result.status == "completed" and gate["calls"] == ["two", "three"]


def test_prune_deletes_old_finished_runs_in_batches_never_running_ones(flow):
    wf, gate = flow
    gate["release"].set()
    for n in range(7):
        wf.execute(run_id=f"p-{n}")
    Snapshot.objects.filter(pk="p-6").update(status="running")
    Snapshot.objects.update(saved_at=timezone.now() - timedelta(days=40))
    seen = []
    deleted = operations.prune_runs(
        timedelta(days=30),
        statuses=("completed", "running"),
        batch_size=2,
        progress=lambda done, total: seen.append((done, total)),
    )
    assert deleted == 6 and seen[-1] == (6, 6) and len(seen) == 3
    assert list(Snapshot.objects.values_list("run_id", flat=True)) == ["p-6"]
    assert operations.prune_runs(timedelta(days=30), dry_run=True) == 0


def test_stale_runs_and_drain(flow):
    wf, gate = flow
    gate["release"].set()
    wf.execute(run_id="s-live")
    wf.execute(run_id="s-dead")
    wf.execute(run_id="s-expired")
    future, past = timezone.now() + timedelta(minutes=5), timezone.now() - timedelta(minutes=5)
    Snapshot.objects.filter(pk="s-live").update(
        status="running", next_step="three", lease_owner="other-host:1:abc", lease_expires_at=future
    )
    Snapshot.objects.filter(pk="s-expired").update(
        status="running", next_step="three", lease_owner="other-host:2:def", lease_expires_at=past
    )
    Snapshot.objects.filter(pk="s-dead").update(
        status="running", next_step="three", lease_owner=None, lease_expires_at=None
    )
    assert sorted(operations.stale_runs()) == ["s-dead", "s-expired"]
    gate["calls"].clear()
    outcomes = dict(operations.drain_runs())
    assert outcomes == {"s-dead": "completed", "s-expired": "completed"}
    assert gate["calls"] == ["three", "three"]
    assert Snapshot.objects.get(pk="s-live").status == "running"
    assert operations.drain_runs() == []


def test_cancel_a_supervisor_from_outside():
    """request_cancel reaches a supervisor at its next snapshot write; it ends cancelled."""
    gate = {"entered": threading.Event(), "release": threading.Event()}

    def slow(ctx):
        gate["entered"].set()
        gate["release"].wait(10)
        return {"slow": True}

    sup = registry.register(
        ai.supervisor(name="ops-sup", intents={"slow": slow}, route=lambda ctx: "slow"),
        replace=True,
    )
    try:
        thread, box = run_in_thread(lambda: sup.execute("go", run_id="sv-c"))
        assert gate["entered"].wait(10)
        operations.request_cancel("sv-c", reason="wrong customer")
        gate["release"].set()
        thread.join(10)
        result = box["result"]
        assert result.status == "cancelled"
        assert "wrong customer" in result.error.message
        row = Snapshot.objects.get(pk="sv-c")
        assert (row.status, row.iteration, row.state) == ("cancelled", 0, {"slow": True})
        assert row.cancel_requested_at is None and row.lease_owner is None
    finally:
        registry.unregister("supervisor", "ops-sup")
