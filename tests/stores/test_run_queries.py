"""The query half of the SnapshotStore contract: ``runs(RunQuery)``, ``count``,
``delete_runs`` and their async twins, on every store (memory, SQLite, PostgreSQL 16 and 15,
Redis). What the run operations (list_runs, drain_runs, prune_runs) are built on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.db import connections

import warlock_ai as ai
from tests.owners import dead_owner
from tests.stores.worker import make_snapshot, save_claimed
from warlock_ai.core.runs.leases import LeaseState, lease_state, new_owner_id
from warlock_ai.stores.base import RunInfo, RunQuery

NOW = datetime.now(UTC)


def at(minutes_ago: float) -> datetime:
    return NOW - timedelta(minutes=minutes_ago)


def supervisor_snapshot(run_id: str, **fields: Any) -> ai.SupervisorSnapshot:
    values: dict[str, Any] = {
        "run_id": run_id,
        "supervisor_name": "triage",
        "signature": "feedface",
        "version": "2",
        "input": "a ticket",
        "iteration": 1,
        "snapshots": [{"iteration": 0}, {"iteration": 1}],
        "status": "running",
        "started_at": at(30),
        "saved_at": at(20),
        "state": {"route": "billing"},
    }
    values.update(fields)
    return ai.SupervisorSnapshot(**values)


def fill(store: Any) -> None:
    """Five runs of two kinds and three flows, saved at known moments."""
    store.save(make_snapshot("wf-a", saved_at=at(50), started_at=at(60), status="completed"))
    store.save(make_snapshot("wf-b", saved_at=at(40), started_at=at(60), status="failed"))
    store.save(make_snapshot("wf-c", saved_at=at(30), started_at=at(60), next="three"))
    store.save(make_snapshot("other_1", saved_at=at(10), workflow_name="other", status="cancelled"))
    store.save(supervisor_snapshot("sv-1"))


def ids(infos: list[RunInfo]) -> list[str]:
    return [info.run_id for info in infos]


# --- listing ------------------------------------------------------------------------------


def test_runs_lists_every_run_newest_first_with_its_summary(snapshot_store):
    fill(snapshot_store)
    infos = snapshot_store.runs()
    assert ids(infos) == ["other_1", "sv-1", "wf-c", "wf-b", "wf-a"]
    by_id = {info.run_id: info for info in infos}
    wf_c, sv_1, wf_a = by_id["wf-c"], by_id["sv-1"], by_id["wf-a"]
    assert (wf_c.kind, wf_c.name, wf_c.status, wf_c.next_step) == (
        "workflow",
        "conformance",
        "running",
        "three",
    )
    assert (wf_c.version, wf_c.iteration, wf_c.finished_at) == ("1", None, None)
    assert abs((wf_c.saved_at - at(30)).total_seconds()) < 0.01
    assert abs((wf_c.started_at - at(60)).total_seconds()) < 0.01
    assert (sv_1.kind, sv_1.name, sv_1.iteration, sv_1.next_step) == (
        "supervisor",
        "triage",
        1,
        None,
    )
    assert wf_a.finished_at is not None and abs((wf_a.finished_at - at(50)).total_seconds()) < 0.01
    assert snapshot_store.count() == 5


def test_runs_filter_by_status_kind_name_and_age(snapshot_store):
    fill(snapshot_store)
    running = RunQuery(statuses={"running"})
    assert ids(snapshot_store.runs(running)) == ["sv-1", "wf-c"]
    finished = RunQuery(statuses={"completed", "failed", "cancelled"})
    assert ids(snapshot_store.runs(finished)) == ["other_1", "wf-b", "wf-a"]
    assert ids(snapshot_store.runs(RunQuery(kind="supervisor"))) == ["sv-1"]
    assert ids(snapshot_store.runs(RunQuery(name="conformance"))) == ["wf-c", "wf-b", "wf-a"]
    assert ids(snapshot_store.runs(RunQuery(kind="workflow", name="triage"))) == []
    older = RunQuery(saved_before=at(35))
    assert ids(snapshot_store.runs(older)) == ["wf-b", "wf-a"]
    assert snapshot_store.count(older) == 2
    both = RunQuery(statuses={"completed", "running"}, name="conformance", saved_before=at(25))
    assert ids(snapshot_store.runs(both)) == ["wf-c", "wf-a"]


def test_runs_limit_and_order(snapshot_store):
    fill(snapshot_store)
    assert ids(snapshot_store.runs(RunQuery(limit=2))) == ["other_1", "sv-1"]
    assert ids(snapshot_store.runs(RunQuery(limit=2, oldest_first=True))) == ["wf-a", "wf-b"]
    assert snapshot_store.count(RunQuery(limit=2)) == 5  # count ignores the limit
    assert snapshot_store.runs(RunQuery(limit=0)) == []


def test_runs_prefix_is_literal_and_case_sensitive(snapshot_store):
    for run_id in ("a_1", "ab1", "a%2", "A_3", "a_"):
        snapshot_store.save(make_snapshot(run_id))
    assert sorted(ids(snapshot_store.runs(RunQuery(prefix="a_")))) == ["a_", "a_1"]
    assert ids(snapshot_store.runs(RunQuery(prefix="a%"))) == ["a%2"]
    assert ids(snapshot_store.runs(RunQuery(prefix="A"))) == ["A_3"]
    assert snapshot_store.count(RunQuery(prefix="a")) == 4


def test_a_query_of_an_empty_store(snapshot_store):
    assert snapshot_store.runs() == []
    assert snapshot_store.count(RunQuery(stale=True)) == 0
    assert snapshot_store.delete_runs([], ["completed"]) == 0
    assert snapshot_store.delete_runs(["nope"], ["completed"]) == 0


# --- leases and staleness -----------------------------------------------------------------


def test_stale_is_the_lease_rule_row_for_row(snapshot_store):
    """Unleased, expired and dead-holder running runs are stale; a live lease and a finished
    run are not, whatever the row says. One rule: ``leases.lease_state``."""
    if not snapshot_store.supports_leases:
        pytest.skip(f"{type(snapshot_store).__name__} declares supports_leases = False")
    snapshot_store.save(make_snapshot("unleased"))
    save_claimed(snapshot_store, make_snapshot("live"), new_owner_id())
    save_claimed(snapshot_store, make_snapshot("dead-holder"), dead_owner())
    lease_seconds, snapshot_store.lease_seconds = snapshot_store.lease_seconds, -1
    save_claimed(snapshot_store, make_snapshot("expired"), "elsewhere:1:cafebabe")
    snapshot_store.lease_seconds = lease_seconds
    snapshot_store.save(make_snapshot("done", status="completed"))

    now = datetime.now(UTC)
    states = {info.run_id: info.lease_state(now) for info in snapshot_store.runs()}
    assert states == {
        "unleased": LeaseState.NONE,
        "live": LeaseState.LIVE,
        "dead-holder": LeaseState.DEAD,
        "expired": LeaseState.EXPIRED,
        "done": LeaseState.NONE,
    }
    holder, expires = snapshot_store.lease("dead-holder")
    assert expires > now  # unexpired: only its holder's death makes it stale
    assert lease_state(holder, expires, now) is LeaseState.DEAD
    stale = snapshot_store.runs(RunQuery(stale=True))
    assert sorted(ids(stale)) == ["dead-holder", "expired", "unleased"]
    assert snapshot_store.count(RunQuery(stale=True)) == 3
    assert all(info.is_stale(now) for info in stale)


def test_summaries_carry_the_lease_and_a_cancel_request(snapshot_store):
    owner = new_owner_id()
    if snapshot_store.supports_leases:
        save_claimed(snapshot_store, make_snapshot("r-1"), owner)
    else:
        snapshot_store.save(make_snapshot("r-1"))
    if snapshot_store.supports_cancel:
        assert snapshot_store.request_cancel("r-1", "operator")
    (info,) = snapshot_store.runs()
    if snapshot_store.supports_leases:
        assert info.lease_owner == owner
        assert info.lease_expires_at > datetime.now(UTC)
    if snapshot_store.supports_cancel:
        assert info.cancel_requested_at is not None


# --- deleting -----------------------------------------------------------------------------


def test_delete_runs_deletes_only_runs_still_in_the_statuses(snapshot_store):
    fill(snapshot_store)
    deleted = snapshot_store.delete_runs(["wf-a", "wf-b", "wf-c", "nope"], ["completed", "failed"])
    assert deleted == 2
    assert sorted(snapshot_store.list()) == ["other_1", "sv-1", "wf-c"]
    assert snapshot_store.delete_runs(["wf-c", "other_1"], ["completed"]) == 0
    assert snapshot_store.load("wf-c").status == "running"


async def test_async_twins_answer_the_same(snapshot_store):
    try:
        await snapshot_store.asave(make_snapshot("x-1", status="completed", saved_at=at(5)))
        await snapshot_store.asave(make_snapshot("x-2", saved_at=at(1)))
        assert ids(await snapshot_store.aruns()) == ["x-2", "x-1"]
        assert await snapshot_store.acount(RunQuery(statuses={"completed"})) == 1
        assert await snapshot_store.adelete_runs(["x-1", "x-2"], ["completed"]) == 1
        assert await snapshot_store.alist() == ["x-2"]
    finally:
        # sync_to_async twins ran in asgiref's thread: close its database connection.
        await sync_to_async(connections.close_all)()


def test_run_query_refuses_a_negative_limit():
    with pytest.raises(ValueError, match="limit"):
        RunQuery(limit=-1)
