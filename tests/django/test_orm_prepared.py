"""The ORM store's saves on PostgreSQL 16 are prepared statements (``orm_prepared``): made
once per connection and mode, reused by every later save; off when asked or when the alias
says a pooler in transaction mode is in front; a server that lost them (what such a pooler
causes, made here with a real ``DEALLOCATE ALL`` behind psycopg's back) costs no write."""

import asyncio
import dataclasses
import logging

import pytest
from django.db import connections, transaction

import warlock_ai as ai
from warlock_ai.core.errors import StoreError
from warlock_ai.models import Snapshot
from warlock_ai.stores import orm_async, orm_prepared

pytestmark = [
    pytest.mark.django_db(databases=["default", "pg"], transaction=True),
    pytest.mark.services,
]

TABLE = Snapshot._meta.db_table


@pytest.fixture(autouse=True)
def _forget_failures():
    orm_prepared.reset()
    yield
    orm_prepared.reset()


def workflow(store, n=4):
    steps = [ai.step(f"s{i}", lambda ctx, i=i: ctx.state.update(n=i)) for i in range(n)]
    return ai.workflow(name="prepared", steps=steps, snapshot_store=store)


def prepared_saves():
    """The save statements prepared on Django's connection to ``pg``: their first word."""
    with connections["pg"].cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        found = [row[0] for row in cursor.fetchall()]
    return sorted(s.split()[0] for s in found if TABLE in s)


def lose_prepared_statements(raw):
    """What a pooler in transaction mode does to a session's prepared statements: they are
    gone, and psycopg does not know (simple protocol, past its cursors)."""
    result = raw.pgconn.exec_(b"DEALLOCATE ALL")
    assert result.command_status == b"DEALLOCATE ALL"


def test_a_runs_saves_are_prepared_once_per_mode_and_reused():
    store = ai.snapshot.db(using="pg")
    result = workflow(store).execute({}, run_id="prep-1")
    assert result.error is None
    # acquire (INSERT ... ON CONFLICT), renew and release (UPDATE): one statement each
    assert prepared_saves() == ["INSERT", "UPDATE", "UPDATE"]
    for n in range(2, 6):
        assert workflow(store).execute({}, run_id=f"prep-{n}").error is None
    assert prepared_saves() == ["INSERT", "UPDATE", "UPDATE"]  # reused, not made again
    assert [r.state for r in Snapshot.objects.using("pg").order_by("run_id")] == [{"n": 3}] * 5
    assert store.load("prep-5").status == "completed"


def test_prepared_false_and_disable_server_side_cursors_prepare_nothing(monkeypatch):
    assert workflow(ai.snapshot.db(using="pg", prepared=False)).execute({}, run_id="a").ok
    assert prepared_saves() == []
    settings = connections["pg"].settings_dict
    monkeypatch.setitem(settings, "DISABLE_SERVER_SIDE_CURSORS", True)
    assert workflow(ai.snapshot.db(using="pg")).execute({}, run_id="b").ok
    assert prepared_saves() == []
    # asked for explicitly, it prepares even so
    assert workflow(ai.snapshot.db(using="pg", prepared=True)).execute({}, run_id="c").ok
    assert prepared_saves() == ["INSERT", "UPDATE", "UPDATE"]
    assert Snapshot.objects.using("pg").filter(status="completed").count() == 3


def test_only_the_saves_are_prepared_and_djangos_setting_is_left_as_it_was():
    connections["pg"].ensure_connection()
    raw = connections["pg"].connection
    assert raw.prepare_threshold is None  # Django's default
    assert workflow(ai.snapshot.db(using="pg")).execute({}, run_id="only").ok
    assert raw.prepare_threshold is None
    for _ in range(8):  # a query of the project's, run often: still never prepared
        list(Snapshot.objects.using("pg").filter(pk="only").values_list("status"))
    assert prepared_saves() == ["INSERT", "UPDATE", "UPDATE"]


