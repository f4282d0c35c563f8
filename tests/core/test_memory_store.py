"""The memory snapshot store: the SnapshotStore contract, in-process (reference 4.1, case 65)."""

import asyncio
import json

import warlock_ai as ai
from warlock_ai.stores.base import SnapshotStore


def run_once(store, run_id="sess-1.a"):
    wf = ai.workflow(name="w", steps=[ai.step("a", lambda ctx: ctx.state.update(n="é✓"))])
    wf = ai.workflow(name="w", steps=wf.steps, snapshot_store=store)
    assert wf.execute({"q": 1}, run_id=run_id).error is None
    return wf


def test_memory_store_implements_the_contract():
    store = ai.snapshot.memory()
    assert isinstance(store, SnapshotStore)
    assert store.supports_list and store.supports_leases


def test_unknown_id_is_none_and_round_trip_is_equal():
    store = ai.snapshot.memory()
    assert store.load("nope") is None
    run_once(store)
    snap = store.load("sess-1.a")
    assert snap.state == {"n": "é✓"} and snap.input == {"q": 1}
    store.save(snap)
    again = store.load("sess-1.a")
    assert again == snap
    assert again is not snap and again.state is not snap.state


def test_second_save_overwrites_and_delete_removes():
    store = ai.snapshot.memory()
    run_once(store)
    run_once(store)
    assert store.list() == ["sess-1.a"] and len(store) == 1
    assert store.delete("sess-1.a") is True
    assert store.delete("sess-1.a") is False
    assert store.load("sess-1.a") is None


def test_list_filters_by_literal_prefix():
    store = ai.snapshot.memory()
    for run_id in ("sess-1.a", "sess-1.b", "sess-2.a", "sess_1.c", "sessX1.d"):
        run_once(store, run_id)
    assert store.list() == ["sess-1.a", "sess-1.b", "sess-2.a", "sessX1.d", "sess_1.c"]
    assert store.list("sess-1.") == ["sess-1.a", "sess-1.b"]
    assert store.list("sess_1") == ["sess_1.c"]


def test_stored_form_is_json_text():
    store = ai.snapshot.memory()
    run_once(store)
    data = json.loads(store._data["sess-1.a"])
    assert data["kind"] == "workflow" and data["status"] == "completed"
    assert data["steps"]["a"]["status"] == "completed"


def test_async_twins():
    async def go():
        store = ai.snapshot.memory()
        run_once(store)
        snap = await store.aload("sess-1.a")
        await store.asave(snap)
        assert await store.alist("sess") == ["sess-1.a"]
        assert await store.adelete("sess-1.a") is True
        assert await store.aload("sess-1.a") is None

    asyncio.run(go())
