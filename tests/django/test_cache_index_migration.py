"""Migration 0006 on a fresh PostgreSQL 16 + pgvector database: the HNSW index rebuilt over the
shared pool with its parameters written out, the table's fillfactor, both undone by migrating
back, and ``schema()`` printing what the migrations made. (SQLite builds the test database with
every migration; PostgreSQL 15 is covered by test_migrations_pg15.py.)"""

import psycopg
import pytest
from django.db.migrations.loader import MigrationLoader

from tests.django.project import check, manage
from warlock_ai.stores.orm_cache import EMBEDDING_INDEX, FILLFACTOR
from warlock_ai.vector import CreateVectorIndex

pytestmark = [pytest.mark.services, pytest.mark.slow]


def query(url, sql):
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        return conn.execute(sql).fetchall()


def index_and_options(url):
    ((indexdef,),) = query(
        url, "SELECT indexdef FROM pg_indexes WHERE indexname = 'warlock_cache_embed_hnsw'"
    )
    ((options,),) = query(
        url, "SELECT reloptions FROM pg_class WHERE relname = 'warlock_ai_cacheentry'"
    )
    return indexdef, options


@pytest.mark.parametrize("fresh_project_db", ["postgres"], indirect=True)
def test_migrate_rebuilds_the_index_and_back(fresh_project_db):
    db, url = fresh_project_db, fresh_project_db["url"]
    check(manage(db, "migrate", "--no-input", "-v", "0"))
    indexdef, options = index_and_options(url)
    assert indexdef.endswith(
        "USING hnsw (embedding vector_cosine_ops) WITH (m='16', ef_construction='64') "
        "WHERE (scope IS NULL)"
    )
    assert options == [f"fillfactor={FILLFACTOR}"]

    check(manage(db, "migrate", "warlock_ai", "0005", "--no-input", "-v", "0"))
    indexdef, options = index_and_options(url)
    assert indexdef.endswith("USING hnsw (embedding vector_cosine_ops)")
    assert options is None

    check(manage(db, "migrate", "--no-input", "-v", "0"))
    assert "WHERE (scope IS NULL)" in index_and_options(url)[0]


@pytest.mark.django_db(databases=["default", "pg"], transaction=True)
def test_schema_prints_what_the_migrations_make():
    from django.db import connections

    import warlock_ai as ai

    ddl = ai.cache.db(using="pg").schema()
    assert (
        'USING hnsw ("embedding" vector_cosine_ops) WITH (m = 16, ef_construction = 64) '
        'WHERE "scope" IS NULL;'
    ) in ddl
    assert f'ALTER TABLE "warlock_ai_cacheentry" SET (fillfactor = {FILLFACTOR});' in ddl
    with connections["pg"].cursor() as cursor:
        cursor.execute("SELECT reloptions FROM pg_class WHERE relname = 'warlock_ai_cacheentry'")
        assert cursor.fetchone()[0] == [f"fillfactor={FILLFACTOR}"]
    assert "fillfactor" not in ai.cache.db(using="default").schema()  # SQLite


def test_schema_index_is_the_latest_migrations():
    loader = MigrationLoader(None, ignore_no_migrations=True)
    latest = None
    for key in sorted(k for k in loader.disk_migrations if k[0] == "warlock_ai"):
        for operation in loader.disk_migrations[key].operations:
            if type(operation) is CreateVectorIndex:
                latest = operation
    assert latest is not None
    assert latest.deconstruct() == EMBEDDING_INDEX.deconstruct()
    module = loader.disk_migrations[("warlock_ai", "0006_cache_embedding_index")]
    assert FILLFACTOR == __import__(module.__module__, fromlist=["FILLFACTOR"]).FILLFACTOR
