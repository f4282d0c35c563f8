"""Large state values stored apart (``SnapshotValue``) on SQLite and PostgreSQL 16: a step
pays for what it changed, not for what the run carries; nothing is lost or half-written."""

import dataclasses
import json
from datetime import UTC, datetime

import pytest
from django.db import connections
from django.test.utils import CaptureQueriesContext

import warlock_ai as ai
from warlock_ai.core.errors import LeaseHeldError
from warlock_ai.core.runs import leases
from warlock_ai.core.runs.state import EXTERNAL_BYTES
from warlock_ai.models import Snapshot, SnapshotValue

pytestmark = pytest.mark.django_db(databases=["default", "pg"], transaction=True)

VALUES_TABLE = SnapshotValue._meta.db_table


@pytest.fixture(params=["default", "pg"], ids=["sqlite", "postgres"])
def alias(request):
    return request.param


@pytest.fixture
def store(alias):
    return ai.snapshot.db(using=alias)


def rows(n: int, tag: str = "r") -> list[dict]:
    """About 100 characters of JSON per row."""
    return [
        {"id": i, "sku": f"{tag}-{i:05d}", "title": f"item {i} of the catalog " * 3}
        for i in range(n)
    ]


BIG = rows(400)  # ~40 KB of JSON: stored apart


def stored(store, run_id):
    return {v.key: v.value for v in SnapshotValue.objects.using(store.using).filter(run_id=run_id)}


