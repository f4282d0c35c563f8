"""The ``Checkpoint`` model and the ORM checkpoint store's own behaviour, on SQLite ("default")
and PostgreSQL ("pg"). The contract every checkpoint store shares is tested in tests/stores."""

from datetime import UTC, datetime, timedelta

import pytest
from asgiref.sync import sync_to_async
from django.db import IntegrityError, connections, transaction
from django.test.utils import CaptureQueriesContext

import warlock_ai as ai
from warlock_ai.core.orchestrator.checkpoints import CheckpointRecord
from warlock_ai.models import Checkpoint
from warlock_ai.stores.orm_checkpoints import DatabaseCheckpointStore

pytestmark = pytest.mark.django_db(databases=["default", "pg"])

T0 = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


@pytest.fixture(params=["default", "pg"], ids=["sqlite", "postgres"])
def alias(request):
    return request.param


@pytest.fixture
def store(alias):
    return ai.checkpoint.db(using=alias)


def record(turn=0, session="sess-1", name="support", **fields):
    values = {
        "orchestrator_name": name,
        "session_id": session,
        "turn_index": turn,
        "state": {"turn": turn, "note": "Lämp ☀"},
        "last_route": ["billing", "refunds"],
        "signature": "sig-1",
        "version": "1",
        "saved_at": T0 + timedelta(seconds=turn),
    }
    return CheckpointRecord(**{**values, **fields})


def create_row(alias, turn=0, session="sess-1"):
    return Checkpoint.objects.using(alias).create(
        orchestrator_name="support",
        session_id=session,
        turn_index=turn,
        state={"turn": turn},
        last_route="billing",
        signature="sig-1",
    )


# --- the model ------------------------------------------------------------------------------


def test_saving_an_existing_row_raises_and_changes_nothing(alias):
    row = create_row(alias)
    row.state = {"changed": True}
    with pytest.raises(ai.CheckpointConflictError) as info:
        row.save(using=alias)
    assert info.value.turn_index == 0 and "append-only" in str(info.value)
    assert Checkpoint.objects.using(alias).get(pk=row.pk).state == {"turn": 0}


def test_queryset_update_raises(alias):
    create_row(alias)
    with pytest.raises(ai.CheckpointConflictError):
        Checkpoint.objects.using(alias).filter(session_id="sess-1").update(signature="x")
    with pytest.raises(ai.CheckpointConflictError):
        Checkpoint.objects.using(alias).update(signature="x")
    row = Checkpoint.objects.using(alias).get()
    row.signature = "x"
    with pytest.raises(ai.CheckpointConflictError), transaction.atomic(using=alias):
        Checkpoint.objects.using(alias).bulk_update([row], ["signature"])
    assert Checkpoint.objects.using(alias).get().signature == "sig-1"


def test_saving_an_existing_turn_as_a_new_row_raises_conflict(alias):
    create_row(alias)
    with transaction.atomic(using=alias):
        with pytest.raises(ai.CheckpointConflictError) as info:
            create_row(alias)
        # the surrounding transaction is still usable (the insert ran in a savepoint)
        create_row(alias, turn=1)
    assert info.value.session_id == "sess-1"
    assert Checkpoint.objects.using(alias).count() == 2


def test_the_unique_constraint_is_in_the_database(alias):
    create_row(alias)
    duplicate = Checkpoint(
        orchestrator_name="support", session_id="sess-1", turn_index=0, signature="s"
    )
    with pytest.raises(IntegrityError), transaction.atomic(using=alias):
        Checkpoint.objects.using(alias).bulk_create([duplicate])  # bypasses Model.save


def test_deleting_a_whole_session_is_allowed(alias):
    for turn in range(3):
        create_row(alias, turn)
    create_row(alias, 0, session="other")
    deleted, _ = Checkpoint.objects.using(alias).for_session("support", "sess-1").delete()
    assert deleted == 3
    assert list(Checkpoint.objects.using(alias).values_list("session_id", flat=True)) == ["other"]


def test_to_record(alias):
    row = Checkpoint.objects.using(alias).create(
        orchestrator_name="support",
        session_id="sess-1",
        turn_index=4,
        state={"a": [1, "é"]},
        last_route=["x", "y"],
        signature="sig",
        version=None,
        summarized_through=2,
        lock_acquired_at=T0,
        lock_expires_at=T0 + timedelta(minutes=1),
        saved_at=T0,
    )
    rec = Checkpoint.objects.using(alias).get(pk=row.pk).to_record()
    assert rec == CheckpointRecord(
        orchestrator_name="support",
        session_id="sess-1",
        turn_index=4,
        state={"a": [1, "é"]},
        last_route=["x", "y"],
        signature="sig",
        version=None,
        summarized_through=2,
        lock_acquired_at=T0,
        lock_expires_at=T0 + timedelta(minutes=1),
        saved_at=T0,
    )


# --- the store ------------------------------------------------------------------------------


