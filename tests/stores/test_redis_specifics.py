"""What only the Redis stores have: key layout, TTLs, the Lua scripts, URLs in errors.

The shared contract (load/save/list/prune/leases for every store) is the conformance suite's;
these tests look at the keys themselves through a raw client.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import redis
import redis.asyncio as aioredis

import warlock_ai.snapshot as snapshot_factories
from warlock_ai.core.errors import (
    CheckpointConflictError,
    LeaseHeldError,
    LeaseLostError,
    StoreError,
)
from warlock_ai.core.orchestrator.checkpoints import CheckpointRecord
from warlock_ai.core.runs.leases import LeaseClaim, new_owner_id, owner_is_dead
from warlock_ai.core.workflow.snapshot import WorkflowSnapshot
from warlock_ai.stores.redis import (
    RedisCheckpointStore,
    RedisSnapshotStore,
    client_url,
    glob_escape,
    hide_password,
)

pytestmark = pytest.mark.services

CLOSED_URL = "redis://worker:s3cret@127.0.0.1:1/0"


@pytest.fixture
def raw(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def prefix(raw: redis.Redis) -> Iterator[str]:
    """A fresh key prefix (with glob metacharacters in it); its keys are removed afterwards."""
    value = f"test:{uuid.uuid4().hex[:10]}:[*]:"
    yield value
    keys = list(raw.scan_iter(match=glob_escape(value) + "*"))
    if keys:
        raw.delete(*keys)


@pytest.fixture
def snapshots(redis_url: str, prefix: str) -> Iterator[RedisSnapshotStore]:
    store = RedisSnapshotStore(url=redis_url, prefix=prefix)
    yield store
    store.close()


@pytest.fixture
def checkpoints(redis_url: str, prefix: str) -> Iterator[RedisCheckpointStore]:
    store = RedisCheckpointStore(url=redis_url, prefix=prefix)
    yield store
    store.close()


def save(store: RedisSnapshotStore, run_id: str, claim: LeaseClaim | None = None, **state):
    return store.save(make_snapshot(run_id, **state), claim=claim)


async def asave(store: RedisSnapshotStore, run_id: str, claim: LeaseClaim | None = None, **state):
    return await store.asave(make_snapshot(run_id, **state), claim=claim)


def make_snapshot(run_id: str, **state) -> WorkflowSnapshot:
    now = datetime.now(UTC)
    snapshot = WorkflowSnapshot(
        run_id=run_id,
        workflow_name="flow",
        signature="sig",
        version=None,
        input={"n": 1},
        state=state,
        steps={},
        next=None,
        status="running",
        started_at=now,
        saved_at=now,
    )
    return snapshot


def make_record(turn: int, session: str = "s-1", name: str = "triage") -> CheckpointRecord:
    return CheckpointRecord(name, session, turn, {"turn": turn}, ["a", "b"], "sig", "v1")


# --- construction ------------------------------------------------------------------------


@pytest.mark.parametrize("store_class", [RedisSnapshotStore, RedisCheckpointStore])
def test_exactly_one_of_client_or_url(store_class, redis_url: str, raw: redis.Redis) -> None:
    with pytest.raises(TypeError, match=r"exactly one of client= .* or url=.*got neither"):
        store_class()
    with pytest.raises(TypeError, match="got both"):
        store_class(client=raw, url=redis_url)
    with pytest.raises(TypeError, match=r"pass a redis\.asyncio\.Redis as async_client="):
        store_class(client=aioredis.Redis())
    with pytest.raises(ValueError, match="ttl must be None"):
        store_class(url=redis_url, ttl=0)


def test_factory_builds_the_store(redis_url: str, prefix: str) -> None:
    store = snapshot_factories.redis(url=redis_url, prefix=prefix, lease_seconds=7, ttl=60)
    assert isinstance(store, RedisSnapshotStore)
    assert (store.prefix, store.lease_seconds, store.ttl) == (prefix, 7, 60)
    assert store.supports_leases and store.supports_ttl and store.supports_list


# --- snapshots: layout, TTL, literal prefixes ---------------------------------------------


def test_snapshot_key_is_a_hash_with_data_and_lease(
    snapshots: RedisSnapshotStore, raw: redis.Redis, prefix: str
) -> None:
    save(snapshots, "run:1", LeaseClaim("me", "acquire"), note="é")
    stored = raw.hgetall(f"{prefix}run:1")
    assert set(stored) == {b"data", b"meta", b"saved_at", b"lease_owner", b"lease_expires_at"}
    assert stored[b"lease_owner"] == b"me"
    meta = json.loads(stored[b"meta"])
    assert (meta["kind"], meta["name"], meta["status"]) == ("workflow", "flow", "running")
    assert meta["saved_at"] == json.loads(stored[b"data"])["saved_at"]
    expires_ms = int(stored[b"lease_expires_at"])
    assert abs(expires_ms / 1000 - (time.time() + 300)) < 5
    assert snapshots.load("run:1").state == {"note": "é"}
    assert raw.ttl(f"{prefix}run:1") == -1  # no ttl: never expires

    save(snapshots, "run:1", LeaseClaim("me", "release"))
    assert set(raw.hgetall(f"{prefix}run:1")) == {b"data", b"meta", b"saved_at"}
    assert snapshots.lease("run:1") is None


def test_snapshot_ttl_is_set_on_every_write(redis_url: str, raw: redis.Redis, prefix: str) -> None:
    store = RedisSnapshotStore(url=redis_url, prefix=prefix, ttl=120)
    save(store, "r")
    assert 110 < raw.ttl(f"{prefix}r") <= 120
    raw.expire(f"{prefix}r", 5)
    save(store, "r", LeaseClaim("me", "acquire"))
    assert 110 < raw.ttl(f"{prefix}r") <= 120


def test_list_matches_glob_metacharacters_literally(
    snapshots: RedisSnapshotStore, raw: redis.Redis, prefix: str
) -> None:
    ids = ["a*", "a?c", "a[b]", "a\\d", "abc", "ab", "sess_1", "sessX1", "é-1"]
    for run_id in ids:
        save(snapshots, run_id)
    raw.set("unrelated:abc", "x")  # outside the prefix
    try:
        assert snapshots.list() == sorted(ids)
        assert snapshots.list("a*") == ["a*"]
        assert snapshots.list("a?") == ["a?c"]
        assert snapshots.list("a[") == ["a[b]"]
        assert snapshots.list("a[b]") == ["a[b]"]
        assert snapshots.list("a\\") == ["a\\d"]
        assert snapshots.list("ab") == ["ab", "abc"]
        assert snapshots.list("sess_") == ["sess_1"]
        assert snapshots.list("é") == ["é-1"]
        assert snapshots.list("zzz") == []
    finally:
        raw.delete("unrelated:abc")


def test_user_client_with_decoded_responses(redis_url: str, prefix: str) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    store = RedisSnapshotStore(client=client, prefix=prefix)
    save(store, "r-1", LeaseClaim("me", "acquire"))
    assert store.load("r-1").run_id == "r-1"
    assert store.list() == ["r-1"]
    assert store.lease("r-1")[0] == "me"
    client.close()


# --- snapshots: the lease script ------------------------------------------------------------


def test_acquire_is_atomic_under_concurrency(redis_url: str, prefix: str) -> None:
    workers = 8
    barrier = threading.Barrier(workers)
    outcomes: list[str] = []

    def acquire(owner: str) -> None:
        store = RedisSnapshotStore(url=redis_url, prefix=prefix)
        store.load("warm-up")  # connect before the barrier
        barrier.wait()
        try:
            save(store, "contended", LeaseClaim(owner, "acquire"))
            outcomes.append(f"won:{owner}")
        except LeaseHeldError:
            outcomes.append("held")

    threads = [threading.Thread(target=acquire, args=(f"w{i}",)) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [o for o in outcomes if o.startswith("won:")]
    assert len(winners) == 1 and outcomes.count("held") == workers - 1
    holder = RedisSnapshotStore(url=redis_url, prefix=prefix).lease("contended")
    assert holder is not None and f"won:{holder[0]}" == winners[0]


def test_expired_lease_is_taken_over_and_the_old_owner_is_fenced(
    redis_url: str, prefix: str
) -> None:
    store = RedisSnapshotStore(url=redis_url, prefix=prefix, lease_seconds=0.05)
    save(store, "r", LeaseClaim("old", "acquire"), by="old")
    with pytest.raises(LeaseHeldError):
        save(RedisSnapshotStore(url=redis_url, prefix=prefix), "r", LeaseClaim("new", "acquire"))
    time.sleep(0.1)
    save(store, "r", LeaseClaim("new", "acquire"), by="new")
    with pytest.raises(LeaseLostError, match=r"this worker \(old\) lost its lease to new") as info:
        save(store, "r", LeaseClaim("old", "renew"), by="old again")
    assert info.value.owner == "new"
    assert store.load("r").state == {"by": "new"}


def test_dead_local_holder_is_taken_over_at_once(snapshots: RedisSnapshotStore) -> None:
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], check=True,
                           capture_output=True, text=True)  # fmt: skip
    dead_owner = f"{new_owner_id().rsplit(':', 2)[0]}:{child.stdout.strip()}:deadbeef"
    assert owner_is_dead(dead_owner)
    save(snapshots, "r", LeaseClaim(dead_owner, "acquire"))
    save(snapshots, "r", LeaseClaim("alive", "acquire"), by="alive")
    assert snapshots.lease("r")[0] == "alive"
    assert snapshots.load("r").state == {"by": "alive"}


def test_renew_of_a_deleted_run_is_lost_to_nobody(snapshots: RedisSnapshotStore) -> None:
    save(snapshots, "r", LeaseClaim("me", "acquire"))
    assert snapshots.delete("r") is True
    with pytest.raises(LeaseLostError, match="no longer holds its lease"):
        save(snapshots, "r", LeaseClaim("me", "renew"))
    assert snapshots.load("r") is None
    assert snapshots.delete("r") is False


def test_unclaimed_save_leaves_the_lease_alone(snapshots: RedisSnapshotStore) -> None:
    save(snapshots, "r", LeaseClaim("me", "acquire"))
    before = snapshots.lease("r")
    save(snapshots, "r", None, migrated=True)
    assert snapshots.lease("r") == before
    assert snapshots.load("r").state == {"migrated": True}


# --- checkpoints: layout, TTL, atomic appends -------------------------------------------------


def test_checkpoint_key_layout(
    checkpoints: RedisCheckpointStore, raw: redis.Redis, prefix: str
) -> None:
    checkpoints.save(make_record(0, session="s:1"))
    checkpoints.save(make_record(1, session="s:1"))
    rows, turns, index = checkpoints.keys("triage", "s:1")
    assert rows == f"{prefix}rows:6:triage:3:s:1"
    assert turns == f"{prefix}turns:6:triage:3:s:1"
    assert index == f"{prefix}sessions:6:triage"
    assert raw.type(rows) == b"hash" and sorted(raw.hkeys(rows)) == [b"0", b"1"]
    assert raw.zrange(turns, 0, -1, withscores=True) == [(b"0", 0.0), (b"1", 1.0)]
    assert raw.smembers(index) == {b"s:1"}
    for key in (rows, turns, index):
        assert raw.ttl(key) == -1


def test_colons_in_names_and_sessions_do_not_collide(checkpoints: RedisCheckpointStore) -> None:
    checkpoints.save(make_record(0, name="a:b", session="c"))
    checkpoints.save(make_record(0, name="a", session="b:c"))
    assert checkpoints.keys("a:b", "c") != checkpoints.keys("a", "b:c")
    assert checkpoints.list("a:b") == ["c"]
    assert checkpoints.list("a") == ["b:c"]
    assert checkpoints.load("a", "b:c").orchestrator_name == "a"


def test_checkpoint_ttl_on_every_key(redis_url: str, raw: redis.Redis, prefix: str) -> None:
    store = RedisCheckpointStore(url=redis_url, prefix=prefix, ttl=90)
    store.save(make_record(0))
    for key in store.keys("triage", "s-1"):
        assert 80 < raw.ttl(key) <= 90


def test_expired_sessions_leave_the_index(redis_url: str, raw: redis.Redis, prefix: str) -> None:
    store = RedisCheckpointStore(url=redis_url, prefix=prefix, ttl=90)
    store.save(make_record(0, session="gone"))
    store.save(make_record(0, session="kept"))
    rows, turns, index = store.keys("triage", "gone")
    raw.delete(rows, turns)  # what expiry does
    assert store.list("triage") == ["kept"]
    assert raw.smembers(index) == {b"kept"}


def test_same_turn_from_many_threads_lands_once(redis_url: str, prefix: str) -> None:
    workers = 8
    barrier = threading.Barrier(workers)
    outcomes: list[str] = []

    def append(i: int) -> None:
        store = RedisCheckpointStore(url=redis_url, prefix=prefix)
        store.load("warm", "up")
        barrier.wait()
        try:
            store.save(CheckpointRecord("triage", "s", 3, {"by": i}, None, "sig", None))
            outcomes.append("saved")
        except CheckpointConflictError:
            outcomes.append("conflict")
        store.save(make_record(100 + i, session="s"))  # distinct turns all land

    threads = [threading.Thread(target=append, args=(i,)) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["conflict"] * (workers - 1) + ["saved"]
    store = RedisCheckpointStore(url=redis_url, prefix=prefix)
    turns = [r.turn_index for r in store.history("triage", "s")]
    assert turns == [3, *range(100, 100 + workers)]


def test_prune_that_empties_a_session_unindexes_it(
    checkpoints: RedisCheckpointStore, raw: redis.Redis
) -> None:
    for turn in range(3):
        checkpoints.save(make_record(turn))
    assert checkpoints.prune("triage", "s-1", 1) == 1
    assert raw.zrange(checkpoints.keys("triage", "s-1")[1], 0, -1) == [b"1", b"2"]
    assert checkpoints.prune("triage", "s-1", 10) == 2
    assert checkpoints.list("triage") == []
    for key in checkpoints.keys("triage", "s-1"):
        assert not raw.exists(key)


# --- errors ------------------------------------------------------------------------------


def _assert_one_clear_line(error: StoreError, operation: str, key: str) -> None:
    message = str(error)
    assert "\n" not in message
    assert f"Redis {operation} of key" in message and key in message
    assert "redis://worker:***@127.0.0.1:1/0" in message
    assert "s3cret" not in message
    assert isinstance(error.__cause__, redis.ConnectionError)


def test_connection_errors_name_operation_key_and_url() -> None:
    snapshots = RedisSnapshotStore(url=CLOSED_URL, prefix="p:")
    cases = [
        ("load", "p:r", lambda: snapshots.load("r")),
        ("save", "p:r", lambda: save(snapshots, "r")),
        ("delete", "p:r", lambda: snapshots.delete("r")),
        ("list", "p:x*", lambda: snapshots.list("x")),
    ]
    checkpoints = RedisCheckpointStore(url=CLOSED_URL, prefix="c:")
    rows = checkpoints.keys("o", "s")[0]
    cases += [
        ("checkpoint save", rows, lambda: checkpoints.save(make_record(0, "s", "o"))),
        ("checkpoint load", rows, lambda: checkpoints.load("o", "s")),
    ]
    for operation, key, call in cases:
        with pytest.raises(StoreError) as info:
            call()
        _assert_one_clear_line(info.value, operation, key)


async def test_async_connection_errors_are_store_errors() -> None:
    store = RedisSnapshotStore(url=CLOSED_URL, prefix="p:")
    with pytest.raises(StoreError) as info:
        await asave(store, "r")
    _assert_one_clear_line(info.value, "save", "p:r")
    checkpoints = RedisCheckpointStore(url=CLOSED_URL, prefix="c:")
    with pytest.raises(StoreError) as info:
        await checkpoints.ahistory("o", "s")
    _assert_one_clear_line(info.value, "checkpoint history", checkpoints.keys("o", "s")[0])


def test_urls_hide_passwords() -> None:
    assert hide_password("redis://:pw@h:6379/1") == "redis://:***@h:6379/1"
    assert hide_password("rediss://u:pw@h/0") == "rediss://u:***@h/0"
    assert hide_password("unix:///tmp/r.sock?db=2&password=pw") == (
        "unix:///tmp/r.sock?db=2&password=***"
    )
    assert hide_password("redis://h:6379/0") == "redis://h:6379/0"
    client = redis.Redis(host="h", port=7000, db=3, username="u", password="pw")
    assert client_url(client) == "redis://u:***@h:7000/3"


def test_client_mode_errors_name_the_server() -> None:
    client = redis.Redis(host="127.0.0.1", port=1, username="worker", password="s3cret")
    with pytest.raises(StoreError) as info:
        RedisSnapshotStore(client=client, prefix="p:").load("r")
    _assert_one_clear_line(info.value, "load", "p:r")


# --- async twins ---------------------------------------------------------------------------


async def test_snapshot_async_twins(redis_url: str, raw: redis.Redis, prefix: str) -> None:
    store = RedisSnapshotStore(url=redis_url, prefix=prefix, ttl=60)
    try:
        await asave(store, "r?1", LeaseClaim("me", "acquire"), x=1)
        await asave(store, "r21")
        assert 50 < raw.ttl(f"{prefix}r?1") <= 60
        assert (await store.aload("r?1")).state == {"x": 1}
        assert await store.alist("r?") == ["r?1"]
        assert (await store.alease("r?1"))[0] == "me"
        with pytest.raises(LeaseHeldError):
            await asave(store, "r?1", LeaseClaim("other", "acquire"))
        with pytest.raises(LeaseLostError):
            await asave(store, "r?1", LeaseClaim("other", "renew"))
        assert await store.adelete("r?1") is True
        assert await store.aload("r?1") is None
    finally:
        await store.aclose()


async def test_checkpoint_async_twins(redis_url: str, prefix: str) -> None:
    store = RedisCheckpointStore(url=redis_url, prefix=prefix)
    try:
        for turn in (2, 0, 1):
            await store.asave(make_record(turn, session="a*"))
        await store.asave(make_record(0, session="ab"))
        with pytest.raises(CheckpointConflictError):
            await store.asave(make_record(1, session="a*"))
        assert (await store.aload("triage", "a*")).turn_index == 2
        assert [r.turn_index for r in await store.ahistory("triage", "a*")] == [0, 1, 2]
        assert await store.alist("triage", "a*") == ["a*"]
        assert await store.aprune("triage", "a*", 2) == 2
        assert await store.aprune("triage", "a*", -1) == 0
        assert await store.adelete("triage", "a*") == 1
        assert await store.alist("triage") == ["ab"]
    finally:
        await store.aclose()


def test_each_event_loop_gets_its_own_async_client(redis_url: str, prefix: str) -> None:
    store = RedisSnapshotStore(url=redis_url, prefix=prefix)

    async def save_and_load(run_id: str) -> tuple[object, str]:
        await asave(store, run_id)
        loaded = await store.aload(run_id)
        client = store._conn.async_client()
        await store.aclose()
        return client, loaded.run_id

    first, run_1 = asyncio.run(save_and_load("r1"))
    second, run_2 = asyncio.run(save_and_load("r2"))
    assert (run_1, run_2) == ("r1", "r2")
    assert first is not second
    assert store.list() == ["r1", "r2"]


async def test_user_async_client_is_used(redis_url: str, prefix: str) -> None:
    sync_client = redis.Redis.from_url(redis_url)
    async_client = aioredis.Redis.from_url(redis_url)
    store = RedisSnapshotStore(client=sync_client, async_client=async_client, prefix=prefix)
    try:
        assert store._conn.async_client() is async_client
        await asave(store, "r")
        assert store.load("r") is not None
        await store.aclose()  # a caller's clients stay open
        assert await async_client.ping()
    finally:
        await async_client.aclose()
        sync_client.close()


async def test_client_without_async_client_falls_back_to_a_thread(
    redis_url: str, prefix: str
) -> None:
    client = redis.Redis.from_url(redis_url)
    store = RedisCheckpointStore(client=client, prefix=prefix)
    try:
        assert store._conn.async_client() is None
        await store.asave(make_record(0))
        assert (await store.aload("triage", "s-1")).turn_index == 0
    finally:
        client.close()
