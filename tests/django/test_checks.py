"""System checks: each id fires under the settings it is about, and stays quiet otherwise.

The pgvector checks run against the real "pg" database (PostgreSQL 16 with pgvector) and
SQLite; a database without pgvector is simulated here and real in test_migrations_pg15.py.
"""

import pytest
from django.core import checks
from django.test import override_settings

from warlock_ai import checks as warlock_checks
from warlock_ai import vector
from warlock_ai.stores.memory import MemorySnapshotStore

pytestmark = pytest.mark.django_db(databases=["default", "pg"])

MEMORY_SNAPSHOTS = {"BACKEND": "warlock_ai.stores.memory.MemorySnapshotStore"}
MEMORY_CHECKPOINTS = {"BACKEND": "warlock_ai.stores.memory.MemoryCheckpointStore"}


class MyMemoryStore(MemorySnapshotStore):
    pass


class PgvectorCache:
    """Stands in for a cache driver that keeps its entries in the ORM (``uses_pgvector``)."""

    uses_pgvector = True


class PlainCache:
    """Stands in for a cache that lives outside the database (Redis, files)."""


PGVECTOR_CACHE = f"{__name__}.PgvectorCache"
PLAIN_CACHE = f"{__name__}.PlainCache"


def run(databases=None, **warlock):
    with override_settings(WARLOCK_AI=warlock):
        return checks.run_checks(tags=["warlock_ai"], databases=databases)


def ids(messages):
    return [m.id for m in messages]


def only(messages, check_id):
    found = [m for m in messages if m.id == check_id]
    assert len(found) == 1, messages
    assert found[0].hint, "every message carries a hint"
    return found[0]


def test_checks_are_registered_with_the_warlock_ai_tag():
    assert "warlock_ai" in checks.registry.registry.tags_available()
    assert checks.Tags.database in warlock_checks.check_cache_pgvector.tags


def test_default_settings_are_fine():
    assert run() == []
    assert run(databases=["default", "pg"]) == []


# --- W001 -----------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["SNAPSHOT_STORE", "CHECKPOINT_STORE"])
def test_w001_memory_store_outside_debug(key):
    config = MEMORY_SNAPSHOTS if key == "SNAPSHOT_STORE" else MEMORY_CHECKPOINTS
    with override_settings(DEBUG=False):
        message = only(run(**{key: config}), "warlock_ai.W001")
    assert message.level == checks.WARNING
    assert key in message.msg and config["BACKEND"] in message.msg


def test_w001_quiet_in_debug():
    with override_settings(DEBUG=True):
        assert run(SNAPSHOT_STORE=MEMORY_SNAPSHOTS, CHECKPOINT_STORE=MEMORY_CHECKPOINTS) == []


def test_w001_subclasses_count_too():
    config = {"BACKEND": f"{__name__}.MyMemoryStore"}
    with override_settings(DEBUG=False):
        assert ids(run(SNAPSHOT_STORE=config)) == ["warlock_ai.W001"]


# --- E002 / E003 ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "path"),
    [
        ("SNAPSHOT_STORE", "warlock_ai.stores.orm.DatabaseSnapshotStor"),
        ("CHECKPOINT_STORE", "warlock_ai.stores.nowhere.Store"),
        ("CACHE", "no_such_package.Cache"),
        ("CACHE", "nodots"),
    ],
)
def test_e002_backend_cannot_be_imported(key, path):
    message = only(run(**{key: {"BACKEND": path}}), "warlock_ai.E002")
    assert message.level == checks.ERROR
    assert f'WARLOCK_AI["{key}"]["BACKEND"]' in message.msg and repr(path) in message.msg


