"""The Django ORM snapshot store on SQLite ("default") and PostgreSQL 16 + pgvector ("pg")."""

import asyncio
import dataclasses
import json

import pytest
from asgiref.sync import sync_to_async
from django.db import connections
from django.test.utils import CaptureQueriesContext

import warlock_ai as ai
from warlock_ai.models import Snapshot
from warlock_ai.stores.orm import DatabaseSnapshotStore

close_all = connections.close_all

pytestmark = pytest.mark.django_db(databases=["default", "pg"], transaction=True)


@pytest.fixture(params=["default", "pg"], ids=["sqlite", "postgres"])
def alias(request):
    return request.param


@pytest.fixture
def store(alias):
    return ai.snapshot.db(using=alias)


def build(store, steps=None, name="orm-wf", version="1"):
    steps = steps or [
        ai.step("fetch", lambda ctx: ctx.state.update(rows=[{"sku": "a-1", "title": "Lämp ☀"}])),
        ai.step("normalize", lambda ctx: ctx.state.update(count=len(ctx.state["rows"]))),
    ]
    return ai.workflow(name=name, version=version, steps=steps, snapshot_store=store)


def test_vendor_is_what_the_alias_says(alias):
    assert connections[alias].vendor == {"default": "sqlite", "pg": "postgresql"}[alias]


def test_one_save_is_one_sql_statement(store, alias):
    wf = build(store)
    with CaptureQueriesContext(connections[alias]) as queries:
        result = wf.execute({"vendor": "v1"}, run_id="one-statement")
    assert result.error is None
    # start + one per step (the last carries the terminal status): 3 writes, 3 statements
    statements = [q["sql"] for q in queries.captured_queries]
    assert len(statements) == 3
    # the first write takes the lease (an upsert fenced by the lease); later ones renew and
    # release it (an UPDATE fenced by the owner): never a read followed by a write
    assert statements[0].startswith('INSERT INTO "warlock_ai_snapshot"')
    assert "ON CONFLICT" in statements[0]
    assert all(s.startswith('UPDATE "warlock_ai_snapshot"') for s in statements[1:])
    assert all("lease_owner" in s for s in statements)


def test_round_trip_through_the_model(store):
    wf = build(store)
    wf.execute({"vendor": "v1", "note": "ünïcødé"}, run_id="rt-1")
    row = Snapshot.objects.using(store.using).get(pk="rt-1")
    assert (row.kind, row.name, row.version, row.status) == ("workflow", "orm-wf", "1", "completed")
    assert row.signature == wf.signature and row.next_step is None
    assert row.state == {"rows": [{"sku": "a-1", "title": "Lämp ☀"}], "count": 1}
    assert row.input == {"vendor": "v1", "note": "ünïcødé"}
    assert row.steps["fetch"]["status"] == "completed"
    assert row.fingerprint == wf.fingerprint
    assert row.finished_at == row.saved_at and row.error is None
    snap = store.load("rt-1")
    assert isinstance(snap, ai.WorkflowSnapshot)
    assert snap.state == row.state and snap.steps["normalize"].status == "completed"
    store.save(snap)
    assert store.load("rt-1") == snap


def test_unknown_id_is_none_second_save_overwrites_delete_removes(store):
    assert store.load("missing") is None
    wf = build(store)
    wf.execute(run_id="ow-1")
    wf.execute(run_id="ow-1")
    assert Snapshot.objects.using(store.using).filter(pk="ow-1").count() == 1
    assert store.delete("ow-1") is True
    assert store.delete("ow-1") is False
    assert store.load("ow-1") is None


def test_list_prefix_is_literal(store):
    wf = build(store)
    for run_id in ("sess-1.a", "sess-1.b", "sess_1.c", "sessX1.d", "sess%1.e"):
        wf.execute(run_id=run_id)
    assert store.list("sess-1.") == ["sess-1.a", "sess-1.b"]
    assert store.list("sess_1") == ["sess_1.c"]
    assert store.list("sess%") == ["sess%1.e"]
    assert len(store.list()) == 5


