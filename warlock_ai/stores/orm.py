"""Stores on the Django ORM: any Django database (PostgreSQL in production, SQLite to start).

A snapshot save is one SQL statement, an upsert (``INSERT ... ON CONFLICT (run_id) DO
UPDATE``) on PostgreSQL and SQLite, with the JSON columns sent pre-encoded by the engine.
"""

from __future__ import annotations

from typing import Any

from django.db import DatabaseError, connections, transaction

from ..core.errors import StoreError
from ..core.snapshots import TERMINAL_STATUSES
from .base import SnapshotStore

# Columns written by a save, in order; the lease and cancel columns are left alone.
_WRITE_FIELDS = (
    "run_id",
    "kind",
    "name",
    "signature",
    "version",
    "status",
    "next_step",
    "iteration",
    "input",
    "state",
    "steps",
    "usage",
    "error",
    "fingerprint",
    "started_at",
    "saved_at",
    "finished_at",
)
_JSON_FIELDS = frozenset({"input", "state", "steps", "usage", "error", "fingerprint"})
_UPSERT_VENDORS = frozenset({"postgresql", "sqlite"})


def _model():
    from ..models import Snapshot

    return Snapshot


class DatabaseSnapshotStore(SnapshotStore):
    """Snapshots as rows of ``warlock_ai.models.Snapshot`` on the database alias ``using``."""

    def __init__(self, using: str = "default") -> None:
        if using not in connections:
            raise StoreError(
                f"DatabaseSnapshotStore: no database alias {using!r} in settings.DATABASES"
            )
        self.using = using
        self._sql: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"<DatabaseSnapshotStore using={self.using!r}>"

    # --- write ----------------------------------------------------------------------------

    def _upsert_sql(self, connection: Any) -> str:
        vendor = connection.vendor
        sql = self._sql.get(vendor)
        if sql is None:
            meta = _model()._meta
            qn = connection.ops.quote_name
            cast = "::jsonb" if vendor == "postgresql" else ""
            columns = [meta.get_field(f).column for f in _WRITE_FIELDS]
            values = [f"%s{cast}" if f in _JSON_FIELDS else "%s" for f in _WRITE_FIELDS]
            updates = [f"{qn(c)} = EXCLUDED.{qn(c)}" for c in columns[1:]]
            sql = (
                f"INSERT INTO {qn(meta.db_table)} ({', '.join(qn(c) for c in columns)}) "
                f"VALUES ({', '.join(values)}) "
                f"ON CONFLICT ({qn(columns[0])}) DO UPDATE SET {', '.join(updates)}"
            )
            self._sql[vendor] = sql
        return sql

    def _row(self, snapshot: Any, connection: Any) -> dict[str, Any]:
        parts = snapshot.json_parts()
        adapt = connection.ops.adapt_datetimefield_value
        finished = snapshot.saved_at if snapshot.status in TERMINAL_STATUSES else None
        row = {
            "run_id": snapshot.run_id,
            "kind": snapshot.kind,
            "name": snapshot.name,
            "signature": snapshot.signature,
            "version": snapshot.version,
            "status": snapshot.status,
            "next_step": snapshot.next_step,
            "iteration": snapshot.iteration,
            "started_at": adapt(snapshot.started_at),
            "saved_at": adapt(snapshot.saved_at),
            "finished_at": adapt(finished) if finished else None,
        }
        for key in _JSON_FIELDS:
            text = parts[key]
            row[key] = None if text == "null" and key != "state" else text
        return row

    def save(self, snapshot: Any) -> None:
        connection = connections[self.using]
        row = self._row(snapshot, connection)
        try:
            if connection.vendor in _UPSERT_VENDORS:
                with connection.cursor() as cursor:
                    cursor.execute(self._upsert_sql(connection), [row[f] for f in _WRITE_FIELDS])
            else:  # other databases: two statements in one transaction
                self._save_portable(snapshot)
        except DatabaseError as exc:
            raise StoreError(
                f'could not save the snapshot of run "{snapshot.run_id}" '
                f'to database "{self.using}": {exc}'
            ) from exc

    def _save_portable(self, snapshot: Any) -> None:
        from ..core.serialization import loads

        parts = snapshot.json_parts()
        values = {
            "kind": snapshot.kind,
            "name": snapshot.name,
            "signature": snapshot.signature,
            "version": snapshot.version,
            "status": snapshot.status,
            "next_step": snapshot.next_step,
            "iteration": snapshot.iteration,
            "started_at": snapshot.started_at,
            "saved_at": snapshot.saved_at,
            "finished_at": snapshot.saved_at if snapshot.status in TERMINAL_STATUSES else None,
            **{key: loads(parts[key]) for key in _JSON_FIELDS},
        }
        with transaction.atomic(using=self.using):
            _model().objects.using(self.using).update_or_create(
                run_id=snapshot.run_id, defaults=values
            )

    # --- read, delete, list ---------------------------------------------------------------

    def load(self, run_id: str) -> Any | None:
        try:
            row = _model().objects.using(self.using).filter(pk=run_id).first()
        except DatabaseError as exc:
            raise StoreError(
                f'could not load run "{run_id}" from database "{self.using}": {exc}'
            ) from exc
        return row.to_snapshot() if row is not None else None

    def delete(self, run_id: str) -> bool:
        deleted, _ = _model().objects.using(self.using).filter(pk=run_id).delete()
        return deleted > 0

    def list(self, prefix: str = "") -> list[str]:
        qs = _model().objects.using(self.using)
        if prefix:
            qs = qs.filter(run_id__startswith=prefix)
        return list(qs.order_by("run_id").values_list("run_id", flat=True))