@pytest.mark.parametrize(
    ("warlock", "needle"),
    [
        ({"SNAPSHOT_STORE": "warlock_ai.stores.orm.DatabaseSnapshotStore"}, "SNAPSHOT_STORE"),
        ({"SNAPSHOT_STORE": {"BACKEND": "x.Y", "OPTONS": {}}}, "OPTONS"),
        ({"CACHE": {"BACKEND": PLAIN_CACHE, "OPTIONS": []}}, "OPTIONS"),
        ({"STORE": {}}, "STORE"),
        ({"CHECKPOINT_STORE": {"BACKEND": 42}}, "42"),
        ({"SNAPSHOT_STORE": {"BACKEND": "warlock_ai.stores.orm.DatabaseSnapshotStore",
                             "OPTIONS": {"using": "nope"}}}, "nope"),
        ({"CACHE": {"BACKEND": PLAIN_CACHE, "OPTIONS": {"dimensions": "1536"}}}, "dimensions"),
        ({"CACHE": {"BACKEND": PLAIN_CACHE, "OPTIONS": {"dimensions": 0}}}, "dimensions"),
    ],
)  # fmt: skip
def test_e003_malformed_settings_are_reported_not_raised(warlock, needle):
    message = only(run(**warlock), "warlock_ai.E003")
    assert message.level == checks.ERROR and needle in message.msg


def test_e003_does_not_break_the_database_checks():
    assert ids(run(databases=["default", "pg"], SNAPSHOT_STORE="oops")) == ["warlock_ai.E003"]


# --- W003 / W004 ----------------------------------------------------------------------------


def pgvector_cache(**options):
    return {"BACKEND": PGVECTOR_CACHE, "OPTIONS": options}


def test_pgvector_checks_need_databases():
    cache = pgvector_cache(using="default", vector=True)
    # `manage.py check` without --database: no database check runs (Django 6 passes every
    # alias to a check run by tag, so ask as the command does, by no tag)
    with override_settings(WARLOCK_AI={"CACHE": cache}):
        assert "warlock_ai.W003" not in ids(checks.run_checks())
    assert "warlock_ai.W003" in ids(run(databases=["default"], CACHE=cache))
    assert run(databases=["pg"], CACHE=cache) == []  # the cache is not on "pg"


def test_pg_with_pgvector_is_fine():
    for cache in (pgvector_cache(using="pg"), pgvector_cache(using="pg", dimensions=1536)):
        assert run(databases=["pg"], CACHE=cache) == []


def test_a_cache_outside_the_database_is_not_checked():
    assert run(databases=["default", "pg"], CACHE={"BACKEND": PLAIN_CACHE}) == []


def test_w003_vector_requested_on_sqlite():
    message = only(run(databases=["default"], CACHE=pgvector_cache(vector=True)), "warlock_ai.W003")
    assert '"default" is sqlite' in message.msg
    # an ORM cache on SQLite without an explicit request: exact search, nothing to say
    assert run(databases=["default"], CACHE=pgvector_cache()) == []


@pytest.fixture
def no_pgvector(monkeypatch):
    """Make "pg" look like a PostgreSQL without pgvector; ``available`` is settable."""
    state = {"available": False}
    monkeypatch.setattr(vector, "pgvector_installed", lambda connection, cached=True: False)
    monkeypatch.setattr(vector, "pgvector_available", lambda connection: state["available"])
    return state


def test_w004_pg_without_pgvector_uses_exact_search(no_pgvector):
    message = only(run(databases=["pg"], CACHE=pgvector_cache(using="pg")), "warlock_ai.W004")
    assert message.msg.startswith('pgvector is not available on database "pg"')
    assert "exact search" in message.msg


def test_w003_when_the_cache_asks_for_vectors_and_pg_has_none(no_pgvector):
    messages = run(databases=["pg"], CACHE=pgvector_cache(using="pg", dimensions=768))
    message = only(messages, "warlock_ai.W003")
    assert "warlock_ai.W004" not in ids(messages)
    assert "pgvector" in message.hint and "install" in message.hint.lower()


def test_w003_when_pgvector_is_available_but_not_installed(no_pgvector):
    no_pgvector["available"] = True
    message = only(run(databases=["pg"], CACHE=pgvector_cache(using="pg")), "warlock_ai.W003")
    assert "CREATE EXTENSION vector" in message.hint