def test_statements_lost_by_the_server_cost_no_write_and_stop_preparing(caplog):
    store = ai.snapshot.db(using="pg")
    assert workflow(store).execute({}, run_id="lost-1").ok
    lose_prepared_statements(connections["pg"].connection)
    with caplog.at_level(logging.WARNING, logger="warlock_ai.persistence"):
        result = workflow(store, n=6).execute({}, run_id="lost-2")
    assert result.error is None and result.report.persisted
    row = Snapshot.objects.using("pg").get(pk="lost-2")
    assert (row.status, row.state, row.lease_owner) == ("completed", {"n": 5}, None)
    warnings = [r.getMessage() for r in caplog.records if "prepared" in r.getMessage()]
    assert len(warnings) == 1  # logged once, not per save
    assert "DISABLE_SERVER_SIDE_CURSORS" in warnings[0] and "'pg'" in warnings[0]
    # saves on the alias are no longer prepared in this process
    assert workflow(store).execute({}, run_id="lost-3").ok
    assert prepared_saves() == []
    connections["pg"].close()  # psycopg's cache still names the lost statements
    orm_prepared.reset()
    assert workflow(store).execute({}, run_id="lost-4").ok
    assert prepared_saves() == ["INSERT", "UPDATE", "UPDATE"]


def test_inside_the_callers_transaction_a_lost_statement_fails_the_save_in_one_line():
    store = ai.snapshot.db(using="pg")
    assert workflow(store).execute({}, run_id="tx-1").ok
    snapshot = store.load("tx-1")
    # an unfenced save of the same run: the plain upsert, prepared outside, then lost
    store.save(dataclasses.replace(snapshot, state={"n": 10}))
    lose_prepared_statements(connections["pg"].connection)
    with pytest.raises(StoreError) as caught, transaction.atomic(using="pg"):
        store.save(dataclasses.replace(snapshot, state={"n": 11}))
    message = str(caught.value)
    assert "\n" not in message
    assert 'could not save run "tx-1" in database "pg"' in message
    assert "no longer prepared" in message and "DISABLE_SERVER_SIDE_CURSORS" in message
    assert store.load("tx-1").state == {"n": 10}  # the transaction rolled back
    with transaction.atomic(using="pg"):  # and the next save, unprepared, lands
        store.save(dataclasses.replace(snapshot, state={"n": 12}))
    assert store.load("tx-1").state == {"n": 12}


def test_prepared_must_be_a_boolean_or_none():
    with pytest.raises(ValueError, match="prepared must be None, True or False, not 'yes'"):
        ai.snapshot.db(using="pg", prepared="yes")


async def async_prepared(connection):
    cursor = await connection.execute("SELECT statement FROM pg_prepared_statements")
    return sorted(row[0].split()[0] for row in await cursor.fetchall() if TABLE in row[0])


def test_aexecute_prepares_its_saves_on_its_async_connection_and_recovers_from_losing_them(
    caplog,
):
    orm_async.close_all()
    store = ai.snapshot.db(using="pg")

    async def scenario():
        assert (await workflow(store).aexecute({}, run_id="async-1")).report.persisted
        pool = orm_async.shared("pg")
        [(connection, _)] = pool._idle
        assert connection.prepare_threshold is None  # as Django's settings give it
        assert await async_prepared(connection) == ["INSERT", "UPDATE", "UPDATE"]
        assert (await workflow(store).aexecute({}, run_id="async-2")).report.persisted
        assert await async_prepared(connection) == ["INSERT", "UPDATE", "UPDATE"]
        lose_prepared_statements(connection)
        with caplog.at_level(logging.WARNING, logger="warlock_ai.persistence"):
            result = await workflow(store, n=5).aexecute({}, run_id="async-3")
        assert result.error is None and result.report.persisted
        assert connection.closed  # it lost its statements: not kept
        [(other, _)] = pool._idle
        assert await async_prepared(other) == []  # the alias no longer prepares

    asyncio.run(scenario())
    row = Snapshot.objects.using("pg").get(pk="async-3")
    assert (row.status, row.state, row.lease_owner) == ("completed", {"n": 4}, None)
    assert any("no longer" in r.getMessage() for r in caplog.records)
