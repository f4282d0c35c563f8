"""The session operations (``fork_session``, ``discard_session``) go through the checkpoint
store contract, so they behave the same on memory, SQLite, PostgreSQL 16 and 15 and Redis:
the admin, the API and the commands share them."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.db import connections

import warlock_ai as ai
from tests.stores.worker import make_record
from warlock_ai import END, operations, sessions
from warlock_ai.core.errors import (
    OrchestratorFailedError,
    SessionExistsError,
    StoreError,
    UnknownSessionError,
)
from warlock_ai.models import Checkpoint
from warlock_ai.registry import registry
from warlock_ai.stores.memory import MemoryCheckpointStore

FIELDS = ("turn_index", "state", "last_route", "signature", "version", "summarized_through")


def save_session(store: Any, session_id: str, turns: range, name: str = "support") -> list[Any]:
    records = [
        dataclasses.replace(
            make_record(turn, session_id, name, state={"turn": turn, "notes": ["n"] * turn}),
            summarized_through=turn - 1 if turn else None,
        )
        for turn in turns
    ]
    for record in records:
        store.save(record)
    return store.history(name, session_id)


def fields(records: list[Any]) -> list[tuple[Any, ...]]:
    return [tuple(getattr(record, f) for f in FIELDS) for record in records]


# --- fork ---------------------------------------------------------------------------------


def test_fork_copies_turns_up_to_n_and_leaves_the_source_alone(checkpoint_store):
    source = save_session(checkpoint_store, "s-1", range(4))
    outcome = operations.fork_session("support", "s-1", 2, "s-1 ☀ fork", store=checkpoint_store)
    assert outcome.message == (
        'session "s-1" of orchestrator "support" forked at turn 2 into "s-1 ☀ fork": '
        "3 turns copied (0-2)"
    )
    assert (outcome.turns, outcome.first_turn, outcome.new_session_id) == (3, 0, "s-1 ☀ fork")
    copies = checkpoint_store.history("support", "s-1 ☀ fork")
    assert fields(copies) == fields(source[:3])
    assert all(copy.session_id == "s-1 ☀ fork" for copy in copies)
    assert all(copy.saved_at > source[-1].saved_at for copy in copies)
    assert checkpoint_store.history("support", "s-1") == source
    assert checkpoint_store.load("support", "s-1 ☀ fork").turn_index == 2


def test_fork_of_a_pruned_session_starts_where_the_source_does(checkpoint_store):
    save_session(checkpoint_store, "s-1", range(6))
    checkpoint_store.prune("support", "s-1", 3)
    outcome = operations.fork_session("support", "s-1", 4, "s-2", store=checkpoint_store)
    assert outcome.message.endswith(
        "2 turns copied (3-4); turns 0-2 were pruned from the source, so the fork starts at turn 3"
    )
    assert [r.turn_index for r in checkpoint_store.history("support", "s-2")] == [3, 4]
    with pytest.raises(OrchestratorFailedError) as info:
        operations.fork_session("support", "s-1", 1, "s-3", store=checkpoint_store)
    assert info.value.message == (
        'session "s-1" of orchestrator "support" has no turn 1 to fork from: its stored turns '
        "are 3-5 (turns 0-2 were pruned)"
    )


@pytest.mark.parametrize(
    ("session_id", "turn", "new_id", "error", "message"),
    [
        ("nope", 0, "s-9", UnknownSessionError, 'no session "nope" of orchestrator "support"'),
        ("s-1", 7, "s-9", OrchestratorFailedError, "has no turn 7 to fork from"),
        ("s-1", -1, "s-9", OrchestratorFailedError, "turn_index must be a turn number"),
        ("s-1", True, "s-9", OrchestratorFailedError, "turn_index must be a turn number"),
        ("s-1", 1, "s-2", SessionExistsError, 'session "s-2" of orchestrator "support" already'),
        ("s-1", 1, "", OrchestratorFailedError, "session_id must be a non-empty string"),
        ("s-1", 1, "a\nb", OrchestratorFailedError, "contains an unprintable character"),
        ("s-1", 1, "x" * 256, OrchestratorFailedError, "256 characters long; the limit is 255"),
        ("s-1", 1, None, OrchestratorFailedError, "session_id must be a non-empty string"),
    ],
)
def test_bad_fork_input_is_refused_and_writes_nothing(
    checkpoint_store, session_id, turn, new_id, error, message
):
    save_session(checkpoint_store, "s-1", range(3))
    save_session(checkpoint_store, "s-2", range(1))
    with pytest.raises(error) as info:
        operations.fork_session("support", session_id, turn, new_id, store=checkpoint_store)
    assert message in info.value.message and "\n" not in info.value.message
    assert checkpoint_store.list("support") == ["s-1", "s-2"]
    assert [r.turn_index for r in checkpoint_store.history("support", "s-2")] == [0]


class LinkLostAfterFirstWrite(MemoryCheckpointStore):
    """The memory store, whose connection drops after its first write (the memory store has
    no transaction: what a failed fork wrote must be deleted again)."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def save(self, record: Any) -> None:
        if record.session_id == "s-2":
            self.writes += 1
            if self.writes == 2:
                raise StoreError("connection lost")
        super().save(record)


