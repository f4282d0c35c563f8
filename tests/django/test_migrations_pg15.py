"""The migrations on the machine's PostgreSQL 15, which has no pgvector: they run unchanged,
the cache's embedding column is portable text without a vector index, and ``manage.py check``
says what that means (W004, or W003 when the cache asks for vectors)."""

import uuid

import psycopg
import pytest

from tests import services
from tests.django.project import check, manage

pytestmark = [pytest.mark.services, pytest.mark.slow]


@pytest.fixture
def pg15_db(subprocess_env):
    server = services.postgres15_url()
    name = f"warlock_pg15_{uuid.uuid4().hex[:12]}"
    url = services.create_database(server, name)
    try:
        yield {"vendor": "postgres", "url": url, "env": {**subprocess_env, "WARLOCK_DB_URL": url}}
    finally:
        services.drop_database(server, name)


def query(url, sql):
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        return conn.execute(sql).fetchall()


def test_migrate_check_and_unmigrate_on_postgres_15(pg15_db):
    url = pg15_db["url"]
    assert query(url, "SELECT 1 FROM pg_available_extensions WHERE name = 'vector'") == []

    check(manage(pg15_db, "migrate", "--no-input", "-v", "0"))

    assert query(url, "SELECT extname FROM pg_extension WHERE extname = 'vector'") == []
    ((column_type,),) = query(
        url,
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
        "WHERE attrelid = 'warlock_ai_cacheentry'::regclass AND attname = 'embedding'",
    )
    assert column_type == "text"
    indexes = query(
        url, "SELECT indexdef FROM pg_indexes WHERE tablename = 'warlock_ai_cacheentry'"
    )
    assert indexes and not any("hnsw" in row[0] or "vector" in row[0] for row in indexes)
    options = query(url, "SELECT reloptions FROM pg_class WHERE relname = 'warlock_ai_cacheentry'")
    assert options == [(["fillfactor=80"],)]  # hits counted as HOT updates (migration 0006)
    assert query(url, "SELECT count(*) FROM warlock_ai_checkpoint") == [(0,)]

    settings = "tests.django.cache_settings"
    result = check(
        manage(pg15_db, "check", "--database", "default", DJANGO_SETTINGS_MODULE=settings)
    )
    output = result.stdout + result.stderr
    assert "warlock_ai.W004" in output and "exact search" in output
    assert "warlock_ai.W003" not in output

    explicit = manage(
        pg15_db,
        "check",
        "--database",
        "default",
        DJANGO_SETTINGS_MODULE=settings,
        WARLOCK_TEST_CACHE_OPTIONS='{"dimensions": 768}',
    )
    output = check(explicit).stdout + explicit.stderr
    assert "warlock_ai.W003" in output and "warlock_ai.W004" not in output

    # without --database the database checks do not run
    quiet = check(manage(pg15_db, "check", DJANGO_SETTINGS_MODULE=settings))
    assert "warlock_ai.W00" not in quiet.stdout + quiet.stderr

    check(manage(pg15_db, "migrate", "warlock_ai", "0001", "--no-input", "-v", "0"))
    assert query(url, "SELECT to_regclass('warlock_ai_cacheentry')") == [(None,)]
