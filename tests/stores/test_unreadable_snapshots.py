"""Snapshots of an unexpected shape (a hand edit, a row written by another version of the
library) on every store: reading one gives one ``UnreadableSnapshotError`` naming the field,
listing still shows it, and discard removes it (issue 12: "every row can be removed").

The database stores can hold a broken JSON column, an unknown kind or status; the memory and
Redis stores keep the snapshot as JSON text, which can also be no JSON at all, lack a key, or
carry a timestamp that is not one.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.stores.conftest import DB_ALIASES, Backend, backend_params
from tests.stores.worker import make_snapshot, save_claimed
from tests.unreadable import COLUMN_SHAPES, COLUMNS, PROBLEM, SHAPES, Shape
from warlock_ai import operations
from warlock_ai.core.errors import LeaseHeldError, UnreadableSnapshotError
from warlock_ai.core.runs.leases import new_owner_id

RUN = "broken-1"
OLD = datetime(2020, 1, 1, tzinfo=UTC)


def stores(*kinds: str) -> list[Any]:
    return [param for param in backend_params() if param.id in kinds]


def break_snapshot(backend: Backend, store: Any, run_id: str, shape: Shape) -> None:
    """Write ``shape`` over the stored snapshot of ``run_id``, beside the store's API."""
    if backend.alias is not None:
        from warlock_ai.models import Snapshot

        columns = {COLUMNS.get(k, k): v for k, v in shape.changes.items()}
        assert Snapshot.objects.using(backend.alias).filter(pk=run_id).update(**columns) == 1
        return
    data = store.load(run_id).to_dict()
    data.update(shape.changes)
    for key in shape.removed:
        del data[key]
    text = shape.text if shape.text is not None else json.dumps(data)
    if backend.kind == "redis":
        client = backend.redis()
        try:
            client.hset(store.key(run_id), "data", text)
        finally:
            client.close()
    else:
        store._data[run_id] = text


def stored_run(backend: Backend, store: Any, shape: Shape, **fields: Any) -> None:
    store.save(make_snapshot(RUN, **fields))
    break_snapshot(backend, store, RUN, shape)


def assert_unreadable(exc_info: Any, shape: Shape) -> None:
    exc = exc_info.value
    assert exc.code == "UNREADABLE_SNAPSHOT"
    assert exc.message.startswith(f'run "{RUN}": {PROBLEM}{shape.expected}'), exc.message
    assert "discard" in exc.message
    assert "\n" not in exc.message


def check_every_tool(backend: Backend, store: Any, shape: Shape) -> None:
    with pytest.raises(UnreadableSnapshotError) as caught:
        store.load(RUN)
    assert_unreadable(caught, shape)
    for operation in (
        lambda: operations.load_snapshot(RUN, store),
        lambda: operations.resume_run(RUN, store=store),
        lambda: operations.start_resume(RUN, store=store),
        lambda: operations.request_cancel(RUN, store=store),
        lambda: operations.migrate_run(RUN, {"two": "three"}, store=store),
    ):
        with pytest.raises(UnreadableSnapshotError) as caught:
            operation()
        assert_unreadable(caught, shape)
    # Listing keeps working and shows the run; drain reports it instead of failing.
    assert RUN in [info.run_id for info in store.runs()]
    assert store.count() == 1
    for run_id, outcome in operations.drain_runs(store=store):
        assert (run_id, outcome.split(PROBLEM)[0]) == (RUN, f'error: run "{RUN}": ')
    operations.discard_run(RUN, store=store)
    assert store.load(RUN) is None
    assert store.list() == [] and store.runs() == []
    assert backend.snapshot_rows(store) == 0


@pytest.mark.parametrize("shape", COLUMN_SHAPES)
@pytest.mark.parametrize("snapshot_backend", stores(*DB_ALIASES), indirect=True)
def test_a_database_row_of_unexpected_shape_is_refused_listed_and_discarded(
    snapshot_backend: Backend, snapshot_store: Any, shape: str
) -> None:
    stored_run(snapshot_backend, snapshot_store, SHAPES[shape])
    check_every_tool(snapshot_backend, snapshot_store, SHAPES[shape])


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("snapshot_backend", stores("memory", "redis"), indirect=True)
def test_a_stored_json_snapshot_of_unexpected_shape_is_refused_listed_and_discarded(
    snapshot_backend: Backend, snapshot_store: Any, shape: str
) -> None:
    stored_run(snapshot_backend, snapshot_store, SHAPES[shape])
    check_every_tool(snapshot_backend, snapshot_store, SHAPES[shape])