def test_a_fork_that_fails_midway_leaves_no_half_session_without_transactions():
    store = LinkLostAfterFirstWrite()
    save_session(store, "s-1", range(3))
    with pytest.raises(StoreError):
        operations.fork_session("support", "s-1", 2, "s-2", store=store)
    assert store.writes == 2 and store.list("support") == ["s-1"]


@pytest.mark.parametrize(
    "alias",
    [
        pytest.param("default", marks=pytest.mark.django_db(transaction=True)),
        pytest.param("pg", marks=[pytest.mark.django_db(databases=["pg"], transaction=True)]),
    ],
)
def test_a_fork_that_fails_midway_is_rolled_back_on_the_database(alias):
    """A real database failure on the second row (a trigger refusing it): nothing stays."""
    store = ai.checkpoint.db(using=alias)
    save_session(store, "s-1", range(3))
    with refusing_second_fork_row(alias), pytest.raises(StoreError) as info:
        operations.fork_session("support", "s-1", 2, "s-2", store=store)
    assert "no room for turn 1" in info.value.message
    assert store.list("support") == ["s-1"] and len(store.history("support", "s-1")) == 3


@contextmanager
def refusing_second_fork_row(alias: str) -> Iterator[None]:
    table = Checkpoint._meta.db_table
    connection = connections[alias]
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute(
                f"CREATE TRIGGER refuse_fork BEFORE INSERT ON {table} "
                "WHEN NEW.session_id = 's-2' AND NEW.turn_index = 1 "
                "BEGIN SELECT RAISE(ABORT, 'no room for turn 1'); END"
            )
        else:
            cursor.execute(
                "CREATE FUNCTION refuse_fork() RETURNS trigger AS $$ BEGIN "
                "IF NEW.session_id = 's-2' AND NEW.turn_index = 1 THEN "
                "RAISE EXCEPTION 'no room for turn 1'; END IF; RETURN NEW; END $$ "
                "LANGUAGE plpgsql"
            )
            cursor.execute(
                f"CREATE TRIGGER refuse_fork BEFORE INSERT ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION refuse_fork()"
            )
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            if connection.vendor == "sqlite":
                cursor.execute("DROP TRIGGER refuse_fork")
            else:
                cursor.execute(f"DROP TRIGGER refuse_fork ON {table}")
                cursor.execute("DROP FUNCTION refuse_fork()")


# --- discard --------------------------------------------------------------------------------


def _work(ctx: Any) -> dict[str, Any]:
    return {"steps": ctx.state.get("steps", 0) + 1}


def _route(ctx: Any) -> Any:
    return "work" if ctx.iteration < 2 else END


@pytest.fixture
def turns_on(checkpoint_backend: Any, checkpoint_store: Any) -> Iterator[Any]:
    """An iterating orchestrator ``support`` on the backend's checkpoint and snapshot
    stores (its snapshot store made the configured one), not registered."""
    snapshots = checkpoint_backend.snapshot_store()
    orchestrator = ai.orchestrator(
        name="support",
        intents={"work": ai.intent(_work, description="work")},
        route=_route,
        iterate=True,
        checkpoint_store=checkpoint_store,
        snapshot_store=snapshots,
    )
    ai.config(default_snapshot_store=snapshots)
    try:
        yield orchestrator
    finally:
        ai.reset_config()
        registry.unregister("orchestrator", "support")


def failed_turn(orchestrator: Any, session_id: str) -> str:
    """Two settled turns, then a third whose snapshot stays (failed), as a failed turn
    leaves it; returns its run id."""
    seen: list[Any] = []

    def grab(event: dict[str, Any]) -> None:
        seen.append(orchestrator.store.load(event["run_id"]))

    orchestrator.execute("one", session_id=session_id)
    orchestrator.execute("two", session_id=session_id, on={"supervisor.iteration.completed": grab})
    run_id = f"{session_id}.unversioned.2"
    orchestrator.store.save(dataclasses.replace(seen[0], run_id=run_id, status="failed"))
    return run_id


@pytest.mark.parametrize("registered", [True, False], ids=["registered", "unregistered"])
def test_discard_session_removes_rows_and_turn_snapshots(turns_on, checkpoint_store, registered):
    if registered:
        registry.register(turns_on, replace=True)
    run_id = failed_turn(turns_on, "s-1")
    turns_on.execute("other", session_id="s-10")  # shares the prefix "s-1"
    assert sessions.discard_session("support", "s-1", store=checkpoint_store) == 3
    assert checkpoint_store.history("support", "s-1") == []
    assert turns_on.store.load(run_id) is None
    assert [r.turn_index for r in checkpoint_store.history("support", "s-10")] == [0]
    assert sessions.discard_session("support", "s-1", store=checkpoint_store) == 0
