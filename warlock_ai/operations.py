"""Operations on runs, written once and called by the commands, the admin, the API and jobs.

(``load_snapshot``, ``definition_for``, ``execute_flow``, ``resume_run``, ``live_lease`` and
``snapshot_store`` come from ``warlock_ai.runs`` and are importable from here too.)

Each acts through the snapshot store contract (``load``, ``save``, ``delete``, ``lease``,
``request_cancel``, ``runs``, ``count``, ``delete_runs``), so it behaves the same on the
database, Redis and memory stores. ``store`` defaults to the configured one: ``ai.config``'s
``default_snapshot_store``, else ``WARLOCK_AI["SNAPSHOT_STORE"]`` (what a definition without
a store of its own writes to).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.apps import apps
from django.conf import settings
from django.utils import timezone

from .conf import warlock_settings
from .core.errors import (
    AIError,
    LeaseHeldError,
    MigrationError,
    QueueUnavailableError,
    RunCompletedError,
    RunExistsError,
    RunNotRunningError,
    StoreError,
    UnknownRunError,
    UnreadableSnapshotError,
)
from .core.runs.kinds import kind_named
from .core.runs.leases import held_error
from .core.runs.snapshots import RUNNING, TERMINAL_STATUSES
from .runs import (
    definition_for,
    execute_flow,
    live_lease,
    load_snapshot,
    resume_run,
    snapshot_store,
)
from .stores.base import RunQuery, SnapshotStore

__all__ = [
    "MigrationError",
    "Outcome",
    "QueueUnavailableError",
    "RunCompletedError",
    "RunExistsError",
    "RunNotRunningError",
    "UnknownRunError",
    "current_step_names",
    "definition_for",
    "describe_result",
    "discard_run",
    "drain_runs",
    "execute_flow",
    "live_lease",
    "load_snapshot",
    "migratable_steps",
    "migrate_run",
    "prune_runs",
    "request_cancel",
    "restart_run",
    "resume_run",
    "rq_configured",
    "snapshot_store",
    "stale_runs",
    "start_resume",
]

logger = logging.getLogger("warlock_ai.operations")

Progress = Callable[[int, int], Any]


@dataclass(frozen=True)
class Outcome:
    """What an operation did, in one line; ``ok`` is False when the run itself failed."""

    message: str
    ok: bool = True

    def __str__(self) -> str:
        return self.message


def rq_configured() -> bool:
    """django-rq is installed and ``WARLOCK_AI["RQ_QUEUE"]`` is one of its ``RQ_QUEUES``."""
    queues = getattr(settings, "RQ_QUEUES", None) or {}
    return apps.is_installed("django_rq") and warlock_settings.RQ_QUEUE in queues


def start_resume(
    run_id: str,
    *,
    force: bool = False,
    enqueue: bool | None = None,
    store: SnapshotStore | None = None,
) -> Outcome:
    """Resume a run on a django-rq worker (when rq is configured, or ``enqueue``) or inline;
    returns a one-line outcome. A completed run, a live lease and (unless ``force``) drift
    are refused with an ``AIError`` before anything runs or is enqueued."""
    store = snapshot_store(store)
    snapshot = load_snapshot(run_id, store)
    if snapshot.status == "completed":
        raise RunCompletedError(f'run "{run_id}" is already completed: there is nothing to resume')
    definition = definition_for(snapshot, store)
    if not force:
        definition.check_drift(snapshot)
    _refuse_live_lease(run_id, store, "resume", snapshot.status)
    if rq_configured() if enqueue is None else enqueue:
        from .jobs import enqueue_resume

        with _enqueueing(run_id):
            job = enqueue_resume(run_id, force=force)
        return Outcome(f'run "{run_id}" enqueued as job {job.id}: a worker resumes it')
    return describe_result(run_id, definition.resume(run_id, force=force))


def restart_run(
    run_id: str, *, enqueue: bool | None = None, store: SnapshotStore | None = None
) -> Outcome:
    """Discard a run and start it again from scratch with the same input and run id.

    If the new start cannot even be enqueued, the discarded snapshot is put back.
    """
    store = snapshot_store(store)
    snapshot = load_snapshot(run_id, store)
    definition = definition_for(snapshot, store)
    _refuse_live_lease(run_id, store, "restart", snapshot.status)
    store.delete(run_id)
    if not (rq_configured() if enqueue is None else enqueue):
        return describe_result(run_id, definition.execute(snapshot.input, run_id=run_id))
    from .jobs import enqueue_execute

    try:
        with _enqueueing(run_id):
            job = enqueue_execute(f"{definition.kind}:{definition.name}", snapshot.input, run_id)
    except BaseException:
        store.save(snapshot)
        raise
    return Outcome(f'run "{run_id}" enqueued again from scratch as job {job.id}')


@contextmanager
def _enqueueing(run_id: str) -> Iterator[None]:
    """Turn a queue failure into one clear error (a refusal by the jobs layer passes as is)."""
    try:
        yield
    except AIError:
        raise
    except Exception as exc:
        queue = warlock_settings.RQ_QUEUE
        raise QueueUnavailableError(
            f'could not enqueue run "{run_id}" on the django-rq queue "{queue}": '
            f"{type(exc).__name__}: {exc}"
        ) from exc


def describe_result(run_id: str, result: Any) -> Outcome:
    """A run's result in one line: its status, duration and error."""
    report = result.report
    seconds = getattr(report, "duration_ms", 0) / 1000
    text = f'run "{run_id}" {report.status} in {seconds:.1f} s'
    if result.error is not None:
        text += f": {result.error.message}"
    return Outcome(text, ok=result.error is None)


