"""The test services are real servers: PostgreSQL 16 + pgvector, PostgreSQL 15, Redis."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest
import redis

from tests import services

pytestmark = pytest.mark.services

REPO_ROOT = Path(__file__).resolve().parent.parent


def _fetch_one(url: str, query: str) -> tuple:
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        row = conn.execute(query).fetchone()
    assert row is not None
    return row


def test_postgres_is_16_or_later(pg_url):
    (version,) = _fetch_one(pg_url, "SELECT version()")
    (version_num,) = _fetch_one(pg_url, "SHOW server_version_num")
    assert int(version_num) >= 160000, version
    if services.started_pgserver():
        assert "PostgreSQL 16" in version


def test_postgres_has_pgvector(pg_url):
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        (distance,) = conn.execute("SELECT '[1,2,3]'::vector <=> '[1,2,4]'::vector").fetchone()
    assert 0 < distance < 0.01


def test_postgres_url_is_exported_for_child_processes(pg_url):
    assert os.environ[services.PG_URL_ENV] == pg_url
    assert services.postgres_url() == pg_url


def test_postgres15_has_no_pgvector():
    url = services.postgres15_url()
    (version_num,) = _fetch_one(url, "SHOW server_version_num")
    (available,) = _fetch_one(
        url, "SELECT count(*) FROM pg_available_extensions WHERE name = 'vector'"
    )
    assert int(version_num) // 10000 == 15
    assert available == 0


def test_private_postgres_cluster_is_15_without_pgvector():
    """The fallback when no PostgreSQL 15 answers: a cluster of this process alone, from the
    installed server binaries, gone once stopped."""
    cluster = services.start_postgres_cluster()
    try:
        assert cluster.workdir.is_dir()
        assert cluster.url.startswith("postgresql://postgres@127.0.0.1:")
        assert cluster.url != services.DEFAULT_PG15_URL
        (version_num,) = _fetch_one(cluster.url, "SHOW server_version_num")
        (available,) = _fetch_one(
            cluster.url, "SELECT count(*) FROM pg_available_extensions WHERE name = 'vector'"
        )
        assert int(version_num) // 10000 == 15
        assert available == 0
    finally:
        cluster.stop()
    assert not cluster.workdir.exists()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(cluster.url, connect_timeout=2).close()


def test_redis_answers_and_round_trips(redis_url):
    client = redis.Redis.from_url(redis_url)
    key = f"warlock-test:{uuid.uuid4().hex}"
    try:
        assert client.ping()
        client.set(key, b"value", ex=60)
        assert client.get(key) == b"value"
    finally:
        client.delete(key)
        client.close()


def test_create_and_drop_database(pg_url):
    name = f"warlock_test_{uuid.uuid4().hex[:12]}"
    url = services.create_database(pg_url, name)
    try:
        (current,) = _fetch_one(url, "SELECT current_database()")
        assert current == name
    finally:
        services.drop_database(pg_url, name)
    (count,) = _fetch_one(pg_url, f"SELECT count(*) FROM pg_database WHERE datname = '{name}'")
    assert count == 0


def test_drop_database_closes_open_connections(pg_url):
    name = f"warlock_test_{uuid.uuid4().hex[:12]}"
    url = services.create_database(pg_url, name)
    lingering = psycopg.connect(url)
    try:
        services.drop_database(pg_url, name)
    finally:
        lingering.close()
    (count,) = _fetch_one(pg_url, f"SELECT count(*) FROM pg_database WHERE datname = '{name}'")
    assert count == 0


@pytest.mark.parametrize("fresh_project_db", ["sqlite", "postgres"], indirect=True)
def test_fresh_project_db_is_empty_and_usable(fresh_project_db):
    db = fresh_project_db
    assert db["env"]["WARLOCK_DB_URL"] == db["url"]
    assert "DJANGO_SETTINGS_MODULE" not in db["env"]
    settings = services.database_settings(db["url"])
    engine = {"sqlite": "sqlite3", "postgres": "postgresql"}[db["vendor"]]
    assert settings["ENGINE"] == f"django.db.backends.{engine}"
    if db["vendor"] == "sqlite":
        assert db["url"].startswith("sqlite:///")
        assert Path(settings["NAME"]).is_absolute()
        assert not Path(settings["NAME"]).exists()
    else:
        (tables,) = _fetch_one(
            db["url"], "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
        )
        assert tables == 0


class TestDatabaseSettings:
    @pytest.mark.parametrize("url", ["sqlite:///tmp/x/db.sqlite3", "sqlite:////tmp/x/db.sqlite3"])
    def test_sqlite_file(self, url):
        assert services.database_settings(url) == {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": "/tmp/x/db.sqlite3",
        }

    def test_sqlite_without_path_is_rejected(self):
        with pytest.raises(ValueError, match="absolute file path"):
            services.database_settings("sqlite://")

    def test_postgres_tcp(self):
        settings = services.database_settings("postgresql://alice:s%40cret@db.local:5433/shop")
        assert settings == {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": "shop",
            "USER": "alice",
            "PASSWORD": "s@cret",
            "HOST": "db.local",
            "PORT": "5433",
            "OPTIONS": {},
            "TEST": {"NAME": "test_shop"},
        }

    def test_postgres_socket_as_pgserver_returns_it(self):
        url = "postgresql://postgres:@/postgres?host=/tmp/warlock-pg-abc"
        settings = services.database_settings(url)
        assert settings["HOST"] == "/tmp/warlock-pg-abc"
        assert (settings["NAME"], settings["USER"]) == ("postgres", "postgres")
        assert (settings["PASSWORD"], settings["PORT"], settings["OPTIONS"]) == ("", "", {})

    def test_postgres_extra_query_goes_to_options(self):
        settings = services.database_settings("postgres://u@h/db?sslmode=require&port=6000")
        assert settings["OPTIONS"] == {"sslmode": "require"}
        assert settings["PORT"] == "6000"

    def test_unknown_scheme_is_rejected(self):
        with pytest.raises(ValueError, match="mysql"):
            services.database_settings("mysql://u@h/db")

    def test_database_url_keeps_socket_query(self):
        url = services.database_url("postgresql://postgres:@/postgres?host=/tmp/s", "other")
        assert url == "postgresql://postgres:@/other?host=/tmp/s"


# --- services start only for the tests that use them ----------------------------------------

# pytest in a child process, then what its tests.services was asked for (the module that
# tests/settings.py and the conftests import: the same one, imported here first).
CHILD_PYTEST = """
import json, sys
import pytest
from tests import services
status = pytest.main(sys.argv[1:])
print("services requested:", json.dumps(services.requested()))
sys.exit(status)
"""
CLOSED_PG = "postgresql://postgres@127.0.0.1:1/postgres"
CLOSED_REDIS = "redis://127.0.0.1:1/15"


def run_child_pytest(env: dict[str, str], *args: str) -> list[str]:
    """Run ``pytest *args`` in a child; fail with its output unless it passes; return what it
    asked tests.services for."""
    result = subprocess.run(
        [sys.executable, "-c", CHILD_PYTEST, *args, "-q", "-p", "no:cacheprovider"],
        cwd=REPO_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("services requested: "), output[-4000:]
    return json.loads(last.removeprefix("services requested: "))


def test_core_tests_start_no_server(subprocess_env):
    """``pytest tests/core`` asks for no PostgreSQL and no Redis: every URL and probe points at
    a closed port, so a server it reached for would fail the run, and none is requested."""
    env = {
        **subprocess_env,
        services.PG_URL_ENV: CLOSED_PG,
        services.PG15_URL_ENV: CLOSED_PG,
        services.PG15_PROBE_URL_ENV: CLOSED_PG,
        services.REDIS_URL_ENV: CLOSED_REDIS,
        services.REDIS_PROBE_URL_ENV: CLOSED_REDIS,
    }
    assert run_child_pytest(env, "tests/core") == []


def test_a_test_on_pg_gets_pg_and_nothing_else(subprocess_env, pg_url):
    """A test that asks for the "pg" database gets a real one, and its run asks for nothing
    more: PostgreSQL 15 and Redis point at closed ports."""
    env = {
        **subprocess_env,
        services.PG_URL_ENV: pg_url,
        # pytest-django's suffix for parallel tox runs: the child's test database is not this
        # session's, though both are on the same server.
        "TOX_PARALLEL_ENV": f"lazy_child_{os.getpid()}",
        services.PG15_URL_ENV: CLOSED_PG,
        services.PG15_PROBE_URL_ENV: CLOSED_PG,
        services.REDIS_URL_ENV: CLOSED_REDIS,
        services.REDIS_PROBE_URL_ENV: CLOSED_REDIS,
    }
    test = "tests/django/test_orm_store.py::test_vendor_is_what_the_alias_says[postgres]"
    assert run_child_pytest(env, test) == ["pg"]
