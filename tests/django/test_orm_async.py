"""``aexecute`` on the ORM store and PostgreSQL 16: snapshot writes on psycopg's async
connections (no hop to Django's sync thread), reused across saves and event loops, fenced
like the sync path, retried when the server drops the connection."""

import asyncio

import pytest
from django.db import connections
from django.test.utils import CaptureQueriesContext

import warlock_ai as ai
from warlock_ai.core.errors import LeaseHeldError
from warlock_ai.core.runs import leases
from warlock_ai.models import Snapshot
from warlock_ai.stores import orm_async

pytestmark = [
    pytest.mark.django_db(databases=["default", "pg"], transaction=True),
    pytest.mark.services,
]


def steps(n=4):
    return [ai.step(f"s{i}", lambda ctx, i=i: ctx.state.update(n=i)) for i in range(n)]


def backend_pids():
    with connections["pg"].cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()"
        )
        return {row[0] for row in cursor.fetchall()}


def test_aexecute_writes_through_async_connections_not_djangos():
    orm_async.close_all()
    store = ai.snapshot.db(using="pg")
    wf = ai.workflow(name="native", steps=steps(), snapshot_store=store)
    with CaptureQueriesContext(connections["pg"]) as queries:
        result = asyncio.run(wf.aexecute({"x": 1}, run_id="native-1"))
    assert result.error is None and result.report.persisted
    assert queries.captured_queries == []  # Django's connection made none of the writes
    row = Snapshot.objects.using("pg").get(pk="native-1")
    assert (row.status, row.state, row.lease_owner) == ("completed", {"n": 3}, None)
    assert len(orm_async.shared("pg")._idle) == 1  # the connection that made them

    orm_async.close_all()
    sync_path = ai.snapshot.db(using="pg", native_async=False)
    wf = ai.workflow(name="native", steps=steps(), snapshot_store=sync_path)
    assert asyncio.run(wf.aexecute({"x": 1}, run_id="native-2")).report.persisted
    assert orm_async.shared("pg")._idle == []  # written in Django's sync thread
    assert Snapshot.objects.using("pg").get(pk="native-2").state == {"n": 3}


def test_connections_are_reused_across_saves_and_event_loops():
    orm_async.close_all()
    before = backend_pids()
    wf = ai.workflow(name="reuse", steps=steps(), snapshot_store=ai.snapshot.db(using="pg"))
    for n in range(3):
        assert asyncio.run(wf.aexecute(run_id=f"reuse-{n}")).error is None
    opened = backend_pids() - before
    assert len(opened) == 1  # three runs, fifteen writes, three event loops: one connection


def test_concurrent_runs_each_take_a_connection_and_all_land():
    wf = ai.workflow(name="many", steps=steps(), snapshot_store=ai.snapshot.db(using="pg"))

    async def all_runs():
        return await asyncio.gather(*(wf.aexecute(run_id=f"many-{n}") for n in range(12)))

    results = asyncio.run(all_runs())
    assert all(r.error is None and r.report.persisted for r in results)
    assert Snapshot.objects.using("pg").filter(name="many", status="completed").count() == 12
    pool = orm_async.shared("pg")
    assert 1 <= len(pool._idle) <= orm_async.MAX_IDLE


def test_a_run_leased_elsewhere_is_refused_on_the_async_path():
    store = ai.snapshot.db(using="pg")
    wf = ai.workflow(name="held", steps=steps(2), snapshot_store=store)
    snapshot = asyncio.run(_first_snapshot(wf))
    store.save(snapshot, claim=leases.LeaseClaim("someone-else", leases.ACQUIRE))
    with pytest.raises(LeaseHeldError, match="leased by worker someone-else"):
        asyncio.run(wf.aresume("held-1"))
    assert Snapshot.objects.using("pg").get(pk="held-1").lease_owner == "someone-else"


async def _first_snapshot(wf):
    captured = []

    class Capture(type(ai.snapshot.memory())):
        def save(self, snapshot, *, claim=None):
            captured.append(snapshot)

    probe = ai.workflow(name=wf.name, steps=steps(2), snapshot_store=Capture())
    await probe.aexecute(run_id="held-1")
    return captured[1]


def test_a_cancel_request_reaches_an_async_run_through_its_write():
    store = ai.snapshot.db(using="pg")

    def ask(ctx):
        store.request_cancel("cancel-1", "operator")

    wf = ai.workflow(
        name="cancel",
        steps=[ai.step("a", lambda ctx: None), ai.step("ask", ask), ai.step("c", lambda ctx: None)],
        snapshot_store=store,
    )
    result = asyncio.run(wf.aexecute(run_id="cancel-1"))
    assert result.status == "cancelled"
    assert "c" not in result.report.steps
    assert Snapshot.objects.using("pg").get(pk="cancel-1").status == "cancelled"


def test_a_dropped_connection_is_retried_on_a_new_one(caplog):
    """The server ends the async connection between two steps: the write fails as
    'unavailable', the writer retries it on a fresh connection, nothing is lost."""
    store = ai.snapshot.db(using="pg")

    def drop(ctx):
        with connections["pg"].cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                "datname = current_database() AND pid <> pg_backend_pid() "
                "AND application_name = '' AND state = 'idle'"
            )

    wf = ai.workflow(
        name="drop",
        steps=[ai.step("a", lambda ctx: None), ai.step("drop", drop), ai.step("c", lambda c: None)],
        snapshot_store=store,
    )
    result = asyncio.run(wf.aexecute(run_id="drop-1"))
    assert result.error is None and result.report.persisted
    assert result.report.failed_writes == 0
    assert any("retrying" in r.getMessage() for r in caplog.records)
    assert Snapshot.objects.using("pg").get(pk="drop-1").status == "completed"


def test_an_interrupted_statement_leaves_no_busy_connection_behind():
    """A save cancelled mid-statement (a timeout, a cancelled task): the connection given
    back is idle (psycopg cancelled the statement on the server), or closed."""
    pool = orm_async.shared("pg")
    orm_async.close_all()

    async def interrupted():
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(pool.fetchone("SELECT pg_sleep(5)", []), 0.2)
        started = asyncio.get_running_loop().time()
        assert await pool.fetchone("SELECT 1", []) == (1,)
        return asyncio.get_running_loop().time() - started

    assert asyncio.run(interrupted()) < 1.0  # not waiting behind the 5 s sleep
    assert len(pool._idle) == 1
    with connections["pg"].cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(5)%%' "
            "AND state = 'active'"
        )
        assert cursor.fetchone()[0] == 0


def test_a_missing_table_is_a_store_error_naming_migrate(settings):
    store = ai.snapshot.db(using="pg")
    wf = ai.workflow(name="missing", steps=steps(1), snapshot_store=store)
    with connections["pg"].cursor() as cursor:
        cursor.execute("ALTER TABLE warlock_ai_snapshot RENAME TO warlock_ai_snapshot_away")
    try:
        result = asyncio.run(wf.aexecute(run_id="missing-1"))
    finally:
        with connections["pg"].cursor() as cursor:
            cursor.execute("ALTER TABLE warlock_ai_snapshot_away RENAME TO warlock_ai_snapshot")
    assert result.report.failed_writes >= 1
    message = result.report.persist_error.message
    assert 'could not save run "missing-1" in database "pg"' in message
    assert "migrate" in message
