"""Stores on the Django ORM: any Django database (PostgreSQL in production, SQLite to start).

A snapshot save is one SQL statement, an upsert (``INSERT ... ON CONFLICT (run_id) DO
UPDATE``) on PostgreSQL and SQLite, with the JSON columns sent pre-encoded by the engine.
Writes the engine makes carry a lease claim and are fenced in that same statement: the
``DO UPDATE`` applies only ``WHERE`` the stored lease allows it, so checking the lease and
writing cannot race.

State keys whose JSON is large (``core.runs.state.EXTERNAL_BYTES``) are stored apart, one
``SnapshotValue`` row each, and rewritten only when they changed since the write the run
writer knows landed (the snapshot's ``delta_base``): a large value a step did not change
costs nothing. When some are written, the same statement does it on PostgreSQL
(data-modifying CTEs, run only if the fenced upsert wrote), the same transaction on SQLite,
and removes the run's other values. The row's ``state_apart`` lists the keys stored apart:
only those values are part of the state (a value left from before, whose key is no longer
listed, is ignored until the next write of values removes it, or the run is deleted), so a
write that stores nothing apart never has to touch the values' table.

On PostgreSQL the save statements are prepared, once per connection (``orm_prepared``).
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import DatabaseError, InterfaceError, OperationalError, connections, transaction
from django.utils import timezone

from ..core.errors import StoreError, StoreUnavailableError
from ..core.runs import leases
from ..core.runs.cancel import CancelRequest
from ..core.runs.serialization import keys_json
from ..core.runs.snapshots import JSON_PARTS, TERMINAL_STATUSES, RunSnapshot
from . import orm_prepared
from .base import (
    RunInfo,
    RunQuery,
    SnapshotStore,
    attempt_dicts,
    check_columns,
    check_lease_seconds,
    check_write_retry_seconds,
    column_problem,
    findable_id,
)

# Columns written by every save, in order; the lease columns only by fenced saves.
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
    "attempts",
    "state_apart",
    "started_at",
    "saved_at",
    "finished_at",
)
_LEASE_FIELDS = ("lease_owner", "lease_expires_at")
#: What one execution never changes: the renewing and releasing writes (UPDATEs of a row
#: this execution's first write made) leave them out, so a large input is sent once.
_FIXED_FIELDS = frozenset(
    ("run_id", "kind", "name", "signature", "version", "input", "fingerprint", "started_at")
)
_UPDATE_FIELDS = tuple(f for f in _WRITE_FIELDS if f not in _FIXED_FIELDS)
# What a RunInfo holds: the columns listings read (never the JSON ones).
_INFO_FIELDS = (
    "run_id",
    "kind",
    "name",
    "status",
    "started_at",
    "saved_at",
    "version",
    "next_step",
    "iteration",
    "finished_at",
    "lease_owner",
    "lease_expires_at",
    "cancel_requested_at",
    "signature",
    "attempts",
)
_CANCEL_FIELDS = ("cancel_requested_at", "cancel_reason")
_JSON_FIELDS = frozenset(JSON_PARTS)
#: Columns sent as JSON text (cast to jsonb on PostgreSQL).
_JSON_COLUMNS = _JSON_FIELDS | {"state_apart"}
_UPSERT_VENDORS = frozenset({"postgresql", "sqlite"})
#: The release of a run that stays running (interrupted): the lease goes, a cancel request
#: stays for the next execution.
_RELEASE_RUNNING = "release-running"


def model_ddl(using: str, model: Any) -> list[str]:
    """The statements creating ``model``'s table, indexes and constraints on database
    ``using`` (what ``sqlmigrate`` shows for a ``CreateModel``), without running them."""
    with connections[using].schema_editor(collect_sql=True, atomic=False) as editor:
        editor.create_model(model)
    return list(editor.collected_sql)


def _model():
    from ..models import Snapshot

    return Snapshot


def _json_parts(snapshot: RunSnapshot) -> tuple[dict[str, str], dict[str, str], Any]:
    """What a save writes as JSON: the parts (the state without its keys stored apart),
    the keys stored apart, and those of them to write (``StateEncoding.changed_since``)."""
    parts = snapshot.record_parts()
    encoding = snapshot.state_encoding()
    parts["state"], apart = encoding.split()
    return parts, apart, encoding.changed_since(snapshot.delta_base)


def _values_model():
    from ..models import SnapshotValue

    return SnapshotValue


def _values_columns(connection: Any) -> tuple[str, str, str, str, str]:
    """The quoted table and columns (run, key, value, size) of ``SnapshotValue``."""
    meta = _values_model()._meta
    qn = connection.ops.quote_name
    columns = (qn(meta.get_field(f).column) for f in ("run", "key", "value", "size"))
    return (qn(meta.db_table), *columns)


def _with_values_written(connection: Any, sql: str) -> str:
    """PostgreSQL: the save statement ``sql`` (which returns a row when it wrote) as one
    statement that also deletes the run's values not kept and upserts the changed ones, only
    if it wrote. Parameters after ``sql``'s: run id, kept keys, run id, changed keys, their
    JSON."""
    table, run, key, value, size = _values_columns(connection)
    return (
        f"WITH s AS ({sql}), "
        f"d AS (DELETE FROM {table} WHERE {run} = %s AND NOT ({key} = ANY(%s::text[])) "
        f"AND EXISTS (SELECT 1 FROM s)), "
        f"v AS (INSERT INTO {table} ({run}, {key}, {value}, {size}) "
        f"SELECT %s, t.k, t.v::jsonb, length(t.v) FROM unnest(%s::text[], %s::text[]) AS t(k, v) "
        f"WHERE EXISTS (SELECT 1 FROM s) "
        f"ON CONFLICT ({run}, {key}) DO UPDATE SET {value} = EXCLUDED.{value}, "
        f"{size} = EXCLUDED.{size}) "
        f"SELECT * FROM s"
    )


def _write_values(
    cursor: Any, connection: Any, run_id: str, changed: dict[str, str], keep: list[str]
) -> None:
    """SQLite (inside the save's transaction): delete the run's values not kept, upsert the
    changed ones."""
    table, run, key, value, size = _values_columns(connection)
    marks = ", ".join(["%s"] * len(keep))
    not_kept = f" AND {key} NOT IN ({marks})" if keep else ""
    cursor.execute(f"DELETE FROM {table} WHERE {run} = %s{not_kept}", [run_id, *keep])
    if changed:
        cursor.executemany(
            f"INSERT INTO {table} ({run}, {key}, {value}, {size}) VALUES (%s, %s, %s, %s) "
            f"ON CONFLICT ({run}, {key}) DO UPDATE SET {value} = excluded.{value}, "
            f"{size} = excluded.{size}",
            [(run_id, k, text, len(text)) for k, text in changed.items()],
        )


class DatabaseSnapshotStore(SnapshotStore):
    """Snapshots as rows of ``warlock_ai.models.Snapshot`` on the database alias ``using``."""

    supports_leases = True
    supports_cancel = True

    def schema(self) -> str:
        """The SQL creating the ``Snapshot`` and ``SnapshotValue`` tables on this store's
        database (on PostgreSQL, a value's column stored uncompressed, as migration 0007
        makes it)."""
        statements = model_ddl(self.using, _model()) + model_ddl(self.using, _values_model())
        connection = connections[self.using]
        if connection.vendor == "postgresql":
            table, _, _, value, _ = _values_columns(connection)
            statements.append(f"ALTER TABLE {table} ALTER COLUMN {value} SET STORAGE EXTERNAL;")
        return "\n".join(statements)

    def __init__(
        self,
        using: str = "default",
        lease_seconds: float | None = None,
        write_retry_seconds: float = SnapshotStore.write_retry_seconds,
        native_async: bool = True,
        prepared: bool | None = None,
    ) -> None:
        if using not in connections:
            raise StoreError(
                f"DatabaseSnapshotStore: no database alias {using!r} in settings.DATABASES"
            )
        if lease_seconds is None:
            from ..conf import warlock_settings

            lease_seconds = warlock_settings.LEASE_SECONDS
        self.using = using
        self.lease_seconds = check_lease_seconds(lease_seconds)
        self.write_retry_seconds = check_write_retry_seconds(write_retry_seconds)
        if not isinstance(native_async, bool):
            raise ValueError(f"native_async must be True or False, not {native_async!r}")
        self.native_async = native_async
        if prepared not in (None, True, False):
            raise ValueError(f"prepared must be None, True or False, not {prepared!r}")
        #: Whether saves on PostgreSQL are prepared statements (``orm_prepared``); None:
        #: unless the alias sets ``DISABLE_SERVER_SIDE_CURSORS`` (a pooler in transaction mode).
        self.prepared = prepared
        self._sql: dict[tuple[str, str, bool, bool], str] = {}

    def __repr__(self) -> str:
        return f"<DatabaseSnapshotStore using={self.using!r}>"

    # --- write ----------------------------------------------------------------------------

    def _sql_for(
        self, connection: Any, mode: str, versioned: bool = False, apart: bool = False
    ) -> str:
        """The statement for a save: an upsert for ``plain`` (no lease) and ``acquire`` /
        ``steal`` (take the lease; steal also from a dead holder; ``versioned`` also requires
        the stored snapshot to be the one loaded), an UPDATE for ``renew`` / ``release`` (the
        run must still exist and be ours). ``apart``: the save also writes state keys stored
        apart (on PostgreSQL in this statement, elsewhere in the statements that follow; the
        statement then returns a row when it wrote). Built once per vendor and mode."""
        key = (connection.vendor, mode, versioned, apart)
        sql = self._sql.get(key)
        if sql is not None:
            return sql
        meta = _model()._meta
        qn = connection.ops.quote_name
        table = qn(meta.db_table)
        cast = "::jsonb" if connection.vendor == "postgresql" else ""
        fields = _WRITE_FIELDS + (() if mode == "plain" else _LEASE_FIELDS)
        columns = [qn(meta.get_field(f).column) for f in fields]
        values = [f"%s{cast}" if f in _JSON_COLUMNS else "%s" for f in fields]
        run_id, owner, expires, saved = (
            f"{table}.{qn(meta.get_field(f).column)}"
            for f in ("run_id", *_LEASE_FIELDS, "saved_at")
        )
        cancel_at, cancel_reason = (qn(meta.get_field(f).column) for f in _CANCEL_FIELDS)
        # A fenced write also brings back any cancel request (no extra query).
        returning = f" RETURNING {cancel_at}, {cancel_reason}" if mode != "plain" else ""
        if apart and mode == "plain":
            returning = f" RETURNING {run_id}"
        if mode in (leases.RENEW, leases.RELEASE, _RELEASE_RUNNING):
            sets = ", ".join(
                f"{c} = {v}"
                for f, c, v in zip(fields, columns, values, strict=True)
                if f not in _FIXED_FIELDS
            )
            if mode == leases.RELEASE:  # a finished run forgets its cancel request
                sets += f", {cancel_at} = NULL, {cancel_reason} = NULL"
            sql = f"UPDATE {table} SET {sets} WHERE {run_id} = %s AND {owner} = %s{returning}"
        else:
            updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns[1:])
            where = ""
            if mode != "plain":
                # Free (no owner), ours, or expired: leases.lease_state's rule in SQL.
                where = f" WHERE ({owner} IS NULL OR {owner} = '' OR {owner} = %s"
                where += f" OR {expires} IS NULL OR {expires} < %s"
                where += f" OR {owner} = %s)" if mode == "steal" else ")"
                where += f" AND {saved} = %s" if versioned else ""
            sql = (
                f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(values)}) "
                f"ON CONFLICT ({columns[0]}) DO UPDATE SET {updates}{where}{returning}"
            )
        if apart and connection.vendor == "postgresql":
            sql = _with_values_written(connection, sql)
        self._sql[key] = sql
        return sql

    def _row(self, snapshot: RunSnapshot, connection: Any) -> tuple[dict[str, Any], Any]:
        """The row's values, and what to write of the state keys stored apart: None when
        nothing, else ``(changed {key: JSON}, every key stored apart)``."""
        parts, apart, changed = _json_parts(snapshot)
        adapt = connection.ops.adapt_datetimefield_value
        finished = snapshot.finished_at
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
        row["state_apart"] = keys_json(apart) if apart else None
        return row, (None if changed is None else (changed, list(apart)))

    def save(
        self, snapshot: RunSnapshot, *, claim: leases.LeaseClaim | None = None
    ) -> CancelRequest | None:
        check_columns(snapshot)
        connection = connections[self.using]
        try:
            if connection.vendor not in _UPSERT_VENDORS:
                return self._save_portable(snapshot, claim)
            row, apart = self._row(snapshot, connection)
            if apart is not None and connection.vendor != "postgresql":
                # The keys stored apart follow in their own statements: one transaction.
                with transaction.atomic(using=self.using):
                    return self._save_row(connection, snapshot.run_id, row, claim, apart)
            return self._save_row(connection, snapshot.run_id, row, claim, apart)
        except DatabaseError as exc:
            raise self._error("save", snapshot.run_id, exc) from exc

    def _error(self, operation: str, run_id: str | None, exc: Exception) -> StoreError:
        """One line: the operation, the run, the database, the database's first line.

        A connection that broke (the server restarted, the network dropped) is closed here,
        so that the next statement opens a new one, and the error is a
        ``StoreUnavailableError``: the run writer retries such a write.
        """
        return self._failure(operation, run_id, exc, self._unreachable(exc))

    def _failure(
        self, operation: str, run_id: str | None, exc: Exception, unavailable: bool
    ) -> StoreError:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        what = f' run "{run_id}"' if run_id else ""
        message = f'could not {operation}{what} in database "{self.using}": {detail}'
        if unavailable:
            return StoreUnavailableError(message)
        missing = "exist" in detail or "no such table" in detail
        hint = "; has `manage.py migrate` been run?" if missing else ""
        if orm_prepared.is_prepared_statement_error(exc):
            hint = orm_prepared.stopped_hint(self.using)
        return StoreError(message + hint)

    def _unreachable(self, exc: Exception) -> bool:
        return unreachable(self.using, exc)

    def _cursor(self, connection: Any) -> Any:
        """Django's cursor (its checks and execute wrappers); on PostgreSQL, unless turned
        off, executing through a cursor that prepares its statements. Not while Django logs
        queries (``DEBUG``, ``CaptureQueriesContext``): the log then shows each statement as
        sent, with its values, which Django cannot show of a prepared one."""
        cursor = connection.cursor()
        if not connection.queries_logged and orm_prepared.prepares(
            self.using, connection, self.prepared
        ):
            cursor.cursor.close()
            cursor.cursor = orm_prepared.preparing_cursor(connection.connection)
        return cursor

    def _save_row(
        self,
        connection: Any,
        run_id: str,
        row: dict[str, Any],
        claim: leases.LeaseClaim | None,
        apart: Any,
    ) -> CancelRequest | None:
        if claim is not None:
            return self._save_fenced(connection, run_id, row, claim, apart)
        with self._cursor(connection) as cursor:
            self._execute(cursor, connection, *self._first(connection, run_id, row), run_id, apart)
        return None

    def _statement(
        self,
        connection: Any,
        mode: str,
        versioned: bool,
        params: list[Any],
        run_id: str,
        apart: Any,
    ) -> tuple[str, list[Any]]:
        """The save statement of ``mode`` and its parameters; with ``apart`` (see ``_row``)
        on PostgreSQL, one that also writes the state keys stored apart."""
        if apart is None:
            return self._sql_for(connection, mode, versioned), params
        sql = self._sql_for(connection, mode, versioned, apart=True)
        if connection.vendor != "postgresql":
            return sql, params
        changed, keep = apart
        return sql, [*params, run_id, keep, run_id, list(changed), [*changed.values()]]

    def _execute(
        self,
        cursor: Any,
        connection: Any,
        mode: str,
        versioned: bool,
        params: list[Any],
        run_id: str,
        apart: Any,
    ) -> Any:
        """Run the save statement of ``mode`` and, with ``apart``, write the state keys
        stored apart once it has written (SQLite: in the statements that follow). Returns
        the row a fenced statement returned (None: it wrote nothing)."""
        sql, params = self._statement(connection, mode, versioned, params, run_id, apart)
        try:
            cursor.execute(sql, params)
        except DatabaseError as exc:
            if not getattr(cursor.cursor, "prepares", False):
                raise
            if not orm_prepared.is_prepared_statement_error(exc):
                raise
            orm_prepared.stop_preparing(self.using, exc)
            if connection.in_atomic_block:
                raise  # the caller's transaction is aborted: nothing to make again in it
            # Nothing was written (the statement failed before it ran): make it unprepared.
            cursor.cursor.close()
            cursor.cursor = connection.connection.cursor()
            cursor.execute(sql, params)
        if mode == "plain" and apart is None:
            return None
        written = cursor.fetchone()
        if written is not None and apart is not None and connection.vendor != "postgresql":
            _write_values(cursor, connection, run_id, *apart)
        return written

    def _first(
        self,
        connection: Any,
        run_id: str,
        row: dict[str, Any],
        claim: leases.LeaseClaim | None = None,
    ) -> tuple[str, bool, list[Any]]:
        """``(mode, versioned, parameters)`` of a save's first statement (fenced by
        ``claim``, if any)."""
        if claim is None:
            return "plain", False, [row[f] for f in _WRITE_FIELDS]
        adapt = connection.ops.adapt_datetimefield_value
        now = timezone.now()
        if claim.mode == leases.RELEASE:
            owner, expires = None, None
        else:
            owner, expires = claim.owner, adapt(now + timedelta(seconds=self.lease_seconds))
        if claim.mode != leases.ACQUIRE:
            mode: str = claim.mode
            if mode == leases.RELEASE and row["status"] not in TERMINAL_STATUSES:
                mode = _RELEASE_RUNNING  # interrupted: an operator's cancel request stays
            changing = [row[f] for f in _UPDATE_FIELDS]
            return mode, False, [*changing, owner, expires, run_id, claim.owner]
        values = [row[f] for f in _WRITE_FIELDS] + [owner, expires]
        versioned = claim.expected is not None
        version = [adapt(claim.expected)] if versioned else []
        return "acquire", versioned, [*values, claim.owner, adapt(now), *version]

    def _save_fenced(
        self,
        connection: Any,
        run_id: str,
        row: dict[str, Any],
        claim: leases.LeaseClaim,
        apart: Any = None,
    ) -> CancelRequest | None:
        mode, versioned, params = self._first(connection, run_id, row, claim)
        with self._cursor(connection) as cursor:
            written = self._execute(cursor, connection, mode, versioned, params, run_id, apart)
            if written is not None:
                return _cancel_request(written)
            if mode != "acquire":
                raise leases.lost_error(run_id, claim, (self.lease(run_id) or (None,))[0])
            holder, until, saved = self._lease_row(run_id)
            if versioned and saved != claim.expected:
                raise leases.changed_error(run_id)
            # The statement took the lease when it was free or expired; left: a dead holder.
            if leases.lease_state(holder, until, timezone.now()) is leases.LeaseState.DEAD:
                # The steal statement's parameters: the acquire's, the holder before the
                # version (the version check comes last in its WHERE).
                at = len(params) - (1 if versioned else 0)
                steal = [*params[:at], holder, *params[at:]]
                written = self._execute(
                    cursor, connection, "steal", versioned, steal, run_id, apart
                )
                if written is not None:
                    return _cancel_request(written)
                holder, until, saved = self._lease_row(run_id)
        raise leases.held_error(run_id, holder, until)

    # --- native async (PostgreSQL) --------------------------------------------------------

    async def asave(
        self, snapshot: RunSnapshot, *, claim: leases.LeaseClaim | None = None
    ) -> CancelRequest | None:
        """On PostgreSQL (unless ``native_async=False``), the save's statement on one of
        the store's psycopg async connections, without a hop to Django's sync thread; the
        rare follow-ups of a refused fenced write (who holds the lease, taking over from a
        dead holder) and other databases go through the sync ``save``."""
        connection = connections[self.using]
        if not self.native_async or connection.vendor != "postgresql":
            return await super().asave(snapshot, claim=claim)
        check_columns(snapshot)
        run_id = snapshot.run_id
        row, apart = self._row(snapshot, connection)
        mode, versioned, params = self._first(connection, run_id, row, claim)
        sql, params = self._statement(connection, mode, versioned, params, run_id, apart)
        pool = self._async_connections()
        prepare = orm_prepared.prepares(self.using, connection, self.prepared)
        try:
            try:
                written = await pool.fetchone(sql, params, prepare=prepare)
            except Exception as exc:
                if not (prepare and orm_prepared.is_prepared_statement_error(exc)):
                    raise
                orm_prepared.stop_preparing(self.using, exc)
                # Autocommit: the statement failed before it ran; make it unprepared.
                written = await pool.fetchone(sql, params)
        except Exception as exc:
            if not _is_psycopg_error(exc):
                raise
            raise self._async_error(run_id, exc) from exc
        if claim is None:
            return None
        if written is not None:
            return _cancel_request(written)
        # Refused: the sync path makes the statement again (refused again, or by then
        # allowed) and works out why, or takes the run over from a dead holder.
        return await super().asave(snapshot, claim=claim)

    def _async_connections(self) -> Any:
        from .orm_async import shared

        return shared(self.using)

    def _async_error(self, run_id: str, exc: Exception) -> StoreError:
        """``_error`` for psycopg's own exceptions: a connection error (the server cannot
        be reached, or went away) is a ``StoreUnavailableError``, retried by the writer."""
        import psycopg

        unavailable = isinstance(
            exc, psycopg.OperationalError | psycopg.InterfaceError
        ) and not isinstance(exc, psycopg.errors.QueryCanceled)
        return self._failure("save", run_id, exc, unavailable)

    def _lease_row(self, run_id: str) -> tuple[Any, Any, Any]:
        row = (
            _model()
            .objects.using(self.using)
            .filter(pk=run_id)
            .values_list("lease_owner", "lease_expires_at", "saved_at")
            .first()
        )
        return row or (None, None, None)

    def _save_portable(
        self, snapshot: RunSnapshot, claim: leases.LeaseClaim | None
    ) -> CancelRequest | None:
        """Databases without ``ON CONFLICT``: lock the row, check the lease, write."""
        from ..core.runs.serialization import loads

        parts, apart, changed = _json_parts(snapshot)
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
            "finished_at": snapshot.finished_at,
            **{key: loads(parts[key]) for key in _JSON_FIELDS},
            "state_apart": list(apart) or None,
        }
        with transaction.atomic(using=self.using):
            manager = _model().objects.using(self.using)
            if claim is not None:
                current = manager.select_for_update().filter(pk=snapshot.run_id).first()
                holder, expires, saved = (
                    (current.lease_owner, current.lease_expires_at, current.saved_at)
                    if current is not None
                    else (None, None, None)
                )
                leases.check_claim(snapshot.run_id, claim, holder, expires, timezone.now(), saved)
                keep = claim.mode != leases.RELEASE
                values["lease_owner"] = claim.owner if keep else None
                values["lease_expires_at"] = (
                    timezone.now() + timedelta(seconds=self.lease_seconds) if keep else None
                )
                if not keep and snapshot.status in TERMINAL_STATUSES:
                    values.update(cancel_requested_at=None, cancel_reason=None)
            manager.update_or_create(run_id=snapshot.run_id, defaults=values)
            if changed is not None:
                stored = _values_model().objects.using(self.using).filter(run_id=snapshot.run_id)
                stored.exclude(key__in=list(apart)).delete()
                for key, text in changed.items():
                    stored.update_or_create(
                        key=key, defaults={"value": loads(text), "size": len(text)}
                    )
            if claim is not None and current is not None and current.cancel_requested_at:
                return CancelRequest(current.cancel_requested_at, current.cancel_reason)
            return None

    # --- read, delete, list ---------------------------------------------------------------

    def load(self, run_id: str) -> RunSnapshot | None:
        if not findable_id(run_id):
            return None
        try:
            row = _model().objects.using(self.using).filter(pk=run_id).first()
        except DatabaseError as exc:
            raise self._error("load", run_id, exc) from exc
        return row.to_snapshot() if row is not None else None

    def lease(self, run_id: str) -> tuple[str, Any] | None:
        try:
            holder, expires, _ = self._lease_row(run_id)
        except DatabaseError as exc:
            raise self._error("read the lease of", run_id, exc) from exc
        return (holder, expires) if holder else None

    def renew_lease(self, run_id: str, owner: str) -> bool | CancelRequest:
        connection = connections[self.using]
        expires = timezone.now() + timedelta(seconds=self.lease_seconds)
        try:
            if connection.vendor not in _UPSERT_VENDORS:
                return self._renew_portable(run_id, owner, expires)
            # One statement: the fenced UPDATE brings back any cancel request.
            with connection.cursor() as cursor:
                adapted = connection.ops.adapt_datetimefield_value(expires)
                cursor.execute(self._renew_sql(connection), [adapted, run_id, owner])
                renewed = cursor.fetchone()
        except DatabaseError as exc:
            raise self._error("renew the lease of", run_id, exc) from exc
        if renewed is None:
            return False
        return _cancel_request(renewed) or True

    def _renew_sql(self, connection: Any) -> str:
        key = (connection.vendor, "heartbeat", False, False)
        sql = self._sql.get(key)
        if sql is None:
            meta = _model()._meta
            qn = connection.ops.quote_name
            run_id, owner, expires, cancel_at, reason = (
                qn(meta.get_field(f).column) for f in ("run_id", *_LEASE_FIELDS, *_CANCEL_FIELDS)
            )
            sql = self._sql[key] = (
                f"UPDATE {qn(meta.db_table)} SET {expires} = %s "
                f"WHERE {run_id} = %s AND {owner} = %s RETURNING {cancel_at}, {reason}"
            )
        return sql

    def _renew_portable(self, run_id: str, owner: str, expires: Any) -> bool | CancelRequest:
        """Databases without ``RETURNING``: the fenced update, then the request it left."""
        rows = _model().objects.using(self.using).filter(pk=run_id, lease_owner=owner)
        if rows.update(lease_expires_at=expires) != 1:
            return False
        renewed = rows.values_list(*_CANCEL_FIELDS).first()
        return (_cancel_request(renewed) if renewed else None) or True

    def request_cancel(self, run_id: str, reason: str = "") -> bool | CancelRequest:
        rows = _model().objects.using(self.using).filter(pk=run_id)
        try:
            # Only a running run without a pending request is written: the first reason wins.
            updated = rows.filter(status="running", cancel_requested_at__isnull=True).update(
                cancel_requested_at=timezone.now(), cancel_reason=reason or None
            )
            if updated:
                return True
            found = rows.values_list("status", *_CANCEL_FIELDS).first()
        except DatabaseError as exc:
            raise self._error("request the cancellation of", run_id, exc) from exc
        if found is None or found[0] != "running" or found[1] is None:
            return False
        return CancelRequest(found[1], found[2])

    def delete(self, run_id: str) -> bool:
        if not findable_id(run_id):
            return False
        try:
            deleted, _ = _model().objects.using(self.using).filter(pk=run_id).delete()
        except DatabaseError as exc:
            raise self._error("delete", run_id, exc) from exc
        return deleted > 0

    def list(self, prefix: str = "") -> list[str]:
        qs = _model().objects.using(self.using)
        if prefix:
            qs = qs.filter(run_id__startswith=prefix)
        try:
            ids = list(qs.order_by("run_id").values_list("run_id", flat=True))
        except DatabaseError as exc:
            raise self._error(f'list runs starting with "{prefix}"', None, exc) from exc
        # LIKE narrows (and uses the index on PostgreSQL); SQLite's LIKE ignores ASCII case,
        # so the exact, case-sensitive prefix test is made here.
        return [run_id for run_id in ids if run_id.startswith(prefix)]

    # --- queries ---------------------------------------------------------------------------

    def _selected(self, query: RunQuery) -> Any:
        rows = _model().objects.using(self.using)
        if query.statuses is not None:
            rows = rows.filter(status__in=sorted(query.statuses))
        if query.kind is not None:
            rows = rows.filter(kind=query.kind)
        if query.name is not None:
            rows = rows.filter(name=query.name)
        if query.prefix:
            rows = rows.filter(run_id__startswith=query.prefix)
        if query.saved_before is not None:
            rows = rows.filter(saved_at__lt=query.saved_before)
        return rows.stale() if query.stale else rows

    def runs(self, query: RunQuery = RunQuery()) -> builtins.list[RunInfo]:
        order = ("saved_at", "run_id") if query.oldest_first else ("-saved_at", "run_id")
        rows = self._selected(query).order_by(*order)
        exact_prefix = not query.prefix or connections[self.using].vendor != "sqlite"
        if query.limit is not None and exact_prefix:
            rows = rows[: query.limit]
        try:
            infos = [
                RunInfo(
                    **values,
                    unreadable=column_problem(values["kind"], values["status"]),
                )
                for values in _with_attempts(rows.values(*_INFO_FIELDS))
            ]
        except DatabaseError as exc:
            raise self._error("list the runs", None, exc) from exc
        if not exact_prefix:  # SQLite's LIKE ignores ASCII case: the exact test is made here
            infos = [info for info in infos if info.run_id.startswith(query.prefix)]
            infos = infos if query.limit is None else infos[: query.limit]
        return infos

    def count(self, query: RunQuery = RunQuery()) -> int:
        if query.prefix and connections[self.using].vendor == "sqlite":
            return len(self.runs(query.unlimited()))
        try:
            return int(self._selected(query).count())
        except DatabaseError as exc:
            raise self._error("count the runs", None, exc) from exc

    def delete_runs(self, run_ids: Sequence[str], statuses: Iterable[str]) -> int:
        rows = _model().objects.using(self.using)
        try:
            deleted, _ = rows.filter(run_id__in=list(run_ids), status__in=list(statuses)).delete()
        except DatabaseError as exc:
            raise self._error("delete the runs", None, exc) from exc
        return int(deleted)


def _is_psycopg_error(exc: Exception) -> bool:
    import psycopg

    return isinstance(exc, psycopg.Error)


def _cancel_request(returned: tuple[Any, Any]) -> CancelRequest | None:
    requested_at, reason = returned
    if not requested_at:
        return None
    if isinstance(requested_at, datetime) and timezone.is_naive(requested_at):
        # A raw cursor on SQLite returns the stored UTC time without its zone.
        requested_at = requested_at.replace(tzinfo=UTC)
    return CancelRequest(requested_at, reason)


def _with_attempts(rows: Iterable[dict[str, Any]]) -> Iterable[dict[str, Any]]:
    for values in rows:
        values["attempts"] = attempt_dicts(values.get("attempts"))
        yield values


def unreachable(using: str, exc: Exception) -> bool:
    """Whether ``exc`` says database ``using`` could not be reached (retrying may work); a
    broken connection is closed on the way. Inside the caller's own transaction nothing is
    retried: closing its connection would lose the transaction."""
    if not isinstance(exc, OperationalError | InterfaceError):
        return False
    connection = connections[using]
    if connection.in_atomic_block:
        return False
    if connection.vendor == "sqlite":  # one file: only a lock held elsewhere is passing
        return "locked" in str(exc) or "busy" in str(exc)
    if connection.connection is not None and connection.is_usable():
        return False  # the connection works: the statement itself failed
    try:
        connection.close()
    except Exception:  # closing a broken connection may complain; it is gone either way
        connection.connection = None
    return True
