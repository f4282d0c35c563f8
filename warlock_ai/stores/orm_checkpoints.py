"""The checkpoint store on the Django ORM: one ``warlock_ai.models.Checkpoint`` row per turn.

A save is one ``INSERT ... ON CONFLICT DO NOTHING`` on PostgreSQL and SQLite: a turn that is
already stored inserts nothing and becomes ``CheckpointConflictError``, without an exception
inside the database that would poison a surrounding transaction. Rows are never updated.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import DatabaseError, connections, transaction

from ..core.errors import CheckpointConflictError, StoreError, StoreUnavailableError
from ..core.orchestrator.checkpoints import CheckpointRecord, conflict_error, valid_threshold
from ..core.orchestrator.locks import SessionLock
from .base import CheckpointStore
from .orm import model_ddl, unreachable

_COLUMNS = (
    "orchestrator_name",
    "session_id",
    "turn_index",
    "state",
    "last_route",
    "signature",
    "version",
    "summarized_through",
    "lock_acquired_at",
    "lock_expires_at",
    "saved_at",
    "turn_key",
)
_JSON_COLUMNS = frozenset({"state", "last_route"})
_INSERT_VENDORS = frozenset({"postgresql", "sqlite"})


def _model():
    from ..models import Checkpoint

    return Checkpoint


class DatabaseCheckpointStore(CheckpointStore):
    """Checkpoints as rows of ``warlock_ai.models.Checkpoint`` on the database alias ``using``."""

    def schema(self) -> str:
        """The SQL creating the ``Checkpoint`` table on this store's database."""
        return "\n".join(model_ddl(self.using, _model()))

    def __init__(self, using: str = "default") -> None:
        if using not in connections:
            raise StoreError(
                f"DatabaseCheckpointStore: no database alias {using!r} in settings.DATABASES"
            )
        self.using = using
        self._sql: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"<DatabaseCheckpointStore using={self.using!r}>"

    def make_session_lock(self) -> SessionLock:
        """The database's own: a PostgreSQL advisory lock, a file lock beside SQLite."""
        from .session_locks import database_session_lock

        return database_session_lock(self.using)

    def close(self) -> None:
        """Close the session lock's connection or file, if this store made one."""
        self.close_session_lock()

    def _objects(self, name: str, session_id: str) -> Any:
        return _model().objects.using(self.using).for_session(name, session_id)

    def _run(self, what: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except CheckpointConflictError:
            raise
        except DatabaseError as exc:
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if unreachable(self.using, exc):
                raise StoreUnavailableError(
                    f'could not {what} on database "{self.using}": {detail}'
                ) from exc
            hint = "; has `manage.py migrate` been run?" if "exist" in detail else ""
            raise StoreError(
                f'could not {what} on database "{self.using}": {detail}{hint}'
            ) from exc

    # --- write ----------------------------------------------------------------------------

    def _insert_sql(self, connection: Any) -> str:
        sql = self._sql.get(connection.vendor)
        if sql is None:
            meta = _model()._meta
            qn = connection.ops.quote_name
            cast = "::jsonb" if connection.vendor == "postgresql" else ""
            columns = ", ".join(qn(meta.get_field(c).column) for c in _COLUMNS)
            values = ", ".join(f"%s{cast}" if c in _JSON_COLUMNS else "%s" for c in _COLUMNS)
            sql = f"INSERT INTO {qn(meta.db_table)} ({columns}) VALUES ({values}) "
            sql += "ON CONFLICT DO NOTHING"
            self._sql[connection.vendor] = sql
        return sql

    def _params(self, record: CheckpointRecord, connection: Any) -> list[Any]:
        parts = record.json_parts()
        adapt = connection.ops.adapt_datetimefield_value
        return [
            record.orchestrator_name,
            record.session_id,
            record.turn_index,
            parts["state"],
            None if record.last_route is None else parts["last_route"],
            record.signature,
            record.version,
            record.summarized_through,
            adapt(record.lock_acquired_at) if record.lock_acquired_at else None,
            adapt(record.lock_expires_at) if record.lock_expires_at else None,
            adapt(record.saved_at),
            record.turn_key,
        ]

    def save(self, record: CheckpointRecord) -> None:
        connection = connections[self.using]
        what = f'save turn {record.turn_index} of session "{record.session_id}"'
        if connection.vendor not in _INSERT_VENDORS:
            self._run(what, lambda: self._save_portable(record))
            return
        params = self._params(record, connection)

        def insert() -> int:
            with connection.cursor() as cursor:
                cursor.execute(self._insert_sql(connection), params)
                return cursor.rowcount

        if self._run(what, insert) == 0:
            raise conflict_error(*record.key)

    def _prune_sql(self, connection: Any) -> str:
        key = "prune:" + connection.vendor
        sql = self._sql.get(key)
        if sql is None:
            meta = _model()._meta
            qn = connection.ops.quote_name
            name, session, turn = (
                qn(meta.get_field(c).column)
                for c in ("orchestrator_name", "session_id", "turn_index")
            )
            sql = (
                f"DELETE FROM {qn(meta.db_table)} "
                f"WHERE {name} = %s AND {session} = %s AND {turn} < %s"
            )
            self._sql[key] = sql
        return sql

    def _append_sql(self, connection: Any) -> str:
        """PostgreSQL: the insert and the prune in one statement (one round trip, one
        commit); the prune runs only when the insert did. Answers (inserted, pruned)."""
        key = "append:" + connection.vendor
        sql = self._sql.get(key)
        if sql is None:
            sql = (
                f"WITH ins AS ({self._insert_sql(connection)} RETURNING 1), "
                f"del AS ({self._prune_sql(connection)} AND EXISTS (SELECT 1 FROM ins) "
                "RETURNING 1) SELECT (SELECT count(*) FROM ins), (SELECT count(*) FROM del)"
            )
            self._sql[key] = sql
        return sql

    def append(self, record: CheckpointRecord, prune_below: int | None = None) -> None:
        """The turn's row and its prune in one transaction: one commit per turn."""
        connection = connections[self.using]
        if (
            prune_below is None
            or not valid_threshold(prune_below)
            or connection.vendor not in _INSERT_VENDORS
            or connection.in_atomic_block
        ):
            super().append(record, prune_below)
            return
        what = f'save turn {record.turn_index} of session "{record.session_id}"'
        params = self._params(record, connection)
        name, session_id = record.orchestrator_name, record.session_id

        def together() -> int:
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute(
                        self._append_sql(connection), [*params, name, session_id, prune_below]
                    )
                    inserted: int = cursor.fetchone()[0]
                    return inserted
            with transaction.atomic(using=self.using), connection.cursor() as cursor:
                cursor.execute(self._insert_sql(connection), params)
                if cursor.rowcount == 0:
                    return 0
                cursor.execute(self._prune_sql(connection), [name, session_id, prune_below])
                return 1

        if self._run(what, together) == 0:
            raise conflict_error(*record.key)

    def _save_portable(self, record: CheckpointRecord) -> None:
        data = record.to_dict()
        for field in ("lock_acquired_at", "lock_expires_at", "saved_at"):
            data[field] = getattr(record, field)
        record.json_parts()  # a non-JSON state fails here, naming its path
        _model()(**data).save(using=self.using)  # IntegrityError -> CheckpointConflictError

    # --- read, delete, list, prune --------------------------------------------------------

    def load(self, name: str, session_id: str) -> CheckpointRecord | None:
        def latest() -> Any:
            return self._objects(name, session_id).order_by("-turn_index").first()

        row = self._run(f'load session "{session_id}" of "{name}"', latest)
        return row.to_record() if row is not None else None

    def history(self, name: str, session_id: str) -> list[CheckpointRecord]:
        def rows() -> list[Any]:
            return list(self._objects(name, session_id).order_by("turn_index"))

        return [row.to_record() for row in self._run(f'read session "{session_id}"', rows)]

    def delete(self, name: str, session_id: str) -> int:
        def remove() -> int:
            return self._objects(name, session_id).delete()[0]

        return self._run(f'delete session "{session_id}" of "{name}"', remove)

    def list(self, name: str, prefix: str = "") -> list[str]:
        def ids() -> list[str]:
            qs = _model().objects.using(self.using).filter(orchestrator_name=name)
            if prefix:
                qs = qs.filter(session_id__startswith=prefix)
            qs = qs.order_by("session_id").values_list("session_id", flat=True).distinct()
            # SQLite's LIKE ignores ASCII case: keep only exact prefix matches.
            return [sid for sid in qs if sid.startswith(prefix)]

        return self._run(f'list sessions of "{name}"', ids)

    def prune(self, name: str, session_id: str, keep_from_turn: int) -> int:
        if not valid_threshold(keep_from_turn):
            return 0

        def remove() -> int:
            qs = self._objects(name, session_id).filter(turn_index__lt=keep_from_turn)
            return qs.delete()[0]

        return self._run(f'prune session "{session_id}" of "{name}"', remove)
