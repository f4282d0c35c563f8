"""The run operations on every store: drain, prune, discard, cancel, migrate and the
``list_runs`` / ``drain_runs`` commands go through the store contract, so they behave the same
on memory, SQLite, PostgreSQL 16 and 15 and Redis (they used to read the ``Snapshot`` table
only: with the Redis store, drain found nothing and list_runs refused)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command

import warlock_ai as ai
from tests.owners import dead_owner
from tests.stores.worker import make_snapshot, save_claimed
from warlock_ai import operations
from warlock_ai.core.runs.leases import new_owner_id
from warlock_ai.registry import registry


class Crash(BaseException):
    """Ends the process's run the way a SIGKILL would: nothing after it is written."""


@pytest.fixture
def flow(snapshot_backend: Any, snapshot_store: Any) -> Iterator[dict[str, Any]]:
    """A registered 3-step workflow on the store under test, made the configured store;
    ``crash`` makes step "two" die like a killed worker."""
    calls: list[str] = []
    gate = {"crash": False}

    def one(ctx: ai.WorkflowContext) -> None:
        calls.append("one")
        ctx.state["one"] = 1

    def two(ctx: ai.WorkflowContext) -> None:
        calls.append("two")
        if gate["crash"]:
            raise Crash()
        ctx.state["two"] = 2

    def three(ctx: ai.WorkflowContext) -> None:
        calls.append("three")

    wf = ai.workflow(
        name="ops-conformance",
        steps=[ai.step("one", one), ai.step("two", two), ai.step("three", three)],
        snapshot_store=snapshot_store,
    )
    registry.register(wf, replace=True)
    ai.config(default_snapshot_store=snapshot_store)
    try:
        yield {"wf": wf, "store": snapshot_store, "calls": calls, "gate": gate}
    finally:
        ai.reset_config()
        registry.unregister("workflow", "ops-conformance")


def stored(flow: dict[str, Any], run_id: str) -> Any:
    """A running snapshot of the flow at step "two", as a worker would have left it."""
    wf = flow["wf"]
    return make_snapshot(run_id, workflow_name=wf.name, signature=wf.signature)


def crashed_run(flow: dict[str, Any], run_id: str) -> None:
    """A run whose worker died in step "two", its lease already expired."""
    store = flow["store"]
    lease_seconds, store.lease_seconds = store.lease_seconds, -1
    flow["gate"]["crash"] = True
    try:
        with pytest.raises(Crash):
            flow["wf"].execute(run_id=run_id)
    finally:
        flow["gate"]["crash"] = False
        store.lease_seconds = lease_seconds
    assert store.load(run_id).status == "running"


def test_drain_resumes_a_dead_workers_run_without_rerunning_finished_steps(flow):
    crashed_run(flow, "d-1")
    flow["calls"].clear()
    assert operations.stale_runs() == ["d-1"]
    assert operations.drain_runs() == [("d-1", "completed")]
    assert flow["calls"] == ["two", "three"]
    assert flow["store"].load("d-1").state == {"one": 1, "two": 2}
    assert operations.drain_runs() == []


def test_drain_takes_a_dead_holders_run_before_its_lease_expires(flow):
    store = flow["store"]
    if not store.supports_leases:
        pytest.skip(f"{type(store).__name__} declares supports_leases = False")
    save_claimed(store, stored(flow, "d-2"), dead_owner())
    save_claimed(store, stored(flow, "d-3"), new_owner_id())
    assert store.lease("d-2")[1] > datetime.now(UTC)
    assert operations.stale_runs() == ["d-2"]  # d-3's holder (this process) is alive
    assert dict(operations.drain_runs()) == {"d-2": "completed"}
    assert store.load("d-3").status == "running"


