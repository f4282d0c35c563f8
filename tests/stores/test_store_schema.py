"""Every store's ``schema()``: the DDL its migrations create ("" for memory and Redis). The DDL
is run on an empty SQLite database and in a fresh PostgreSQL 16 schema, and the tables it makes
have the columns of the migrated ones."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest
from django.db import connections, transaction

import warlock_ai as ai
from tests import services
from warlock_ai.models import CacheEntry, Checkpoint, Snapshot, SnapshotValue


def ddl_stores(using: str) -> list[tuple[Any, Any]]:
    return [
        (ai.snapshot.db(using=using), Snapshot),
        (ai.snapshot.db(using=using), SnapshotValue),
        (ai.checkpoint.db(using=using), Checkpoint),
        (ai.cache.db(using=using), CacheEntry),
    ]


def columns(using: str, table: str, cursor: Any = None) -> set[str]:
    connection = connections[using]
    with connection.cursor() as own:
        found = connection.introspection.get_table_description(cursor or own, table)
    return {column.name for column in found}


@pytest.mark.django_db(databases=["default"], transaction=True)
def test_sqlite_schema_creates_the_migrated_tables() -> None:
    for store, model in ddl_stores("default"):
        ddl = store.schema()
        assert f'CREATE TABLE "{model._meta.db_table}"' in ddl
        fresh = sqlite3.connect(":memory:")
        fresh.executescript(";\n".join(ddl.split("\n")) + ";")
        made = {row[1] for row in fresh.execute(f'PRAGMA table_info("{model._meta.db_table}")')}
        assert made == columns("default", model._meta.db_table)
        indexes = fresh.execute(
            "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = ?",
            (model._meta.db_table,),
        ).fetchone()[0]
        assert indexes >= 1


@pytest.mark.django_db(databases=["pg"], transaction=True)
@pytest.mark.services
def test_postgres16_schema_creates_the_migrated_tables_with_pgvector() -> None:
    cache_ddl = ai.cache.db(using="pg").schema()
    assert "CREATE EXTENSION IF NOT EXISTS vector" in cache_ddl
    assert "USING hnsw" in cache_ddl and "vector_cosine_ops" in cache_ddl
    connection = connections["pg"]
    for store, model in ddl_stores("pg"):
        table = model._meta.db_table
        migrated = columns("pg", table)
        with transaction.atomic(using="pg"), connection.cursor() as cursor:
            cursor.execute("CREATE SCHEMA warlock_ddl_check")
            cursor.execute("SET LOCAL search_path TO warlock_ddl_check, public")
            cursor.execute(store.schema())
            cursor.execute(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_schema = 'warlock_ddl_check' AND table_name = %s",
                [table],
            )
            made = {row[0] for row in cursor.fetchall()}
            transaction.set_rollback(True, using="pg")
        assert made == migrated, table


@pytest.mark.services
def test_memory_and_redis_stores_need_no_tables() -> None:
    assert ai.snapshot.memory().schema() == ""
    assert ai.checkpoint.memory().schema() == ""
    assert ai.cache.memory().schema() == ""
    url = services.redis_url()
    assert ai.snapshot.redis(url=url).schema() == ""
    assert ai.checkpoint.redis(url=url).schema() == ""
    assert ai.cache.redis(url=url).schema() == ""