def test_w003_when_the_column_predates_the_extension(monkeypatch):
    monkeypatch.setattr(vector, "column_type", lambda connection, table, column: ("text", -1))
    message = only(run(databases=["pg"], CACHE=pgvector_cache(using="pg")), "warlock_ai.W003")
    assert "warlock_ai_cacheentry.embedding is text" in message.msg
    assert "ALTER TABLE warlock_ai_cacheentry" in message.hint and "vector(1536)" in message.hint


def test_w005_when_the_database_cannot_be_inspected(monkeypatch):
    from django.db import OperationalError

    def down(connection, cached=True):
        raise OperationalError("connection refused")

    monkeypatch.setattr(vector, "pgvector_installed", down)
    message = only(run(databases=["pg"], CACHE=pgvector_cache(using="pg")), "warlock_ai.W005")
    assert "connection refused" in message.msg


def rq_messages():
    return [m for m in checks.run_checks(tags=["warlock_ai"]) if m.id == "warlock_ai.W006"]


def test_w006_rq_queue_missing_from_rq_queues(settings):
    settings.INSTALLED_APPS = [*settings.INSTALLED_APPS, "django_rq"]
    settings.RQ_QUEUES = {"high": {"URL": "redis://127.0.0.1:6379/0"}}
    (message,) = rq_messages()
    assert '"default", which is not in settings.RQ_QUEUES (it has: high)' in message.msg
    settings.WARLOCK_AI = {"RQ_QUEUE": "high"}
    assert rq_messages() == []


def test_w006_quiet_without_django_rq(settings):
    settings.RQ_QUEUES = {}
    assert rq_messages() == []


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_e003_admin_runs_inline_must_be_a_bool(value):
    message = only(run(ADMIN_RUNS_INLINE=value), "warlock_ai.E003")
    assert message.msg == (
        f'settings.WARLOCK_AI["ADMIN_RUNS_INLINE"] must be True or False, got {value!r}'
    )


def test_w007_admin_runs_inline_outside_debug(settings):
    settings.DEBUG = False
    message = only(run(ADMIN_RUNS_INLINE=True), "warlock_ai.W007")
    assert "inside the web request" in message.msg
    assert "warlock_ai.W007" not in ids(run(ADMIN_RUNS_INLINE=False))
    settings.DEBUG = True
    assert "warlock_ai.W007" not in ids(run(ADMIN_RUNS_INLINE=True))


DB_CHECKPOINTS = "warlock_ai.stores.orm_checkpoints.DatabaseCheckpointStore"


@pytest.mark.parametrize("using", ["default", "pg"])
def test_w008_quiet_on_databases_with_a_session_lock(using):
    store = {"BACKEND": DB_CHECKPOINTS, "OPTIONS": {"using": using}}
    assert "warlock_ai.W008" not in ids(run(CHECKPOINT_STORE=store))


def test_w008_a_database_without_a_session_lock(monkeypatch):
    # No MySQL server here: the check reads only the vendor name of the alias.
    from django.db import connections

    monkeypatch.setattr(connections["default"], "vendor", "mysql")
    message = only(run(CHECKPOINT_STORE={"BACKEND": DB_CHECKPOINTS}), "warlock_ai.W008")
    assert "mysql" in message.msg and "session_lock" in message.hint


@pytest.mark.parametrize(
    ("key", "value", "bound"),
    [
        ("LEASE_SECONDS", 0, "greater than 0"),
        ("LEASE_SECONDS", "300", "greater than 0"),
        ("SHUTDOWN_GRACE_SECONDS", -1, "0 or more"),
        ("SWEEP_SECONDS", -5, "0 or more"),
        ("SWEEP_SECONDS", None, "0 or more"),
        ("SWEEP_SECONDS", True, "0 or more"),
    ],
)
def test_e010_seconds_settings_must_be_numbers(key, value, bound):
    message = only(run(**{key: value}), "warlock_ai.E010")
    assert message.msg == (
        f'settings.WARLOCK_AI["{key}"] must be a number of seconds, {bound}; got {value!r}'
    )


@pytest.mark.parametrize("key", ["SHUTDOWN_GRACE_SECONDS", "SWEEP_SECONDS"])
def test_e010_zero_turns_grace_and_sweeping_off(key):
    assert "warlock_ai.E010" not in ids(run(**{key: 0}))