def _refuse_live_lease(run_id: str, store: SnapshotStore, doing: str, status: str) -> None:
    lease = live_lease(run_id, store, status)
    if lease is not None:
        raise held_error(run_id, *lease, doing=doing)


def discard_run(run_id: str, store: SnapshotStore | None = None) -> None:
    """Delete a run's snapshot; refused while a live worker holds the run. A snapshot that
    cannot be read is discarded too (its lease is checked as if it were running, unless it
    says it finished)."""
    store = snapshot_store(store)
    try:
        status = load_snapshot(run_id, store).status
    except UnreadableSnapshotError as exc:
        status = exc.status if exc.status in TERMINAL_STATUSES else RUNNING
    _refuse_live_lease(run_id, store, "discard", status)
    store.delete(run_id)


def request_cancel(run_id: str, reason: str = "", store: SnapshotStore | None = None) -> None:
    """Ask the worker running ``run_id`` to stop at its next check point (run ends cancelled)."""
    store = snapshot_store(store)
    snapshot = load_snapshot(run_id, store)
    if not store.supports_cancel:
        raise StoreError(f"{store!r} cannot carry a cancel request to the run's worker")
    # The store only records the request while the run is still running (it may finish
    # between this read and the write).
    if snapshot.status != RUNNING or not store.request_cancel(run_id, reason):
        status = load_snapshot(run_id, store).status
        raise RunNotRunningError(
            f'run "{run_id}" is {status}, not running: there is nothing to cancel'
        )


def migrate_run(
    run_id: str,
    renames: Mapping[str, str],
    accept_signature: bool = False,
    drop: Iterable[str] = (),
    store: SnapshotStore | None = None,
) -> Any:
    """The seed's manual migration: rename step records (and drop the ones in ``drop``),
    optionally accept the current signature. A mapping that does not fit is refused and
    nothing is saved."""
    store = snapshot_store(store)
    snapshot: Any = load_snapshot(run_id, store)
    kind = kind_named(snapshot.kind)
    if not kind.migratable:
        raise MigrationError(
            f'run "{run_id}" is a {kind.name} run: it has {kind.units}, not step records to '
            "rename; discard it, or resume it with force"
        )
    definition = definition_for(snapshot, store)
    drop = set(drop)
    _check_mapping(snapshot, definition, renames, drop)
    _refuse_live_lease(run_id, store, "migrate", snapshot.status)
    steps = {n: r for n, r in snapshot.steps.items() if n not in drop}
    renamed = {renames.get(name, name): record for name, record in steps.items()}
    pending = None if snapshot.next in drop else renames.get(snapshot.next, snapshot.next)
    changes: dict[str, Any] = {"steps": renamed, "next": pending}
    if accept_signature:
        changes.update(
            signature=definition.signature,
            fingerprint=definition.fingerprint,
            version=definition.version,
        )
    migrated = dataclasses.replace(snapshot, **changes)
    store.save(migrated)
    return migrated


def migratable_steps(snapshot: Any) -> list[str]:
    """The stored step names a migration maps: recorded steps, then the pending one."""
    names = list(snapshot.steps)
    if snapshot.next and snapshot.next not in names:
        names.append(snapshot.next)
    return names