def test_failed_run_stores_error_and_next_step_then_resumes(store):
    calls = []

    def flaky(ctx):
        calls.append("b")
        if calls.count("b") == 1:
            raise RuntimeError("vendor API down")

    steps = [ai.step("a", lambda ctx: calls.append("a")), ai.step("b", flaky)]
    first = build(store, steps).execute(run_id="fail-1")
    assert first.status == "failed"
    row = Snapshot.objects.using(store.using).get(pk="fail-1")
    assert (row.status, row.next_step) == ("failed", "b")
    assert row.error["name"] == "StepFailedError" and "vendor API down" in row.error["message"]
    assert row.finished_at is not None
    resumed = build(store, steps).resume("fail-1")
    assert resumed.status == "completed" and calls == ["a", "b", "b"]
    row.refresh_from_db()
    assert (row.status, row.error) == ("completed", None)


def test_drift_is_detected_against_the_stored_signature(store):
    build(store, [ai.step("a", lambda ctx: 1 / 0)]).execute(run_id="drift-1")
    changed = build(store, [ai.step("a", lambda ctx: None), ai.step("b", lambda ctx: None)])
    with pytest.raises(ai.WorkflowDriftError) as info:
        changed.resume("drift-1")
    assert info.value.pending_step == "a"
    assert changed.resume("drift-1", force=True).status == "completed"


def test_manual_migration_reads_naturally(store):
    """SPEC 2: snap.steps["new"] = snap.steps.pop("old"); save(replace(snap, signature=...))."""
    old = build(store, [ai.step("old", lambda ctx: None), ai.step("b", lambda ctx: 1 / 0)])
    old.execute(run_id="mig-1")
    new = build(store, [ai.step("new", lambda ctx: None), ai.step("b", lambda ctx: None)])
    snap = store.load("mig-1")
    snap.steps["new"] = snap.steps.pop("old")
    store.save(dataclasses.replace(snap, signature=new.signature))
    result = new.resume("mig-1")
    assert result.status == "completed"
    assert set(result.report.steps) == {"new", "b"}
    assert result.report.steps["new"].status == "completed"


def test_large_state_and_non_ascii_round_trip(store):
    blob = "ü" * (2 * 1024 * 1024)  # about 4 MB of UTF-8
    wf = build(store, [ai.step("big", lambda ctx: ctx.state.update(blob=blob, n="✓"))])
    assert wf.execute(run_id="big-1").error is None
    assert store.load("big-1").state == {"blob": blob, "n": "✓"}


def test_database_error_surfaces_as_store_error_and_the_run_goes_on(alias):
    bogus = DatabaseSnapshotStore(using=alias)
    vendor = connections[alias].vendor
    for key in ("plain", False), ("acquire", False), ("renew", False), ("release", False):
        bogus._sql[(vendor, *key, False)] = "INSERT INTO no_such_table VALUES (1)"
    errors = []
    wf = build(bogus)
    result = wf.execute(run_id="err-1", on={"workflow.error": errors.append})
    assert result.status == "completed"
    assert errors and isinstance(errors[0]["error"], ai.StoreError)
    assert 'could not save run "err-1" in database' in errors[0]["error"].message


def test_unknown_alias_is_refused():
    with pytest.raises(ai.StoreError, match="no database alias 'nope'"):
        ai.snapshot.db(using="nope")


def test_pg_alias_is_the_orm_store():
    assert ai.snapshot.pg is ai.snapshot.db


def test_json_columns_are_jsonb_on_postgres():
    with connections["pg"].cursor() as cursor:
        cursor.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = 'warlock_ai_snapshot' AND data_type = 'jsonb' ORDER BY 1"
        )
        jsonb = [row[0] for row in cursor.fetchall()]
    assert jsonb == [
        "attempts",
        "error",
        "fingerprint",
        "input",
        "state",
        "state_apart",
        "steps",
        "usage",
    ]


def test_async_twins(store):
    async def go():
        wf = build(store)
        result = await wf.aexecute({"v": 1}, run_id="async-1")
        assert result.error is None
        snap = await store.aload("async-1")
        assert snap.status == "completed"
        assert await store.alist("async") == ["async-1"]
        assert await store.adelete("async-1") is True
        assert await store.aload("async-1") is None
        # the async twins ran in Django's sync thread: release its connection
        await sync_to_async(close_all)()

    asyncio.run(go())


def test_stored_state_is_plain_json(store, alias):
    build(store).execute(run_id="raw-1")
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT state FROM warlock_ai_snapshot WHERE run_id = %s", ["raw-1"])
        raw = cursor.fetchone()[0]
    data = raw if isinstance(raw, dict) else json.loads(raw)
    assert data["count"] == 1
