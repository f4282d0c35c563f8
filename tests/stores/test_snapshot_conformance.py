"""The SnapshotStore contract (SPEC 2, reference 4.1, acceptance case 65), for every store.

Each test runs against memory, SQLite, PostgreSQL 16 + pgvector, PostgreSQL 15 and Redis
(see conftest.py). Only a capability a store declares it lacks (``supports_*``) skips a test.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any

import pytest
from asgiref.sync import sync_to_async

import warlock_ai as ai
from tests.stores.worker import make_snapshot, wait_for
from warlock_ai.core.errors import SnapshotSerializationError

FIVE_MB = 5 * 1024 * 1024
NON_ASCII = {
    "text": "naïve café — Grüße, 日本語, Ελληνικά, עברית, العربية",
    "emoji": "🎉🐍👩‍💻🇫🇷",
    "separators": "line\u2028para\u2029end",
    "escapes": 'quote " backslash \\ tab \t newline \n',
    "zero width": "a\u200bb\ufeffc",
    "clé 🔑": ["ü", "é", "ß", "\U0001f600"],
}


def requires(store: Any, capability: str) -> None:
    if not getattr(store, capability):
        pytest.skip(f"{type(store).__name__} declares {capability} = False")


def engine_snapshot(run_id: str) -> ai.WorkflowSnapshot:
    """A real snapshot, as the engine writes it: steps, usage, fingerprint, input."""
    scratch = ai.snapshot.memory()

    def fetch(ctx):
        ctx.state["rows"] = [{"sku": "a-1", "title": "Lämp ☀"}, {"sku": "b-2", "title": None}]

    def count(ctx):
        ctx.state["count"] = len(ctx.state["rows"])

    wf = ai.workflow(
        name="conformance",
        version="3",
        steps=[ai.step("fetch", fetch), ai.step("count", count)],
        snapshot_store=scratch,
    )
    assert wf.execute({"vendor": "v1", "limit": 2}, run_id=run_id).status == "completed"
    return scratch.load(run_id)


def bulky_state(size: int = FIVE_MB) -> dict[str, Any]:
    row = {"title": "Lämp ☀ 🎉 \u2028", "body": "x" * 900, "n": 0}
    rows = [{**row, "n": i} for i in range(size // 900 + 1)]
    return {"rows": rows, "tail": "ü" * 1000}


# --- load, save, delete -------------------------------------------------------------------


def test_unknown_run_id_loads_none(snapshot_store):
    assert snapshot_store.load("no-such-run") is None


def test_round_trip_gives_an_equal_snapshot(snapshot_store):
    original = engine_snapshot("rt-1")
    snapshot_store.save(original)
    loaded = snapshot_store.load("rt-1")
    assert isinstance(loaded, ai.WorkflowSnapshot)
    assert loaded == original
    assert loaded.to_dict() == original.to_dict()
    assert loaded.steps["fetch"].status == "completed"


def test_second_save_overwrites_and_keeps_one_row(snapshot_store, snapshot_backend):
    first = make_snapshot("ow-1", {"version": 1})
    second = make_snapshot("ow-1", {"version": 2}, status="completed", next=None)
    snapshot_store.save(first)
    snapshot_store.save(second)
    assert snapshot_store.load("ow-1") == second
    assert snapshot_backend.snapshot_rows(snapshot_store) == 1


def test_delete_is_true_then_false(snapshot_store):
    snapshot_store.save(make_snapshot("del-1"))
    snapshot_store.save(make_snapshot("del-2"))
    assert snapshot_store.delete("del-1") is True
    assert snapshot_store.delete("del-1") is False
    assert snapshot_store.load("del-1") is None
    assert snapshot_store.load("del-2") is not None
    assert snapshot_store.delete("never-saved") is False


# --- list ---------------------------------------------------------------------------------


def test_list_all_and_by_prefix(snapshot_store):
    requires(snapshot_store, "supports_list")
    ids = ["sess-2.a", "sess-1.b", "sess-10.a", "sess-1.a", "other"]
    for run_id in ids:
        snapshot_store.save(make_snapshot(run_id))
    assert snapshot_store.list() == sorted(ids)
    assert snapshot_store.list("sess-1.") == ["sess-1.a", "sess-1.b"]
    assert snapshot_store.list("sess-1") == ["sess-1.a", "sess-1.b", "sess-10.a"]
    assert snapshot_store.list("nothing") == []


LITERAL_IDS = [
    "sess_1.a",
    "sessX1.b",
    "sess%1.c",
    "sess%X.d",
    "sessY%.e",
    "a*b.1",
    "aXb.2",
    "a?b.3",
    "a[b]c.4",
    "abc.5",
    "a\\b.6",
    "a\\\\b.7",
]
LITERAL_QUERIES = {
    "sess_1": ["sess_1.a"],
    "sess%": ["sess%1.c", "sess%X.d"],
    "sess%1": ["sess%1.c"],
    "a*b": ["a*b.1"],
    "a*": ["a*b.1"],
    "a?b": ["a?b.3"],
    "a[b]": ["a[b]c.4"],
    "a[": ["a[b]c.4"],
    "a\\": ["a\\\\b.7", "a\\b.6"],  # sorted by code point: "\\" < "b"
    "a\\\\": ["a\\\\b.7"],
    "_": [],
    "%": [],
    "*": [],
    "?": [],
    "[": [],
}


def test_list_prefix_is_literal(snapshot_store):
    """``_ % * ? [ ] \\`` in a prefix are characters, not LIKE or glob wildcards."""
    requires(snapshot_store, "supports_list")
    for run_id in LITERAL_IDS:
        snapshot_store.save(make_snapshot(run_id))
    got = {prefix: snapshot_store.list(prefix) for prefix in LITERAL_QUERIES}
    assert got == LITERAL_QUERIES


def test_list_prefix_is_case_sensitive(snapshot_store):
    requires(snapshot_store, "supports_list")
    for run_id in ("Run-A", "run-b", "RUN-c"):
        snapshot_store.save(make_snapshot(run_id))
    got = {prefix: snapshot_store.list(prefix) for prefix in ("run", "Run", "RUN", "rUN")}
    assert got == {"run": ["run-b"], "Run": ["Run-A"], "RUN": ["RUN-c"], "rUN": []}


# --- what a snapshot may hold -------------------------------------------------------------


def test_five_megabyte_state_round_trips(snapshot_store):
    state = bulky_state()
    snapshot = make_snapshot("big-1", state)
    assert len(snapshot.to_json().encode()) > FIVE_MB
    snapshot_store.save(snapshot)
    assert snapshot_store.load("big-1") == snapshot


def test_non_ascii_text_round_trips(snapshot_store):
    # (A line separator in the id itself is refused, as every unprintable character is: the
    # id is echoed to terminals. It stays in the stored text below.)
    run_id = "run-ünï-🎉-ß"
    snapshot = make_snapshot(run_id, NON_ASCII, input={"q": "¿qué? 🤔"}, next="étape-2")
    snapshot_store.save(snapshot)
    loaded = snapshot_store.load(run_id)
    assert loaded == snapshot
    assert loaded.state["separators"] == "line\u2028para\u2029end"
    if snapshot_store.supports_list:
        assert snapshot_store.list("run-ünï") == [run_id]


def test_non_json_state_raises_before_anything_is_written(snapshot_store, snapshot_backend):
    bad = make_snapshot("bad-1", {"ok": 1, "nested": {"when": object()}})
    with pytest.raises(SnapshotSerializationError) as info:
        snapshot_store.save(bad)
    assert info.value.path.startswith("state")
    assert snapshot_store.load("bad-1") is None
    assert snapshot_backend.snapshot_rows(snapshot_store) == 0

    good = make_snapshot("bad-2", {"version": 1})
    snapshot_store.save(good)
    with pytest.raises(SnapshotSerializationError):
        snapshot_store.save(make_snapshot("bad-2", {"version": 2, "nan": float("nan")}))
    assert snapshot_store.load("bad-2") == good


# --- async twins --------------------------------------------------------------------------


def test_async_twins_give_the_same_results(snapshot_store):
    store = snapshot_store
    first, second = make_snapshot("async-1", {"n": 1}), make_snapshot("async-2", {"n": 2})

    async def scenario() -> dict[str, Any]:
        from django.db import connections

        try:
            seen = {"missing": await store.aload("async-0")}
            await store.asave(first)
            await store.asave(second)
            await store.asave(dataclasses.replace(second, state={"n": 3}))
            seen["loaded"] = await store.aload("async-1")
            seen["replaced"] = await store.aload("async-2")
            if store.supports_list:
                seen["listed"] = await store.alist("async-")
                seen["none"] = await store.alist("async-9")
            seen["deleted"] = (await store.adelete("async-1"), await store.adelete("async-1"))
            seen["after"] = await store.aload("async-1")
        finally:
            # sync_to_async twins ran in asgiref's thread: close its database connection.
            await sync_to_async(connections.close_all)()
            aclose = getattr(store, "aclose", None)
            if aclose is not None:
                await aclose()
        return seen

    seen = asyncio.run(scenario())
    assert seen["missing"] is None
    assert seen["loaded"] == first
    assert seen["replaced"] == store.load("async-2")
    assert seen["replaced"].state == {"n": 3}
    if store.supports_list:
        assert seen["listed"] == ["async-1", "async-2"]
        assert seen["none"] == []
        assert store.list("async-") == ["async-2"]
    assert seen["deleted"] == (True, False)
    assert seen["after"] is None and store.load("async-1") is None


# --- concurrent writers (real processes; threads for the in-process memory store) ---------


def test_two_writers_to_distinct_runs_all_land(snapshot_store, snapshot_backend, writers):
    jobs = [["snapshots", *(f"w{w}-{i:02d}" for i in range(50))] for w in range(2)]
    results = writers.run(snapshot_backend, snapshot_store, jobs)
    expected = sorted(run_id for job in jobs for run_id in job[1:])
    assert sorted(run_id for r in results for run_id in r["saved"]) == expected
    if snapshot_store.supports_list:
        assert snapshot_store.list() == expected
    assert snapshot_backend.snapshot_rows(snapshot_store) == 100
    for job, result in zip(jobs, results, strict=True):
        for i, run_id in enumerate(job[1:]):
            assert snapshot_store.load(run_id).state == {"writer": result["writer"], "i": i}


def test_two_writers_hammering_one_run_leave_one_valid_snapshot(
    snapshot_store, snapshot_backend, writers
):
    results = writers.run(snapshot_backend, snapshot_store, [["hammer", "shared", "50"]] * 2)
    assert [r["torn"] for r in results] == [[], []], "a read saw a partial snapshot"
    assert snapshot_backend.snapshot_rows(snapshot_store) == 1
    if snapshot_store.supports_list:
        assert snapshot_store.list() == ["shared"]
    state = snapshot_store.load("shared").state
    # Each writer's last save is i=49: whichever landed last, the row is one whole write.
    assert state["writer"] in {r["writer"] for r in results}
    assert state["i"] == 49
    assert state["check"] == f"{state['writer']}/49" and state["pad"] == "é" * 249


# --- TTL (a capability) -------------------------------------------------------------------


def test_ttl_expires_the_snapshot(snapshot_store, snapshot_backend):
    requires(snapshot_store, "supports_ttl")
    store = snapshot_backend.snapshot_store(ttl=1)
    store.save(make_snapshot("ttl-1"))
    assert store.load("ttl-1") is not None
    started = time.monotonic()
    wait_for(lambda: store.load("ttl-1") is None, timeout=5, what="the snapshot to expire")
    assert time.monotonic() - started < 3
    if store.supports_list:
        assert store.list("ttl-") == []