def current_step_names(definition: Any) -> list[str]:
    """Every step name of ``definition`` (parallel children included), in order."""
    return [step.name for step in _all_steps(definition)]


def _check_mapping(snapshot: Any, definition: Any, renames: Mapping[str, str], drop: set) -> None:
    run_id, stored = snapshot.run_id, migratable_steps(snapshot)
    current = set(current_step_names(definition))
    for old in [*renames, *drop]:
        if old not in stored:
            known = ", ".join(stored) or "none"
            raise MigrationError(f'run "{run_id}" has no step "{old}" to migrate (it has: {known})')
    targets: dict[str, str] = {}
    for old, new in renames.items():
        if new not in current:
            raise MigrationError(
                f'"{new}" is not a step of {definition.name} '
                f"version {definition.version or '-'} (its steps: {', '.join(sorted(current))})"
            )
        if new in targets:
            raise MigrationError(f'steps "{targets[new]}" and "{old}" are both mapped to "{new}"')
        targets[new] = old
        if new in snapshot.steps and new not in renames and new not in drop:
            raise MigrationError(f'run "{run_id}" already has a step "{new}"')


def _all_steps(definition: Any) -> Iterable[Any]:
    for step in getattr(definition, "steps", ()):
        yield step
        yield from step.parallel or ()


def prune_runs(
    older_than: timedelta | None = None,
    statuses: Iterable[str] = ("completed",),
    batch_size: int = 500,
    progress: Progress | None = None,
    dry_run: bool = False,
    store: SnapshotStore | None = None,
    *,
    saved_before: datetime | None = None,
) -> int:
    """Delete finished runs last saved more than ``older_than`` ago (or before
    ``saved_before``), oldest first, in batches; returns how many (with ``dry_run``, how many
    would be).

    A running run is never deleted, whatever ``statuses`` says; a run that changed status
    meanwhile is left alone (the delete checks the status again).
    """
    if older_than is not None and saved_before is None:
        cutoff = timezone.now() - older_than
    elif saved_before is not None and older_than is None:
        cutoff = saved_before
    else:
        raise TypeError("prune_runs() takes one of older_than= or saved_before=")
    store = snapshot_store(store)
    kept = sorted({s for s in statuses if s != RUNNING})
    query = RunQuery(statuses=frozenset(kept), saved_before=cutoff, oldest_first=True)
    if dry_run:
        return store.count(query)
    ids = [info.run_id for info in store.runs(query)]  # one read; the total is its length
    total, done = len(ids), 0
    for start in range(0, len(ids), batch_size):
        done += store.delete_runs(ids[start : start + batch_size], kept)
        if progress is not None:
            progress(done, total)
    return done


def stale_runs(store: SnapshotStore | None = None) -> list[str]:
    """Running runs no live worker holds (lease never taken, expired, or holder dead),
    oldest first: what ``drain_runs`` resumes."""
    stale = snapshot_store(store).runs(RunQuery(stale=True, oldest_first=True))
    return [info.run_id for info in stale]


def drain_runs(
    enqueue: bool = False, progress: Progress | None = None, store: SnapshotStore | None = None
) -> list[tuple[str, str]]:
    """Resume every stale run (inline, or as django-rq jobs with ``enqueue``).

    Safe on every worker boot and from several hosts at once: leases decide who runs what,
    and a run another worker took meanwhile is reported as skipped.
    """
    outcomes: list[tuple[str, str]] = []
    if enqueue:
        # Jobs a dead worker took before its run's first snapshot write leave no stale run
        # behind: put them back on their queue first.
        from .jobs import requeue_abandoned_jobs

        requeue_abandoned_jobs()
    run_ids = stale_runs(store)
    for index, run_id in enumerate(run_ids, start=1):
        outcomes.append((run_id, _drain_one(run_id, enqueue, store)))
        if progress is not None:
            progress(index, len(run_ids))
    return outcomes


def _drain_one(run_id: str, enqueue: bool, store: SnapshotStore | None) -> str:
    try:
        if enqueue:
            from .jobs import enqueue_resume

            return f"enqueued as job {enqueue_resume(run_id).id}"
        result = resume_run(run_id, store=store)
    except LeaseHeldError as exc:
        return f"skipped: {exc.message}"
    except AIError as exc:
        logger.warning("drain could not resume run %r: %s", run_id, exc.message)
        return f"error: {exc.message}"
    if result.error is not None:
        return f"{result.report.status}: {result.error.message}"
    return result.report.status
