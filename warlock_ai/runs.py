"""Finding and running stored runs: the configured snapshot store, a run's snapshot and the
registered definition that wrote it, starting and resuming flows, whether a live worker holds
a run. The layer under the operations (``operations``) and the background jobs (``jobs``).
"""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from .core.errors import (
    NotPersistedError,
    NotStartableError,
    RunExistsError,
    StoreError,
    UnknownRunError,
)
from .core.runs import config
from .core.runs.definition import check_run_id
from .core.runs.kinds import kind_named
from .core.runs.leases import lease_state
from .core.runs.snapshots import RUNNING, RunSnapshot
from .registry import registry
from .stores.base import SnapshotStore


def snapshot_store(store: SnapshotStore | None = None) -> SnapshotStore:
    """``store``, else the configured snapshot store; ``StoreError`` when there is none."""
    resolved: SnapshotStore | None = store or config.resolve("default_snapshot_store")
    if resolved is None:
        raise StoreError(
            "no snapshot store is configured: set WARLOCK_AI['SNAPSHOT_STORE'] or "
            "ai.config(default_snapshot_store=...)"
        )
    return resolved


def load_snapshot(run_id: str, store: SnapshotStore | None = None) -> RunSnapshot:
    """The stored snapshot of ``run_id`` or ``UnknownRunError``."""
    snap = snapshot_store(store).load(check_run_id(run_id))
    if snap is None:
        raise UnknownRunError(f'no run "{run_id}" in the snapshot store')
    return snap


def definition_for(snapshot: Any, store: SnapshotStore | None = None) -> Any:
    """The registered definition that wrote ``snapshot``; with ``store`` (where the snapshot
    was found), refused unless the definition writes to that store too."""
    definition = registry.get(snapshot.kind, snapshot.name)
    if store is not None and definition.store is not store:
        raise StoreError(
            f'run "{snapshot.run_id}" is in {store!r}, but {definition.kind} '
            f'"{definition.name}" writes to {definition.store!r}; act on it through that store'
        )
    return definition


def execute_flow(name: str, input: Any = None, *, run_id: str | None = None, **options: Any) -> Any:
    """Start the registered flow ``name`` (``kind:name`` when ambiguous) as a new run.

    An existing run is never overwritten by a new one: a stored ``run_id`` is refused.
    """
    definition = startable(name)
    if run_id is not None:
        existing = snapshot_store(definition.store).load(check_run_id(run_id))
        if existing is not None:
            raise RunExistsError(
                f'run "{run_id}" already exists ({existing.status}); resume it with '
                "resume_run, or discard it first to start again"
            )
    return definition.execute(input, run_id=run_id, **options)


def startable(name: str) -> Any:
    """The registered flow ``name``, when its runs are started by name."""
    return check_startable(registry.find(name))


def check_startable(definition: Any) -> Any:
    """``definition``, unless its runs are not started by name (an orchestrator's turns
    start with a session id): then ``NotStartableError`` says how they start."""
    advice = kind_named(definition.kind).start_advice
    if advice is not None:
        raise NotStartableError(
            f'{definition.kind} "{definition.name}" does not start runs by name: {advice}'
        )
    return definition


def resume_run(
    run_id: str, *, force: bool = False, store: SnapshotStore | None = None, **options: Any
) -> Any:
    """Resume a stored run with its registered definition (drift checked unless ``force``),
    the way its kind resumes (a turn: as its session's next turn). None when there was
    nothing left to run (a turn that had been checkpointed already)."""
    snapshot = load_snapshot(run_id, store)
    definition = definition_for(snapshot, store)
    return kind_named(snapshot.kind).resume_stored(definition, run_id, force=force, **options)


def live_lease(
    run_id: str, store: SnapshotStore | None = None, status: str = RUNNING
) -> tuple[str, Any] | None:
    """The run's lease when a live worker holds it (``LeaseState.LIVE``: a finished run's
    leftover lease holds nothing), else None."""
    lease = snapshot_store(store).lease(run_id)
    if lease is None:
        return None
    owner, expires = lease
    return lease if lease_state(owner, expires, timezone.now(), status).blocks else None


def stored_run(report: Any) -> dict[str, Any]:
    """What the store now says of ``report``'s run: ``{"status", "position", ...}``,
    ``{"status": None}`` when nothing is stored, or ``{"unreadable": why}`` (the store is
    still unreachable, or the row cannot be read)."""
    try:
        store = registry.get(report.type, report.name).store
        snapshot = store.load(report.run_id)
    except Exception as exc:  # the store is what failed: say so, do not raise again
        return {"unreadable": f"{type(exc).__name__}: {getattr(exc, 'message', exc)}"}
    if snapshot is None:
        return {"status": None}
    position = kind_named(snapshot.kind).position(
        snapshot.status, snapshot.next_step, snapshot.iteration
    )
    return {
        "status": snapshot.status,
        "position": position,
        "next_step": snapshot.next_step,
        "iteration": snapshot.iteration,
        "saved_at": snapshot.saved_at,
    }


def not_durable_line(report: Any, stored: dict[str, Any]) -> str:
    """One line: the run is not durable, why, and what its stored snapshot says instead."""
    writes = report.failed_writes
    failed = f"{writes} snapshot write{'s' if writes != 1 else ''} failed"
    if report.persist_error is not None:
        failed += f" (last: {report.persist_error.message})"
    if "unreadable" in stored:
        says = f"the stored run cannot be read: {stored['unreadable']}"
    elif stored["status"] is None:
        says = "no snapshot stored"
    else:
        says = f"the stored run says: {stored['status']}, at {stored['position']}"
    return f"run {report.run_id} {report.status} but is not durable: {failed}; {says}"


def not_persisted_error(result: Any) -> NotPersistedError | None:
    """A ``NotPersistedError`` describing ``result`` when its last snapshot was not stored
    (what must not report such a run as done raises it: an rq job)."""
    report = result.report
    if getattr(report, "persisted", True):
        return None
    return NotPersistedError(not_durable_line(report, stored_run(report)))
