"""pgvector on a Django database: detecting it, and the migration operations that use it.

The cache's embedding column is pgvector's ``vector(n)`` only on a PostgreSQL database where
the ``vector`` extension is installed; everywhere else it is portable text holding a JSON array.
The choice is made when the migration runs, from the database it runs on, so one migration
serves SQLite, PostgreSQL with pgvector and PostgreSQL without it.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.db import DatabaseError, transaction
from django.db.migrations.operations.base import Operation
from django.db.models import Q
from django.db.models.sql import Query

logger = logging.getLogger("warlock_ai.vector")

#: Embedding size when ``WARLOCK_AI["CACHE"]["OPTIONS"]["dimensions"]`` is not set
#: (OpenAI's text-embedding-3-small and ada-002).
DEFAULT_DIMENSIONS = 1536
#: pgvector's limits: a ``vector`` column holds up to 16,000 dimensions, an HNSW index 2,000.
MAX_DIMENSIONS = 16000
MAX_INDEXED_DIMENSIONS = 2000

_installed: dict[tuple[Any, ...], bool] = {}


def _key(connection: Any) -> tuple[Any, ...]:
    settings = connection.settings_dict
    return (connection.alias, settings.get("NAME"), settings.get("HOST"), settings.get("PORT"))


def _query_flag(connection: Any, sql: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchone() is not None


def pgvector_installed(connection: Any, *, cached: bool = True) -> bool:
    """Whether the ``vector`` extension is installed in this connection's database.

    Cached per database (alias, name, host, port) for the life of the process: the answer only
    changes when someone runs ``CREATE EXTENSION``, which :class:`CreateVectorExtension`
    reports by calling :func:`forget`.
    """
    if connection.vendor != "postgresql":
        return False
    key = _key(connection)
    if cached and key in _installed:
        return _installed[key]
    found = _query_flag(connection, "SELECT 1 FROM pg_extension WHERE extname = 'vector'")
    _installed[key] = found
    return found


def pgvector_available(connection: Any) -> bool:
    """Whether the server could install ``vector`` (its files are there), installed or not."""
    if connection.vendor != "postgresql":
        return False
    return _query_flag(connection, "SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")


def forget(connection: Any | None = None) -> None:
    """Drop the cached detection of ``connection``'s database (of every database if None)."""
    if connection is None:
        _installed.clear()
    else:
        _installed.pop(_key(connection), None)


def _forget_on_change(*, setting: str, **kwargs: Any) -> None:
    if setting == "DATABASES":
        forget()


setting_changed.connect(_forget_on_change)


def dimensions() -> int:
    """The embedding size: ``WARLOCK_AI["CACHE"]["OPTIONS"]["dimensions"]``, else 1536.

    Read when a migration creates the column: changing it later does not resize the column.
    """
    from .conf import warlock_settings

    cache = warlock_settings.CACHE
    value = (cache or {}).get("OPTIONS", {}).get("dimensions", DEFAULT_DIMENSIONS)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_DIMENSIONS:
        raise ImproperlyConfigured(
            f'settings.WARLOCK_AI["CACHE"]["OPTIONS"]["dimensions"] must be an int from 1 to '
            f"{MAX_DIMENSIONS}, got {value!r}"
        )
    return value


class CreateVectorExtension(Operation):
    """``CREATE EXTENSION IF NOT EXISTS vector`` where PostgreSQL has pgvector available.

    Elsewhere (SQLite, a PostgreSQL without pgvector's files, a user not allowed to create
    extensions) it does nothing but log: the embedding column is then created as portable
    text, and ``manage.py check --database`` says so (``warlock_ai.W003``/``W004``).
    Reversing it leaves the extension in place: other tables may use it.
    """

    reversible = True

    def state_forwards(self, app_label: str, state: Any) -> None:
        pass

    def database_forwards(self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any):
        connection = schema_editor.connection
        if connection.vendor != "postgresql" or schema_editor.collect_sql:
            return
        if pgvector_installed(connection, cached=False) or not pgvector_available(connection):
            return
        try:
            with transaction.atomic(using=connection.alias):
                schema_editor.execute("CREATE EXTENSION IF NOT EXISTS vector")
        except DatabaseError as exc:
            logger.warning(
                "could not create the pgvector extension on database %r (%s); the cache's "
                "embedding column will be text and similarity search exact",
                connection.alias,
                exc,
            )
        finally:
            forget(connection)

    def database_backwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ):
        pass

    def describe(self) -> str:
        return "Create the pgvector extension where it is available"

    @property
    def migration_name_fragment(self) -> str:
        return "create_vector_extension"