@pytest.mark.parametrize("shape", ["unknown-kind", "unknown-status"])
@pytest.mark.parametrize("snapshot_backend", stores("memory", *DB_ALIASES), indirect=True)
def test_the_listing_marks_an_unknown_kind_or_status_as_stored(
    snapshot_backend: Backend, snapshot_store: Any, shape: str
) -> None:
    stored_run(snapshot_backend, snapshot_store, SHAPES[shape])
    (info,) = snapshot_store.runs()
    assert info.unreadable == SHAPES[shape].expected
    stored = SHAPES[shape].changes
    assert (info.kind, info.status) == (
        stored.get("kind", "workflow"),
        stored.get("status", "running"),
    )


@pytest.mark.parametrize("snapshot_backend", stores("memory"), indirect=True)
def test_the_memory_listing_says_why_a_snapshot_cannot_be_read(
    snapshot_backend: Backend, snapshot_store: Any
) -> None:
    shape = SHAPES["steps-is-a-list"]
    stored_run(snapshot_backend, snapshot_store, shape, status="failed", saved_at=OLD)
    (info,) = snapshot_store.runs()
    assert (info.run_id, info.name, info.status) == (RUN, "conformance", "failed")
    assert info.unreadable == shape.expected
    # prune goes by the status and time the row says: an old failed run is pruned.
    assert operations.prune_runs(timedelta(days=1), ["failed"], store=snapshot_store) == 1
    assert snapshot_store.list() == []


@pytest.mark.parametrize("snapshot_backend", stores("redis"), indirect=True)
def test_a_redis_run_whose_summary_is_broken_too_is_listed_cancelled_nothing_and_pruned(
    snapshot_backend: Backend, snapshot_store: Any
) -> None:
    """The Lua scripts read the run's status from its summary: a summary that is not JSON
    must not make them fail (prune, cancel), and the listing falls back to the snapshot."""
    stored_run(snapshot_backend, snapshot_store, SHAPES["steps-is-a-list"], status="failed")
    client = snapshot_backend.redis()
    try:
        client.hset(snapshot_store.key(RUN), "meta", "{not json")
        (info,) = snapshot_store.runs()
        assert (info.status, info.unreadable) == ("failed", SHAPES["steps-is-a-list"].expected)
        assert snapshot_store.request_cancel(RUN) is False
        assert snapshot_store.delete_runs([RUN], ["failed"]) == 1
        assert snapshot_store.list() == []
        # Neither summary nor snapshot is JSON: listed with what is known, then discarded.
        snapshot_store.save(make_snapshot(RUN))
        client.hset(snapshot_store.key(RUN), mapping={"meta": "[", "data": "]"})
        (info,) = snapshot_store.runs()
        assert (info.run_id, info.status, info.name) == (RUN, "?", "?")
        assert info.unreadable.startswith("it is not JSON")
        assert snapshot_store.delete_runs([RUN], ["running", "failed"]) == 0
        operations.discard_run(RUN, store=snapshot_store)
        assert snapshot_store.list() == []
    finally:
        client.close()


@pytest.mark.parametrize("snapshot_backend", backend_params(), indirect=True)
def test_discarding_an_unreadable_run_a_live_worker_holds_is_refused(
    snapshot_backend: Backend, snapshot_store: Any
) -> None:
    """The lease is checked from the lease columns, without reading the snapshot."""
    owner = new_owner_id()  # this live process
    save_claimed(snapshot_store, make_snapshot(RUN), owner)
    break_snapshot(snapshot_backend, snapshot_store, RUN, SHAPES["steps-is-a-list"])
    with pytest.raises(LeaseHeldError, match=f'cannot discard run "{RUN}": it is leased by'):
        operations.discard_run(RUN, store=snapshot_store)
    assert snapshot_store.list() == [RUN]
    assert snapshot_backend.snapshot_rows(snapshot_store) == 1