def test_factory_and_default_setting():
    from warlock_ai.stores.handler import get_checkpoint_store

    assert isinstance(ai.checkpoint.db(), DatabaseCheckpointStore)
    assert ai.checkpoint.pg is ai.checkpoint.db
    assert isinstance(get_checkpoint_store(), DatabaseCheckpointStore)
    with pytest.raises(ai.StoreError, match="nope"):
        ai.checkpoint.db(using="nope")


def test_save_is_one_insert_and_a_conflict_inserts_nothing(store, alias):
    with CaptureQueriesContext(connections[alias]) as queries:
        store.save(record(0))
    assert len(queries.captured_queries) == 1
    assert queries.captured_queries[0]["sql"].startswith('INSERT INTO "warlock_ai_checkpoint"')
    with pytest.raises(ai.CheckpointConflictError) as info:
        store.save(record(0, state={"other": 1}))
    assert (info.value.orchestrator_name, info.value.turn_index) == ("support", 0)
    assert store.load("support", "sess-1") == record(0)


def test_a_conflict_inside_a_transaction_leaves_it_usable(store, alias):
    with transaction.atomic(using=alias):
        store.save(record(0))
        with pytest.raises(ai.CheckpointConflictError):
            store.save(record(0))
        store.save(record(1))
    assert [r.turn_index for r in store.history("support", "sess-1")] == [0, 1]


def test_round_trip_load_latest_and_history(store):
    for turn in (1, 0, 2):
        store.save(record(turn))
    latest = store.load("support", "sess-1")
    assert latest == record(2)
    assert latest.last_route == ["billing", "refunds"]
    assert store.history("support", "sess-1") == [record(0), record(1), record(2)]
    assert store.load("support", "nope") is None and store.history("support", "nope") == []


def test_string_and_null_routes_round_trip(store):
    store.save(record(0, last_route="billing"))
    store.save(record(1, last_route=None))
    assert [r.last_route for r in store.history("support", "sess-1")] == ["billing", None]


def test_list_is_distinct_sorted_literal_and_case_sensitive(store):
    for session in ("sess_1", "sess_1", "sessX1", "SESS_1", "sess%2"):
        turn = len(store.history("support", session))
        store.save(record(turn, session=session))
    store.save(record(0, session="sess_9", name="sales"))
    assert store.list("support") == ["SESS_1", "sess%2", "sessX1", "sess_1"]
    assert store.list("support", "sess_") == ["sess_1"]
    assert store.list("support", "sess%") == ["sess%2"]
    assert store.list("support", "") == store.list("support")


def test_prune_keeps_turns_from_the_threshold(store):
    for turn in range(6):
        store.save(record(turn))
    assert store.prune("support", "sess-1", 3) == 3
    assert [r.turn_index for r in store.history("support", "sess-1")] == [3, 4, 5]
    for bad in (True, -1, 2.0, "4", None):
        assert store.prune("support", "sess-1", bad) == 0
    assert store.prune("support", "sess-1", 99) == 3
    assert store.list("support") == []


def test_delete_counts_rows(store):
    for turn in range(3):
        store.save(record(turn))
    assert store.delete("support", "sess-1") == 3
    assert store.delete("support", "sess-1") == 0


def test_a_non_json_state_names_its_path_and_writes_nothing(store, alias):
    with pytest.raises(ai.SnapshotSerializationError) as info:
        store.save(record(0, state={"when": datetime.now(UTC)}))
    assert info.value.path == "state.when"
    assert Checkpoint.objects.using(alias).count() == 0


@pytest.mark.django_db(databases=["default", "pg"], transaction=True)
def test_async_twins(store):
    import asyncio

    async def go():
        await store.asave(record(0))
        await store.asave(record(1))
        assert (await store.aload("support", "sess-1")).turn_index == 1
        assert await store.alist("support", "sess") == ["sess-1"]
        assert len(await store.ahistory("support", "sess-1")) == 2
        assert await store.aprune("support", "sess-1", 1) == 1
        assert await store.adelete("support", "sess-1") == 1
        await sync_to_async(connections.close_all)()  # the worker thread's connection

    asyncio.run(go())


def test_database_errors_become_store_errors(alias, monkeypatch):
    store = DatabaseCheckpointStore(using=alias)
    monkeypatch.setattr(store, "_insert_sql", lambda connection: "INSERT INTO nope VALUES (1)")
    expected = f'save turn 0 of session "sess-1".*"{alias}"'
    with pytest.raises(ai.StoreError, match=expected), transaction.atomic(using=alias):
        store.save(record(0))


def test_latest_turn_lookup_uses_the_unique_index():
    connection = connections["pg"]
    store = DatabaseCheckpointStore(using="pg")
    for turn in range(3):
        store.save(record(turn))
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(
            "EXPLAIN SELECT * FROM warlock_ai_checkpoint WHERE orchestrator_name = %s "
            "AND session_id = %s ORDER BY turn_index DESC LIMIT 1",
            ["support", "sess-1"],
        )
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "Index Scan Backward using warlock_checkpoint_turn_uniq" in plan, plan
