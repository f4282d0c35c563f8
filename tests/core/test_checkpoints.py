"""CheckpointRecord's JSON form and the memory checkpoint store's own behaviour (reference
4.2, case 66). The contract shared by every checkpoint store is tested in tests/stores."""

import asyncio
import json
from datetime import UTC, datetime

import pytest

import warlock_ai as ai
from warlock_ai.core.orchestrator.checkpoints import CheckpointRecord, checkpoint_from_json
from warlock_ai.stores.base import CheckpointStore

T0 = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


def record(turn=0, session="sess-1", name="support", **fields):
    values = {
        "orchestrator_name": name,
        "session_id": session,
        "turn_index": turn,
        "state": {"turn": turn, "note": "é✓"},
        "last_route": "billing",
        "signature": "sig-1",
        "version": "1",
        "saved_at": T0,
    }
    return CheckpointRecord(**{**values, **fields})


def test_record_json_round_trip_keeps_every_field():
    rec = record(
        last_route=["a", "b"], summarized_through=3, lock_acquired_at=T0, lock_expires_at=T0
    )
    text = rec.to_json()
    assert json.loads(text)["state"] == {"turn": 0, "note": "é✓"}
    assert checkpoint_from_json(text) == rec
    assert CheckpointRecord.from_dict(rec.to_dict()) == rec


def test_record_json_splices_state_even_when_names_look_like_keys():
    rec = record(session='x"state":null', name='"last_route":null')
    assert checkpoint_from_json(rec.to_json()) == rec


def test_a_non_json_state_names_its_path():
    with pytest.raises(ai.SnapshotSerializationError) as info:
        record(state={"rows": [1, {2, 3}]}).to_json()
    assert info.value.path == "state.rows[1]"


def test_last_route_other_than_str_or_list_of_str_loads_as_none():
    data = record().to_dict()
    data["last_route"] = 42
    assert CheckpointRecord.from_dict(data).last_route is None


def test_memory_store_is_a_checkpoint_store():
    store = ai.checkpoint.memory()
    assert isinstance(store, CheckpointStore)
    assert store.supports_list and store.supports_prune and not store.supports_ttl


def test_memory_store_is_append_only_and_copies():
    store = ai.checkpoint.memory()
    rec = record()
    store.save(rec)
    with pytest.raises(ai.CheckpointConflictError) as info:
        store.save(record(state={"other": True}))
    err = info.value
    assert (err.orchestrator_name, err.session_id, err.turn_index) == ("support", "sess-1", 0)
    assert "support" in str(err) and "sess-1" in str(err) and "turn 0" in str(err)
    loaded = store.load("support", "sess-1")
    assert loaded == rec and loaded.state is not rec.state


def test_memory_store_load_is_the_highest_turn_not_the_last_saved():
    store = ai.checkpoint.memory()
    for turn in (2, 0, 1):
        store.save(record(turn))
    assert store.load("support", "sess-1").turn_index == 2
    assert [r.turn_index for r in store.history("support", "sess-1")] == [0, 1, 2]


def test_memory_store_prune_threshold_and_empty_sessions_leave_the_list():
    store = ai.checkpoint.memory()
    for turn in range(3):
        store.save(record(turn))
    assert store.prune("support", "sess-1", 2) == 2
    assert [r.turn_index for r in store.history("support", "sess-1")] == [2]
    assert store.prune("support", "sess-1", 5) == 1
    assert store.list("support") == []
    assert store.prune("support", "unknown", 1) == 0


@pytest.mark.parametrize("bad", [True, -1, 1.5, "2", None, float("nan")])
def test_memory_store_prune_with_a_non_turn_is_a_no_op(bad):
    store = ai.checkpoint.memory()
    store.save(record(0))
    assert store.prune("support", "sess-1", bad) == 0
    assert len(store.history("support", "sess-1")) == 1


def test_memory_store_list_is_literal_distinct_and_per_name():
    store = ai.checkpoint.memory()
    store.save(record(0, session="sess_1"))
    store.save(record(1, session="sess_1"))
    store.save(record(0, session="sessX1"))
    store.save(record(0, session="Sess_1"))
    store.save(record(0, session="other", name="sales"))
    assert store.list("support") == ["Sess_1", "sessX1", "sess_1"]
    assert store.list("support", "sess_") == ["sess_1"]
    assert store.list("sales") == ["other"]
    assert store.delete("support", "sess_1") == 2
    assert store.load("support", "sess_1") is None


def test_memory_store_async_twins():
    store = ai.checkpoint.memory()

    async def go():
        await store.asave(record(0))
        await store.asave(record(1))
        assert (await store.aload("support", "sess-1")).turn_index == 1
        assert await store.alist("support") == ["sess-1"]
        assert [r.turn_index for r in await store.ahistory("support", "sess-1")] == [0, 1]
        assert await store.aprune("support", "sess-1", 1) == 1
        assert await store.adelete("support", "sess-1") == 1

    asyncio.run(go())
