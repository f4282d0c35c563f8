"""The CheckpointStore contract (SPEC 2, reference 4.2, acceptance case 66), for every store.

Records are append-only: one per ``(orchestrator_name, session_id, turn_index)``; the latest
turn is the session's state. ``prune(name, session, n)`` keeps the turns ``>= n`` everywhere.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from asgiref.sync import sync_to_async

from tests.stores.worker import make_record, wait_for
from warlock_ai.core.errors import CheckpointConflictError, SnapshotSerializationError

FIVE_MB = 5 * 1024 * 1024


def requires(store: Any, capability: str) -> None:
    if not getattr(store, capability):
        pytest.skip(f"{type(store).__name__} declares {capability} = False")


def save_turns(store: Any, turns: Any, session_id: str = "sess-1", name: str = "support"):
    for turn in turns:
        store.save(make_record(turn, session_id, name))


def turns_of(store: Any, session_id: str = "sess-1", name: str = "support") -> list[int]:
    return [record.turn_index for record in store.history(name, session_id)]


# --- load, save, history ------------------------------------------------------------------


def test_unknown_session_loads_none(checkpoint_store):
    assert checkpoint_store.load("support", "nobody") is None
    assert checkpoint_store.history("support", "nobody") == []


def test_round_trip_gives_an_equal_record(checkpoint_store):
    moment = datetime.now(UTC)
    record = dataclasses.replace(
        make_record(0, state={"messages": [{"role": "user", "content": "hi"}], "n": 1.5}),
        summarized_through=3,
        lock_acquired_at=moment,
        lock_expires_at=moment + timedelta(seconds=30),
        turn_key="rq:job:0f3a ☀",
    )
    checkpoint_store.save(record)
    assert checkpoint_store.load("support", "sess-1") == record
    assert checkpoint_store.history("support", "sess-1") == [record]


def test_load_returns_the_latest_turn_not_the_last_saved(checkpoint_store):
    save_turns(checkpoint_store, [0, 2, 1])
    latest = checkpoint_store.load("support", "sess-1")
    assert latest.turn_index == 2 and latest.state == {"turn": 2}


def test_history_is_ascending_by_turn(checkpoint_store):
    save_turns(checkpoint_store, [3, 0, 12, 2, 1])
    assert turns_of(checkpoint_store) == [0, 1, 2, 3, 12]
    assert [r.state for r in checkpoint_store.history("support", "sess-1")] == [
        {"turn": t} for t in (0, 1, 2, 3, 12)
    ]


def test_sessions_are_isolated_by_name_and_id(checkpoint_store):
    store = checkpoint_store
    # Pairs that would share a key if name and id were simply joined with ":" or " ".
    pairs = [("support", "s1"), ("billing", "s1"), ("support", "s2"), ("a:b", "c"), ("a", "b:c")]
    pairs += [("a b", "c"), ("a", "b c")]
    for i, (name, session_id) in enumerate(pairs):
        store.save(make_record(0, session_id, name, state={"pair": i}))
        store.save(make_record(1, session_id, name, state={"pair": i, "turn": 1}))
    for i, (name, session_id) in enumerate(pairs):
        assert [r.state["pair"] for r in store.history(name, session_id)] == [i, i]
        assert store.load(name, session_id).state == {"pair": i, "turn": 1}
    if store.supports_list:
        assert store.list("support") == ["s1", "s2"]
        assert store.list("billing") == ["s1"]
        assert store.list("a") == ["b c", "b:c"]
        assert store.list("a:b") == ["c"]
    assert store.delete("support", "s1") == 2
    assert store.load("billing", "s1").state["pair"] == 1
    assert store.load("support", "s2").state["pair"] == 2


def test_last_route_round_trips_as_list_string_or_none(checkpoint_store):
    routes = [["billing", "refunds"], "billing", None, []]
    for turn, route in enumerate(routes):
        checkpoint_store.save(make_record(turn, last_route=route))
    got = [r.last_route for r in checkpoint_store.history("support", "sess-1")]
    assert got == routes
    assert checkpoint_store.load("support", "sess-1").last_route == []


# --- append-only --------------------------------------------------------------------------


def test_saving_an_existing_turn_raises_and_keeps_the_stored_row(checkpoint_store):
    original = make_record(0, state={"v": "original"})
    checkpoint_store.save(original)
    with pytest.raises(CheckpointConflictError) as info:
        checkpoint_store.save(make_record(0, state={"v": "overwrite"}, last_route="other"))
    err = info.value
    assert (err.orchestrator_name, err.session_id, err.turn_index) == ("support", "sess-1", 0)
    assert "support" in str(err) and "sess-1" in str(err) and "0" in str(err)
    assert checkpoint_store.load("support", "sess-1") == original
    assert checkpoint_store.history("support", "sess-1") == [original]


# --- delete -------------------------------------------------------------------------------


def test_delete_removes_every_row_and_deindexes(checkpoint_store, checkpoint_backend):
    save_turns(checkpoint_store, [0, 1, 2])
    save_turns(checkpoint_store, [0], session_id="sess-2")
    assert checkpoint_store.delete("support", "sess-1") == 3
    assert checkpoint_store.load("support", "sess-1") is None
    assert checkpoint_store.history("support", "sess-1") == []
    if checkpoint_store.supports_list:
        assert checkpoint_store.list("support") == ["sess-2"]
    assert checkpoint_store.delete("support", "sess-1") == 0
    assert checkpoint_store.delete("support", "sess-2") == 1
    if checkpoint_store.supports_list:
        assert checkpoint_store.list("support") == []
    # Nothing is left behind: no row, no key, no index entry.
    assert checkpoint_backend.checkpoint_rows(checkpoint_store) in (0, None)
    # The session can start again from turn 0.
    save_turns(checkpoint_store, [0])
    assert turns_of(checkpoint_store) == [0]


# --- list ---------------------------------------------------------------------------------


def test_list_is_distinct_and_sorted(checkpoint_store):
    requires(checkpoint_store, "supports_list")
    for session_id in ("s-b", "s-a", "S-c", "s-a.2"):
        save_turns(checkpoint_store, range(3), session_id=session_id)
    save_turns(checkpoint_store, [0], session_id="elsewhere", name="billing")
    assert checkpoint_store.list("support") == ["S-c", "s-a", "s-a.2", "s-b"]
    assert checkpoint_store.list("support", "s-a") == ["s-a", "s-a.2"]
    assert checkpoint_store.list("billing") == ["elsewhere"]
    assert checkpoint_store.list("nobody") == []


def test_list_prefix_is_literal(checkpoint_store):
    requires(checkpoint_store, "supports_list")
    sessions = ["sess_1", "sessX1", "sess%1", "sessY%", "s*1", "sX1", "s?1", "s[1]", "s1", "s\\1"]
    for session_id in sessions:
        save_turns(checkpoint_store, [0, 1], session_id=session_id)
    queries = {
        "sess_": ["sess_1"],
        "sess_1": ["sess_1"],
        "sess%": ["sess%1"],
        "s*": ["s*1"],
        "s?": ["s?1"],
        "s[1": ["s[1]"],
        "s\\": ["s\\1"],
        "_": [],
        "%": [],
        "*": [],
    }
    got = {prefix: checkpoint_store.list("support", prefix) for prefix in queries}
    assert got == queries


def test_list_prefix_is_case_sensitive(checkpoint_store):
    requires(checkpoint_store, "supports_list")
    for session_id in ("Sess-A", "sess-b"):
        save_turns(checkpoint_store, [0], session_id=session_id)
    assert checkpoint_store.list("support", "sess") == ["sess-b"]
    assert checkpoint_store.list("support", "Sess") == ["Sess-A"]
    assert checkpoint_store.list("Support") == []


# --- prune --------------------------------------------------------------------------------


def test_prune_keeps_the_turns_from_the_given_index(checkpoint_store):
    requires(checkpoint_store, "supports_prune")
    save_turns(checkpoint_store, range(6))
    save_turns(checkpoint_store, range(6), session_id="sess-2")
    assert checkpoint_store.prune("support", "sess-1", 3) == 3
    assert turns_of(checkpoint_store) == [3, 4, 5]
    assert checkpoint_store.load("support", "sess-1").turn_index == 5
    assert turns_of(checkpoint_store, "sess-2") == [0, 1, 2, 3, 4, 5]
    assert checkpoint_store.prune("support", "sess-1", 3) == 0
    assert checkpoint_store.prune("support", "sess-1", 0) == 0


@pytest.mark.parametrize(
    "keep", ["3", 3.0, True, False, None, -1, float("nan"), float("inf")], ids=repr
)
def test_prune_with_anything_but_a_turn_index_is_a_noop(checkpoint_store, keep):
    requires(checkpoint_store, "supports_prune")
    save_turns(checkpoint_store, range(6))
    assert checkpoint_store.prune("support", "sess-1", keep) == 0
    assert turns_of(checkpoint_store) == [0, 1, 2, 3, 4, 5]


def test_pruning_every_turn_drops_the_session(checkpoint_store):
    requires(checkpoint_store, "supports_prune")
    save_turns(checkpoint_store, range(3))
    save_turns(checkpoint_store, [0], session_id="sess-2")
    assert checkpoint_store.prune("support", "sess-1", 2) == 2
    assert turns_of(checkpoint_store) == [2]
    assert checkpoint_store.prune("support", "sess-1", 10) == 1
    assert checkpoint_store.load("support", "sess-1") is None
    assert checkpoint_store.history("support", "sess-1") == []
    if checkpoint_store.supports_list:
        assert checkpoint_store.list("support") == ["sess-2"]
    assert checkpoint_store.prune("support", "never-saved", 3) == 0


# --- what a record may hold ---------------------------------------------------------------


def test_five_megabyte_state_round_trips(checkpoint_store):
    messages = [{"role": "user", "content": f"Grüße 🎉 {i} " + "x" * 900} for i in range(5900)]
    record = make_record(0, state={"messages": messages})
    assert len(record.to_json().encode()) > FIVE_MB
    checkpoint_store.save(record)
    assert checkpoint_store.load("support", "sess-1") == record


def test_non_ascii_names_ids_and_state_round_trip(checkpoint_store):
    state = {"text": "naïve café 日本語 עברית", "emoji": "🎉👩‍💻", "seps": "a\u2028b\u2029c"}
    record = make_record(0, "sessión-🎉-\u2028", "soporte-ü", state=state, last_route="ruta-é")
    checkpoint_store.save(record)
    assert checkpoint_store.load("soporte-ü", "sessión-🎉-\u2028") == record
    if checkpoint_store.supports_list:
        assert checkpoint_store.list("soporte-ü", "sessión") == ["sessión-🎉-\u2028"]


def test_non_json_state_raises_before_anything_is_written(checkpoint_store, checkpoint_backend):
    with pytest.raises(SnapshotSerializationError):
        checkpoint_store.save(make_record(0, state={"when": datetime.now(UTC)}))
    assert checkpoint_store.load("support", "sess-1") is None
    assert checkpoint_backend.checkpoint_rows(checkpoint_store) in (0, None)
    if checkpoint_store.supports_list:
        assert checkpoint_store.list("support") == []
    save_turns(checkpoint_store, [0])  # turn 0 was not taken by the failed save


# --- async twins --------------------------------------------------------------------------


def test_async_twins_give_the_same_results(checkpoint_store):
    store = checkpoint_store
    records = [make_record(t, "async-1") for t in range(4)]

    async def scenario() -> dict[str, Any]:
        from django.db import connections

        seen: dict[str, Any] = {}
        try:
            seen["missing"] = await store.aload("support", "async-1")
            for record in records:
                await store.asave(record)
            await store.asave(make_record(0, "async-2"))
            try:
                await store.asave(make_record(0, "async-1", state={"v": "again"}))
            except CheckpointConflictError as exc:
                seen["conflict"] = exc
            seen["latest"] = await store.aload("support", "async-1")
            seen["history"] = await store.ahistory("support", "async-1")
            if store.supports_list:
                seen["listed"] = await store.alist("support", "async-")
            if store.supports_prune:
                seen["pruned"] = (
                    await store.aprune("support", "async-1", 2),
                    await store.aprune("support", "async-1", "2"),
                )
            seen["deleted"] = (
                await store.adelete("support", "async-2"),
                await store.adelete("support", "async-2"),
            )
        finally:
            await sync_to_async(connections.close_all)()
            aclose = getattr(store, "aclose", None)
            if aclose is not None:
                await aclose()
        return seen

    seen = asyncio.run(scenario())
    assert seen["missing"] is None
    assert isinstance(seen.get("conflict"), CheckpointConflictError)
    assert seen["latest"] == records[3]
    assert seen["history"] == records
    if store.supports_list:
        assert seen["listed"] == ["async-1", "async-2"]
        assert store.list("support", "async-") == ["async-1"]
    if store.supports_prune:
        assert seen["pruned"] == (2, 0)
        assert store.history("support", "async-1") == records[2:]
    assert seen["deleted"] == (1, 0)


# --- concurrent appends (real processes; threads for the in-process memory store) ---------


def test_two_writers_appending_different_turns_both_land(
    checkpoint_store, checkpoint_backend, writers
):
    jobs = [["append", "support", "shared", *map(str, range(parity, 60, 2))] for parity in (0, 1)]
    results = writers.run(checkpoint_backend, checkpoint_store, jobs)
    assert [r["conflicts"] for r in results] == [[], []]
    history = checkpoint_store.history("support", "shared")
    assert [r.turn_index for r in history] == list(range(60))
    for record in history:
        assert record.state["writer"] == results[record.turn_index % 2]["writer"]
    assert checkpoint_store.load("support", "shared").turn_index == 59
    if checkpoint_store.supports_list:
        assert checkpoint_store.list("support") == ["shared"]


def test_two_writers_appending_the_same_turns_land_each_once(
    checkpoint_store, checkpoint_backend, writers
):
    job = ["append", "support", "contested", *map(str, range(40))]
    first, second = writers.run(checkpoint_backend, checkpoint_store, [job, job])
    assert sorted(first["landed"] + second["landed"]) == list(range(40))
    assert sorted(first["conflicts"] + second["conflicts"]) == list(range(40))
    assert not set(first["landed"]) & set(second["landed"])
    history = checkpoint_store.history("support", "contested")
    assert [r.turn_index for r in history] == list(range(40))
    owner = {t: first["writer"] for t in first["landed"]}
    owner.update({t: second["writer"] for t in second["landed"]})
    assert all(record.state["writer"] == owner[record.turn_index] for record in history)


# --- TTL (a capability) -------------------------------------------------------------------


def test_ttl_expires_the_session(checkpoint_store, checkpoint_backend):
    requires(checkpoint_store, "supports_ttl")
    store = checkpoint_backend.checkpoint_store(ttl=1)
    save_turns(store, range(3), session_id="ttl-1")
    assert turns_of(store, "ttl-1") == [0, 1, 2]
    started = time.monotonic()
    wait_for(lambda: store.load("support", "ttl-1") is None, timeout=5, what="the expiry")
    assert time.monotonic() - started < 3
    assert store.history("support", "ttl-1") == []
    if store.supports_list:
        assert store.list("support") == []


# --- append: a turn's row and its prune ----------------------------------------------------


def test_append_saves_then_prunes_below_the_kept_turns(checkpoint_store):
    save_turns(checkpoint_store, range(4))
    checkpoint_store.append(make_record(4), prune_below=2)
    assert turns_of(checkpoint_store) == [2, 3, 4]
    checkpoint_store.append(make_record(5))  # no prune asked
    assert turns_of(checkpoint_store) == [2, 3, 4, 5]
    save_turns(checkpoint_store, [0], session_id="other")
    checkpoint_store.append(make_record(6), prune_below=6)
    assert turns_of(checkpoint_store) == [6] and turns_of(checkpoint_store, "other") == [0]


def test_an_append_of_an_existing_turn_raises_and_prunes_nothing(checkpoint_store):
    save_turns(checkpoint_store, range(3))
    with pytest.raises(CheckpointConflictError):
        checkpoint_store.append(make_record(2, state={"other": True}), prune_below=2)
    assert turns_of(checkpoint_store) == [0, 1, 2]
    assert checkpoint_store.load("support", "sess-1").state == make_record(2).state


def test_aappend(checkpoint_store):
    async def main() -> None:
        try:
            await checkpoint_store.aappend(make_record(0))
            await checkpoint_store.aappend(make_record(1), prune_below=1)
        finally:
            await sync_to_async(_close_connections)()

    asyncio.run(main())
    assert turns_of(checkpoint_store) == [1]


def _close_connections() -> None:
    from django.db import connections

    connections.close_all()
