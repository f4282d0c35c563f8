"""The Redis store keeps large state values in fields of their own (``value:<key>``) and
rewrites only those that changed, in the save's one script; a load puts them back."""

import asyncio
import dataclasses
import itertools
import json
import uuid

import pytest
import redis

import warlock_ai as ai
from warlock_ai.core.errors import LeaseHeldError, UnreadableSnapshotError
from warlock_ai.core.runs import leases

pytestmark = pytest.mark.services

BIG = [{"id": i, "sku": f"r-{i:05d}", "title": f"item {i} of the catalog " * 3} for i in range(400)]


@pytest.fixture
def store(redis_url):
    prefix = f"apart-{uuid.uuid4().hex[:8]}:"
    made = ai.snapshot.redis(url=redis_url, prefix=prefix)
    yield made
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(match=f"{prefix}*"):
        client.delete(key)
    made.close()


def raw(store, run_id):
    return {k.decode(): v for k, v in store._conn.client.hgetall(store.key(run_id)).items()}


def input_bytes(store):
    return int(store._conn.client.info("stats")["total_net_input_bytes"])


def test_a_large_value_is_a_field_of_its_own_written_once(store):
    written = []

    def step(i):
        def run(ctx):
            written.append(input_bytes(store))
            ctx.state["counter"] = i

        return run

    steps = [ai.step("load", lambda ctx: ctx.state.update(rows=[dict(r) for r in BIG]))]
    steps += [ai.step(f"s{i}", step(i)) for i in range(5)]
    result = ai.workflow(name="apart", steps=steps, snapshot_store=store).execute(run_id="r-1")
    assert result.error is None
    written.append(input_bytes(store))
    # from the save after "load" on, each save sends far less than the big value
    per_save = [b - a for a, b in itertools.pairwise(written)]
    assert per_save and max(per_save) < 8192
    stored = raw(store, "r-1")
    assert json.loads(stored["value:rows"]) == BIG
    document = json.loads(stored["data"])
    assert document["state"] == {"counter": 4} and document["state_apart"] == ["rows"]
    assert store.load("r-1").state == {"rows": BIG, "counter": 4}
    assert asyncio.run(store.aload("r-1")).state == {"rows": BIG, "counter": 4}


def test_changes_removals_and_resume_round_trip(store):
    stop = {"at": "c"}

    def a(ctx):
        ctx.state.update(big=[dict(r) for r in BIG], other=[dict(r) for r in BIG[:200]])

    def b(ctx):
        ctx.state["big"].append({"id": "b"})
        del ctx.state["other"]

    def c(ctx):
        if stop["at"] == "c":
            raise RuntimeError("the host went away")
        ctx.state["big"] = ctx.state["big"][:2]

    def build():
        steps = [ai.step(n, f) for n, f in (("a", a), ("b", b), ("c", c))]
        return ai.workflow(name="exact", steps=steps, snapshot_store=store)

    assert build().execute(run_id="x-1").status == "failed"
    assert {k for k in raw(store, "x-1") if k.startswith("value:")} == {"value:big"}
    assert store.load("x-1").state["big"][-1] == {"id": "b"}
    stop["at"] = None
    resumed = build().resume("x-1")
    assert resumed.error is None
    assert store.load("x-1").state == {"big": BIG[:2]} == resumed.report.state
    # nothing is stored apart any more: the old field is no longer listed, so it is not part
    # of the state (the run's next write of values, or its deletion, removes it)
    assert "state_apart" not in json.loads(raw(store, "x-1")["data"])


def test_a_write_refused_by_the_lease_writes_no_value(store):
    steps = [ai.step("a", lambda ctx: ctx.state.update(rows=BIG))]
    ai.workflow(name="fenced", steps=steps, snapshot_store=store).execute(run_id="f-1")
    snapshot = store.load("f-1")
    store.save(snapshot, claim=leases.LeaseClaim("worker-a", leases.ACQUIRE))
    other = dataclasses.replace(snapshot, state={"rows": BIG[:100]})
    with pytest.raises(LeaseHeldError):
        store.save(other, claim=leases.LeaseClaim("worker-b", leases.ACQUIRE))
    assert json.loads(raw(store, "f-1")["value:rows"]) == BIG


def test_a_listed_value_that_is_missing_makes_the_run_unreadable(store):
    steps = [ai.step("a", lambda ctx: ctx.state.update(rows=BIG))]
    ai.workflow(name="lost", steps=steps, snapshot_store=store).execute(run_id="l-1")
    store._conn.client.hdel(store.key("l-1"), "value:rows")
    with pytest.raises(UnreadableSnapshotError, match="state_apart lists 'rows'"):
        store.load("l-1")
    assert [info.run_id for info in store.runs()] == ["l-1"]  # still listed
    assert store.delete("l-1") is True


def test_a_tampered_list_of_keys_apart_is_read_as_far_as_it_makes_sense(store):
    steps = [ai.step("a", lambda ctx: ctx.state.update(rows=BIG, n=1))]
    ai.workflow(name="tampered", steps=steps, snapshot_store=store).execute(run_id="t-1")
    key = store.key("t-1")
    document = json.loads(store._conn.client.hget(key, "data"))
    document["state_apart"] = ["rows", 7, None]  # not only names
    store._conn.client.hset(key, "data", json.dumps(document))
    assert store.load("t-1").state == {"rows": BIG, "n": 1}
    document["state_apart"] = "rows"  # not a list: nothing is read apart
    store._conn.client.hset(key, "data", json.dumps(document))
    assert store.load("t-1").state == {"n": 1}