def test_prune_deletes_old_finished_runs_in_batches_never_running_ones(flow):
    store = flow["store"]
    old = datetime.now(UTC) - timedelta(days=40)
    for i in range(5):
        store.save(make_snapshot(f"p-{i}", status="completed", saved_at=old + timedelta(hours=i)))
    store.save(make_snapshot("p-failed", status="failed", saved_at=old))
    store.save(make_snapshot("p-running", status="running", saved_at=old))
    store.save(make_snapshot("p-new", status="completed"))
    assert operations.prune_runs(timedelta(days=30), dry_run=True) == 5
    seen: list[tuple[int, int]] = []
    deleted = operations.prune_runs(
        timedelta(days=30),
        statuses=["completed", "running"],
        batch_size=2,
        progress=lambda done, total: seen.append((done, total)),
    )
    assert deleted == 5 and seen == [(2, 5), (4, 5), (5, 5)]
    assert store.list() == ["p-failed", "p-new", "p-running"]
    assert operations.prune_runs(saved_before=datetime.now(UTC), statuses=["failed"]) == 1


def test_discard_refuses_a_live_lease_and_deletes_otherwise(flow):
    store = flow["store"]
    flow["wf"].execute(run_id="x-1")
    operations.discard_run("x-1")
    assert store.load("x-1") is None
    with pytest.raises(operations.UnknownRunError):
        operations.discard_run("x-1")
    if store.supports_leases:
        save_claimed(store, stored(flow, "x-2"), new_owner_id())
        with pytest.raises(ai.LeaseHeldError, match='cannot discard run "x-2"'):
            operations.discard_run("x-2")
        assert store.load("x-2") is not None


def test_cancel_request_reaches_the_next_fenced_write(flow):
    store = flow["store"]
    crashed_run(flow, "c-1")
    # Recorded while its worker still ran (request_cancel now cancels a crashed run at once).
    assert store.request_cancel("c-1", reason="bad deploy") is True
    (info,) = store.runs()
    assert info.cancel_requested_at is not None
    result = operations.resume_run("c-1")  # the resuming worker's first write sees it
    assert result.status == "cancelled" and "bad deploy" in result.error.message
    assert store.load("c-1").status == "cancelled"
    with pytest.raises(operations.RunNotRunningError, match="cancelled, not running"):
        operations.request_cancel("c-1")


def test_migrate_renames_records_and_accepts_the_signature(flow):
    store = flow["store"]
    crashed_run(flow, "m-1")
    renamed = ai.workflow(
        name="ops-conformance",
        steps=[ai.step("first", lambda ctx: None), *flow["wf"].steps[1:]],
        snapshot_store=store,
    )
    registry.register(renamed, replace=True)
    with pytest.raises(ai.WorkflowDriftError):
        operations.resume_run("m-1")
    operations.migrate_run("m-1", {"one": "first"}, accept_signature=True)
    migrated = store.load("m-1")
    assert list(migrated.steps) == ["first"] and migrated.signature == renamed.signature
    flow["calls"].clear()
    assert operations.resume_run("m-1").status == "completed"
    assert flow["calls"] == ["two", "three"]


def test_list_runs_and_drain_runs_commands_read_the_configured_store(flow):
    crashed_run(flow, "l-1")
    flow["wf"].execute(run_id="l-2")
    out = StringIO()
    call_command("list_runs", "--json", stdout=out)
    rows = {row["run_id"]: row for row in json.loads(out.getvalue())}
    assert set(rows) == {"l-1", "l-2"}
    assert (rows["l-1"]["status"], rows["l-1"]["next_step"]) == ("running", "two")
    assert (rows["l-2"]["status"], rows["l-2"]["flow"]) == ("completed", "ops-conformance")
    out = StringIO()
    call_command("list_runs", "--stale", "--json", stdout=out)
    assert [row["run_id"] for row in json.loads(out.getvalue())] == ["l-1"]
    out = StringIO()
    call_command("drain_runs", stdout=out)
    assert "run l-1: completed" in out.getvalue()
    assert flow["store"].load("l-1").status == "completed"


def test_operations_given_a_store_act_on_that_store(flow):
    store = flow["store"]
    crashed_run(flow, "s-1")
    other = ai.snapshot.memory()
    ai.config(default_snapshot_store=other)  # the configured store is another one now
    assert operations.stale_runs() == []
    assert operations.drain_runs(store=store) == [("s-1", "completed")]
    assert store.load("s-1").status == "completed"
    other.save(stored(flow, "s-2"))  # a run in a store its flow does not write to
    with pytest.raises(ai.StoreError, match="writes to"):
        operations.start_resume("s-2", store=other, enqueue=False)
    assert other.load("s-2").status == "running"