class CreateVectorIndex(Operation):
    """An HNSW index with ``vector_cosine_ops`` on a column, if that column is a ``vector``.

    ``m`` and ``ef_construction`` are pgvector's index parameters (its defaults, 16 and 64,
    when left out); ``condition`` (a ``Q``) makes it a partial index, like ``Index.condition``.
    The index is not part of the model state (it cannot exist on every database), so
    ``makemigrations`` never sees it; this operation creates it where it can and drops it when
    reversed.
    """

    reversible = True

    def __init__(
        self,
        model_name: str,
        field_name: str,
        name: str,
        m: int | None = None,
        ef_construction: int | None = None,
        condition: Q | None = None,
    ) -> None:
        self.model_name = model_name
        self.field_name = field_name
        self.name = name
        self.m = m
        self.ef_construction = ef_construction
        self.condition = condition

    def deconstruct(self) -> tuple[str, list[Any], dict[str, Any]]:
        kwargs: dict[str, Any] = {
            "model_name": self.model_name,
            "field_name": self.field_name,
            "name": self.name,
        }
        for option in ("m", "ef_construction", "condition"):
            if getattr(self, option) is not None:
                kwargs[option] = getattr(self, option)
        return (type(self).__qualname__, [], kwargs)

    def state_forwards(self, app_label: str, state: Any) -> None:
        pass

    def database_forwards(self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any):
        self.create(schema_editor, to_state.apps.get_model(app_label, self.model_name))

    def database_backwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ):
        self.drop(schema_editor)

    def create(self, schema_editor: Any, model: Any) -> None:
        """``CREATE INDEX`` where ``model``'s column is a vector of at most 2,000 dimensions."""
        connection = schema_editor.connection
        if connection.vendor != "postgresql":
            return
        table = model._meta.db_table
        column = model._meta.get_field(self.field_name).column
        size = _vector_size(connection, table, column)
        if size is None:
            return
        if size > MAX_INDEXED_DIMENSIONS:
            logger.warning(
                "%s.%s is vector(%d): pgvector indexes at most %d dimensions, no HNSW index",
                table,
                column,
                size,
                MAX_INDEXED_DIMENSIONS,
            )
            return
        schema_editor.execute(self.sql(schema_editor, model))

    def drop(self, schema_editor: Any) -> None:
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(f"DROP INDEX IF EXISTS {schema_editor.quote_name(self.name)}")

    def sql(self, schema_editor: Any, model: Any) -> str:
        """The ``CREATE INDEX`` statement, on any PostgreSQL (``schema()`` prints it)."""
        qn = schema_editor.quote_name
        column = model._meta.get_field(self.field_name).column
        sql = (
            f"CREATE INDEX IF NOT EXISTS {qn(self.name)} ON {qn(model._meta.db_table)} "
            f"USING hnsw ({qn(column)} vector_cosine_ops)"
        )
        options = {"m": self.m, "ef_construction": self.ef_construction}
        given = [f"{option} = {int(value)}" for option, value in options.items() if value]
        if given:
            sql += f" WITH ({', '.join(given)})"
        if self.condition is not None:
            sql += f" WHERE {_condition_sql(self.condition, model, schema_editor)}"
        return sql

    def describe(self) -> str:
        return f"Create HNSW index {self.name} on {self.model_name}.{self.field_name} (pgvector)"

    @property
    def migration_name_fragment(self) -> str:
        return self.name.lower()


class DropVectorIndex(CreateVectorIndex):
    """The reverse of :class:`CreateVectorIndex`: drops the index, and reversed creates it again
    with the parameters given here (those it had)."""

    def database_forwards(self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any):
        self.drop(schema_editor)

    def database_backwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ):
        self.create(schema_editor, to_state.apps.get_model(app_label, self.model_name))

    def describe(self) -> str:
        return f"Drop HNSW index {self.name} on {self.model_name}.{self.field_name} (pgvector)"

    @property
    def migration_name_fragment(self) -> str:
        return f"drop_{self.name.lower()}"


def _condition_sql(condition: Q, model: Any, schema_editor: Any) -> str:
    """A ``Q`` as the SQL of a partial index's ``WHERE``, as Django's ``Index`` writes it."""
    query = Query(model=model, alias_cols=False)
    where = query.build_where(condition)
    compiler = query.get_compiler(connection=schema_editor.connection)
    sql, params = where.as_sql(compiler, schema_editor.connection)
    return sql % tuple(schema_editor.quote_value(param) for param in params)


def column_type(connection: Any, table: str, column: str) -> tuple[str, int] | None:
    """``(type name, typmod)`` of ``table.column`` on PostgreSQL (``("vector", 1536)``), or
    ``None`` when the table or the column does not exist."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT t.typname, a.atttypmod FROM pg_attribute a "
            "JOIN pg_type t ON t.oid = a.atttypid "
            "WHERE a.attrelid = to_regclass(%s) AND a.attname = %s AND NOT a.attisdropped",
            [connection.ops.quote_name(table), column],
        )
        row = cursor.fetchone()
    return (row[0], row[1]) if row else None


def _vector_size(connection: Any, table: str, column: str) -> int | None:
    """``n`` when ``table.column`` is a ``vector(n)`` column, else ``None``."""
    found = column_type(connection, table, column)
    if found is None or found[0] != "vector":
        return None
    return found[1] if found[1] > 0 else None