def test_a_large_value_is_written_once_while_later_steps_change_small_keys(store, alias):
    steps = [ai.step("load", lambda ctx: ctx.state.update(rows=[dict(r) for r in BIG]))]
    steps += [ai.step(f"s{i}", lambda ctx, i=i: ctx.state.update(counter=i)) for i in range(5)]
    wf = ai.workflow(name="apart", steps=steps, snapshot_store=store)
    with CaptureQueriesContext(connections[alias]) as queries:
        result = wf.execute({}, run_id="apart-1")
    assert result.error is None
    sql = [q["sql"] for q in queries.captured_queries if q["sql"] not in ("BEGIN", "COMMIT")]
    # The first write (nothing stored apart yet) does not touch the values' table; the one
    # after "load" writes the big value (PostgreSQL: in its one statement; SQLite: two more
    # in its transaction); the five saves after it neither carry it nor touch the table.
    touching = [n for n, s in enumerate(sql) if VALUES_TABLE in s]
    assert touching == ([1] if alias == "pg" else [2, 3])
    after = sql[touching[-1] + 1 :]
    assert len(after) == 5
    assert all(len(s) < EXTERNAL_BYTES // 2 for s in after)
    assert len(sql) == (7 if alias == "pg" else 9)
    row = Snapshot.objects.using(store.using).get(pk="apart-1")
    assert row.state == {"counter": 4}  # the column holds the small keys
    assert row.state_apart == ["rows"]
    assert stored(store, "apart-1") == {"rows": BIG}
    assert row.full_state() == {"rows": BIG, "counter": 4}
    assert store.load("apart-1").state == {"rows": BIG, "counter": 4}


def test_a_value_changed_in_place_is_persisted(store):
    def grow(ctx):
        ctx.state["rows"].append({"id": -1, "sku": "new"})

    def touch_nested(ctx):
        ctx.state.get("rows")[0]["title"] = "renamed"

    def via_setdefault(ctx):
        ctx.state.setdefault("rows", []).append({"id": -2})

    wf = ai.workflow(
        name="inplace",
        steps=[
            ai.step("load", lambda ctx: ctx.state.update(rows=[dict(r) for r in BIG])),
            ai.step("grow", grow),
            ai.step("nested", touch_nested),
            ai.step("setdefault", via_setdefault),
        ],
        snapshot_store=store,
    )
    result = wf.execute({}, run_id="inplace-1")
    assert result.error is None
    expected = [dict(r) for r in BIG] + [{"id": -1, "sku": "new"}, {"id": -2}]
    expected[0]["title"] = "renamed"
    assert result.report.state["rows"] == expected
    assert stored(store, "inplace-1")["rows"] == expected
    assert store.load("inplace-1").state["rows"] == expected


def test_resume_restores_exactly_the_state_the_run_had(store):
    """A run that stops after three steps and is resumed ends with the state of a run that
    never stopped: large keys changed, removed, shrunk below the threshold and grown."""
    stop = {"at": "c"}

    def a(ctx):
        ctx.state.update(big=rows(300, "a"), other=rows(200, "o"), small=1)

    def b(ctx):
        ctx.state["big"].append({"id": "b"})
        del ctx.state["other"]
        ctx.state["grown"] = rows(10, "g")  # small for now

    def c(ctx):
        if stop["at"] == "c":
            raise RuntimeError("the host went away")
        ctx.state["grown"].extend(rows(300, "g2"))
        ctx.state["big"] = ctx.state["big"][:3]  # shrinks below the threshold: inline again

    def d(ctx):
        ctx.state["small"] += 1

    def build():
        return ai.workflow(
            name="exact",
            steps=[ai.step(n, f) for n, f in (("a", a), ("b", b), ("c", c), ("d", d))],
            snapshot_store=store,
        )

    first = build().execute({}, run_id="exact-1")
    assert first.status == "failed"
    assert set(stored(store, "exact-1")) == {"big"}  # "other" was removed with its row
    stop["at"] = None
    resumed = build().resume("exact-1")
    assert resumed.error is None
    never_stopped = build().execute({}, run_id="exact-2")
    assert resumed.report.state == never_stopped.report.state
    assert store.load("exact-1").state == never_stopped.report.state
    assert set(stored(store, "exact-1")) == {"grown"}
    assert (
        Snapshot.objects.using(store.using).get(pk="exact-1").state["big"]
        == (never_stopped.report.state["big"])
    )


def test_a_failed_attempt_leaves_the_large_value_as_it_was(store):
    tries = []

    def flaky(ctx):
        ctx.state["rows"].append({"id": "partial"})
        tries.append(len(ctx.state["rows"]))
        if len(tries) == 1:
            raise RuntimeError("transient")

    wf = ai.workflow(
        name="retry-apart",
        steps=[
            ai.step("load", lambda ctx: ctx.state.update(rows=[dict(r) for r in BIG])),
            ai.step("flaky", flaky, retry=ai.Retry(attempts=2, backoff="none")),
        ],
        snapshot_store=store,
    )
    result = wf.execute({}, run_id="retry-apart-1")
    assert result.error is None
    assert tries == [len(BIG) + 1, len(BIG) + 1]  # the second try did not see the first's row
    assert stored(store, "retry-apart-1")["rows"] == [*BIG, {"id": "partial"}]


def test_a_write_refused_by_the_lease_writes_no_value(store):
    snap = ai.WorkflowSnapshot(
        run_id="fenced-1",
        workflow_name="fenced",
        signature="0" * 16,
        version=None,
        input={},
        state={"rows": BIG},
        steps={},
        next="a",
        status="running",
        started_at=datetime.now(UTC),
        saved_at=datetime.now(UTC),
    )
    store.save(snap, claim=leases.LeaseClaim("worker-a", leases.ACQUIRE))
    other = dataclasses.replace(snap, state={"rows": rows(100, "x")})
    with pytest.raises(LeaseHeldError):
        store.save(other, claim=leases.LeaseClaim("worker-b", leases.ACQUIRE))
    assert stored(store, "fenced-1") == {"rows": BIG}


def test_deleting_a_run_deletes_its_values(store):
    wf = ai.workflow(
        name="del",
        steps=[ai.step("load", lambda ctx: ctx.state.update(rows=BIG))],
        snapshot_store=store,
    )
    wf.execute({}, run_id="del-1")
    assert stored(store, "del-1")
    assert store.delete("del-1") is True
    assert SnapshotValue.objects.using(store.using).filter(run_id="del-1").count() == 0


def test_a_new_run_under_an_old_id_leaves_no_old_value(store):
    first = ai.workflow(
        name="reuse",
        steps=[ai.step("a", lambda ctx: ctx.state.update(old=BIG))],
        snapshot_store=store,
    )
    first.execute({}, run_id="reuse-1")
    second = ai.workflow(
        name="reuse", steps=[ai.step("a", lambda ctx: ctx.state.update(n=1))], snapshot_store=store
    )
    second.execute({}, run_id="reuse-1")
    # The old value's row may stay until the run writes values again or is deleted; it is
    # not listed in state_apart, so it is not part of the state.
    row = Snapshot.objects.using(store.using).get(pk="reuse-1")
    assert row.state_apart is None and row.full_state() == {"n": 1}
    assert store.load("reuse-1").state == {"n": 1}
    third = ai.workflow(
        name="reuse",
        steps=[ai.step("a", lambda ctx: ctx.state.update(new=BIG))],
        snapshot_store=store,
    )
    third.execute({}, run_id="reuse-1")
    assert stored(store, "reuse-1") == {"new": BIG}  # writing values removed the old one
    assert store.delete("reuse-1") and stored(store, "reuse-1") == {}


def test_the_orm_reads_both_parts_naturally(store):
    wf = ai.workflow(
        name="query",
        steps=[ai.step("a", lambda ctx: ctx.state.update(rows=BIG, customer="acme"))],
        snapshot_store=store,
    )
    wf.execute({}, run_id="q-1")
    runs = Snapshot.objects.using(store.using)
    assert list(runs.filter(state__customer="acme").values_list("pk", flat=True)) == ["q-1"]
    by_value = runs.filter(state_values__key="rows", state_values__value__0__sku="r-00000")
    assert list(by_value.values_list("pk", flat=True)) == ["q-1"]
    row = runs.prefetch_related("state_values").get(pk="q-1")
    assert row.full_state() == {"rows": BIG, "customer": "acme"}
    value = SnapshotValue.objects.using(store.using).get(run_id="q-1", key="rows")
    assert value.size == len(json.dumps(BIG, separators=(",", ":"), ensure_ascii=False))


def test_supervisor_state_is_stored_apart_too(store):
    snap = ai.SupervisorSnapshot(
        run_id="sup-apart",
        supervisor_name="s",
        signature="0" * 16,
        version=None,
        input={},
        iteration=0,
        snapshots=[],
        status="running",
        started_at=datetime.now(UTC),
        saved_at=datetime.now(UTC),
        state={"notes": BIG, "n": 1},
    )
    store.save(snap)
    assert stored(store, "sup-apart") == {"notes": BIG}
    assert store.load("sup-apart").state == {"notes": BIG, "n": 1}


def test_value_column_is_stored_uncompressed_on_postgres():
    with connections["pg"].cursor() as cursor:
        cursor.execute(
            "SELECT attstorage FROM pg_attribute WHERE attrelid = %s::regclass "
            "AND attname = 'value'",
            [VALUES_TABLE],
        )
        assert cursor.fetchone()[0] == "e"
    assert "SET STORAGE EXTERNAL" in ai.snapshot.db(using="pg").schema()


def shown_run():
    wf = ai.workflow(
        name="shown",
        steps=[ai.step("a", lambda ctx: ctx.state.update(rows=BIG, customer="acme"))],
        snapshot_store=ai.snapshot.db(),
    )
    wf.execute({}, run_id="shown-1")
    assert Snapshot.objects.get(pk="shown-1").state_apart == ["rows"]


def test_the_admin_shows_the_whole_state():
    from django.test import Client

    from tests.users import make_staff_user

    shown_run()
    client = Client()
    client.force_login(make_staff_user("viewer", "view_snapshot"))
    page = client.get("/admin/warlock_ai/snapshot/shown-1/change/").content.decode()
    assert "r-00399" in page and "acme" in page


def test_a_large_input_is_sent_once_per_execution(store, alias):
    """The run's input and fingerprint never change within an execution: only its first
    write (which takes the lease) carries them; the renewing and releasing UPDATEs do not."""
    document = "the feed text " * 2000  # ~28 KB
    steps = [ai.step(f"s{i}", lambda ctx, i=i: ctx.state.update(n=i)) for i in range(3)]
    wf = ai.workflow(name="big-input", steps=steps, snapshot_store=store)
    with CaptureQueriesContext(connections[alias]) as queries:
        result = wf.execute({"document": document}, run_id="input-1")
    assert result.error is None
    sql = [q["sql"] for q in queries.captured_queries]
    assert len(sql) == 4 and "the feed text" in sql[0]
    assert all(s.startswith("UPDATE") and "the feed text" not in s for s in sql[1:])
    assert store.load("input-1").input == {"document": document}
