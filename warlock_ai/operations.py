"""Operations on runs, written once and called by the commands, the admin, the API and jobs.

(``load_snapshot``, ``definition_for``, ``execute_flow``, ``resume_run``, ``live_lease`` and
``snapshot_store`` come from ``warlock_ai.runs`` and are importable from here too.)

Each acts through the snapshot store contract (``load``, ``save``, ``delete``, ``lease``,
``request_cancel``, ``runs``, ``count``, ``delete_runs``), so it behaves the same on the
database, Redis and memory stores. ``store`` defaults to the configured one: ``ai.config``'s
``default_snapshot_store``, else ``WARLOCK_AI["SNAPSHOT_STORE"]`` (what a definition without
a store of its own writes to).

The session operations (``fork_session``, ``discard_session``, ``start_resume_turn``) act
through the checkpoint store contract (``load``, ``save``, ``delete``, ``history``) the same
way; their ``store`` defaults to the registered orchestrator's checkpoint store, else the
configured one.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shlex
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from . import background
from .background import rq_configured
from .conf import warlock_settings
from .core.errors import (
    AIError,
    LeaseHeldError,
    LeaseLostError,
    MigrationError,
    OrchestratorFailedError,
    QueueUnavailableError,
    RunCompletedError,
    RunExistsError,
    RunInterruptedError,
    RunNotRunningError,
    SessionExistsError,
    StoreError,
    UnknownRunError,
    UnknownSessionError,
    UnreadableSnapshotError,
)
from .core.orchestrator.checkpoints import CheckpointRecord, check_session_id
from .core.orchestrator.snapshot import turn_run_id
from .core.runs.cancel import OPERATOR_CANCEL, CancelRequest
from .core.runs.definition import check_run_id, new_run_id
from .core.runs.heartbeat import heartbeat_interval
from .core.runs.kinds import kind_named
from .core.runs.leases import (
    ACQUIRE,
    RELEASE,
    LeaseClaim,
    held_error,
    lease_state,
    new_owner_id,
)
from .core.runs.serialization import dumps
from .core.runs.snapshots import (
    CANCELLED,
    COMPLETED,
    RUNNING,
    TERMINAL_STATUSES,
    error_dict,
    now,
)
from .registry import registry
from .runs import (
    check_startable,
    definition_for,
    execute_flow,
    live_lease,
    load_snapshot,
    resume_run,
    snapshot_store,
)
from .sessions import checkpoint_store
from .stores.base import CheckpointStore, RunQuery, SnapshotStore
from .stores.orm_checkpoints import DatabaseCheckpointStore

__all__ = [
    "COMMAND",
    "INLINE",
    "NO_WORKER",
    "QUEUE",
    "CancelOutcome",
    "Drained",
    "ForkOutcome",
    "MigrationError",
    "Outcome",
    "QueueUnavailableError",
    "RunCompletedError",
    "RunExistsError",
    "RunNotRunningError",
    "SessionExistsError",
    "StartOutcome",
    "TurnOutcome",
    "UnknownRunError",
    "UnknownSessionError",
    "check_new_session_id",
    "current_step_names",
    "definition_for",
    "describe_migration",
    "describe_result",
    "discard_run",
    "drain_runs",
    "execute_command",
    "execute_flow",
    "execute_turn_command",
    "fork_session",
    "live_lease",
    "load_snapshot",
    "migratable_steps",
    "migrate_run",
    "prune_runs",
    "request_cancel",
    "restart_command",
    "restart_run",
    "resume_command",
    "resume_run",
    "resume_turn_command",
    "rq_configured",
    "run_placement",
    "runs_inline",
    "send_turn",
    "snapshot_store",
    "stale_runs",
    "start_resume",
    "start_resume_turn",
    "start_run",
]

logger = logging.getLogger("warlock_ai.operations")

Progress = Callable[[int, int], Any]


@dataclass(frozen=True)
class Outcome:
    """What an operation did, in one line; ``ok`` is False when the run itself failed.

    An operation that starts a run also says where it went: ``job_id`` when it was enqueued
    on django-rq, ``command`` when nothing ran because no background worker is configured
    (the command an operator runs on a server instead); neither when it ran in this process.
    """

    message: str
    ok: bool = True
    job_id: str | None = None
    command: str | None = None

    def __str__(self) -> str:
        return self.message


#: Where a run an operator starts goes (``run_placement``): a django-rq worker, this process,
#: or nowhere, with the command that runs it.
QUEUE, INLINE, COMMAND = "queue", "inline", "command"

#: Why a run was not started (a ``COMMAND`` outcome).
NO_WORKER = (
    "no background worker (django-rq or the tasks framework) is configured, and a run never "
    "runs in a web request"
)


def run_placement(*, enqueue: bool | None = None, inline: bool = False) -> str:
    """``QUEUE`` when a background is configured (django-rq or the tasks framework, see
    ``warlock_ai.background``) or ``enqueue``, else ``INLINE`` when the caller allows running
    in its own process, else ``COMMAND``: nothing runs, and the outcome carries the command
    to run on a server."""
    if background.configured() if enqueue is None else enqueue:
        return QUEUE
    return INLINE if inline else COMMAND


def runs_inline() -> bool:
    """``WARLOCK_AI["ADMIN_RUNS_INLINE"]``, which the admin and the API obey: only ``True``
    itself opts in (checks report any other value), so a run is never started inside a
    request by a misspelt setting."""
    return warlock_settings.ADMIN_RUNS_INLINE is True


def resume_command(run_id: str, *, force: bool = False) -> str:
    """The shell command that resumes ``run_id`` (``python manage.py resume_run ...``)."""
    return _manage("resume_run", *_arguments([run_id], ["--force"] if force else []))


def resume_turn_command(name: str, session_id: str, *, force: bool = False) -> str:
    """The shell command that finishes a session's interrupted turn (``resume_turn``)."""
    options = _option("--session", session_id) + (["--force"] if force else [])
    return _manage("resume_turn", *_arguments([name], options))


def execute_command(flow: str, run_id: str, input: Any) -> str:
    """The shell command that starts ``flow`` as run ``run_id`` with ``input``."""
    options = _option("--run-id", run_id)
    if input is not None:
        options += _option("--input", json.dumps(input))  # ASCII only: nothing the terminal reads
    return _manage("execute_run", flow, *options)


def restart_command(run_id: str, flow: str, input: Any) -> str:
    """The shell commands that discard ``run_id`` and start ``flow`` again with ``input``."""
    discard = _manage("discard_run", *_arguments([run_id], ["--no-input"]))
    return f"{discard} && {execute_command(flow, run_id, input)}"


def _manage(*args: str) -> str:
    return " ".join(["python manage.py", *map(shlex.quote, args)])


def _arguments(positionals: list[str], options: list[str]) -> list[str]:
    # A value starting with "-" would be read as an option: "--" ends the options first.
    if any(value.startswith("-") for value in positionals):
        return [*options, "--", *positionals]
    return [*positionals, *options]


def _option(name: str, value: str) -> list[str]:
    return [f"{name}={value}"] if value.startswith("-") else [name, value]


def start_resume(
    run_id: str,
    *,
    force: bool = False,
    enqueue: bool | None = None,
    inline: bool = False,
    store: SnapshotStore | None = None,
) -> Outcome:
    """Resume a run where ``run_placement(enqueue=, inline=)`` says: on a django-rq worker,
    in this process, or nowhere (the outcome carries the command that resumes it).

    A completed run, a live lease and (unless ``force``) drift are refused with an
    ``AIError`` before anything runs, is enqueued or a command is offered.
    """
    store = snapshot_store(store)
    snapshot = load_snapshot(run_id, store)
    if snapshot.status == "completed":
        raise RunCompletedError(f'run "{run_id}" is already completed: there is nothing to resume')
    definition = definition_for(snapshot, store)
    if not force:
        definition.check_drift(snapshot)
    _refuse_live_lease(run_id, store, "resume", snapshot.status)
    placement = run_placement(enqueue=enqueue, inline=inline)
    if placement == QUEUE:
        from .background import enqueue_resume

        with _enqueueing(run_id):
            job = enqueue_resume(run_id, force=force)
        return Outcome(
            f'run "{run_id}" enqueued as job {job.id}: a worker resumes it', job_id=job.id
        )
    if placement == COMMAND:
        command = resume_command(run_id, force=force)
        return Outcome(f'run "{run_id}" not resumed: {NO_WORKER}; run: {command}', command=command)
    return describe_result(run_id, resume_run(run_id, force=force, store=store))


@dataclass(frozen=True)
class StartOutcome(Outcome):
    """What :func:`start_run` did: ``run_id`` is the run's id (chosen by the caller or
    generated), ``created`` is False when the same start had been made already (nothing new
    was started), ``result`` is the run's result when it ran in this process."""

    run_id: str = ""
    created: bool = True
    result: Any = None


def start_run(
    flow: str,
    input: Any = None,
    run_id: str | None = None,
    *,
    enqueue: bool | None = None,
    inline: bool = False,
) -> StartOutcome:
    """Start the registered flow ``flow`` where ``run_placement(enqueue=, inline=)`` says: on
    a django-rq worker, in this process, or nowhere (the outcome carries the command).

    A caller-chosen ``run_id`` makes the start idempotent: when that run is stored, or its
    job waits on the queue, with the same flow and input, nothing new starts and the outcome
    says so (``created=False``); with another flow or input it is ``RunExistsError``. Bad
    input (unknown flow, bad run id, input that is not JSON) is refused before anything.
    """
    definition = check_startable(registry.find(flow))
    name = f"{definition.kind}:{definition.name}"
    dumps(input, path="input")
    placement = run_placement(enqueue=enqueue, inline=inline)
    if run_id is None:
        run_id = new_run_id(definition.descriptor.run_id_prefix)
    else:
        check_run_id(run_id)
        earlier = _earlier_start(definition, name, input, run_id, placement)
        if earlier is not None:
            return earlier
    if placement == COMMAND:
        command = execute_command(name, run_id, input)
        message = f'run "{run_id}" not started: {NO_WORKER}; run: {command}'
        return StartOutcome(message, command=command, run_id=run_id)
    if placement == QUEUE:
        from .background import enqueue_execute

        with _enqueueing(run_id):
            job = enqueue_execute(name, input, run_id)
        message = f'run "{run_id}" of {name} enqueued as job {job.id}: a worker runs it'
        return StartOutcome(message, job_id=job.id, run_id=run_id)
    result = execute_flow(name, input, run_id=run_id)
    described = describe_result(run_id, result)
    return StartOutcome(described.message, ok=described.ok, run_id=run_id, result=result)


def _earlier_start(
    definition: Any, name: str, input: Any, run_id: str, placement: str
) -> StartOutcome | None:
    """The outcome of the same start made before (the run stored, or its job waiting), None
    when there was none; ``RunExistsError`` when ``run_id`` was started otherwise."""
    store = snapshot_store(definition.store)
    try:
        stored = store.load(run_id)
    except UnreadableSnapshotError as exc:
        raise RunExistsError(
            f'run "{run_id}" already exists (its snapshot cannot be read: {exc.problem}); '
            "choose another run_id, or discard it first"
        ) from exc
    if stored is not None:
        if (stored.kind, stored.name) == (definition.kind, definition.name) and _same_json(
            stored.input, input
        ):
            return StartOutcome(
                f'run "{run_id}" was started before with this flow and input; it is '
                f"{stored.status}: nothing new was started",
                ok=stored.status in (RUNNING, COMPLETED),
                run_id=run_id,
                created=False,
            )
        raise RunExistsError(
            f'run "{run_id}" already exists as a {stored.kind} "{stored.name}" run with '
            "another flow or input; choose another run_id, or discard it first"
        )
    if placement != QUEUE:
        return None
    with _enqueueing(run_id):
        waiting = background.waiting_start(run_id)
    if waiting is None:
        return None
    job_id, waiting_flow, waiting_input = waiting
    if waiting_flow == name and _same_json(waiting_input, input):
        return StartOutcome(
            f'run "{run_id}" was enqueued before with this flow and input as job {job_id}: '
            "nothing new was started",
            job_id=job_id,
            run_id=run_id,
            created=False,
        )
    raise RunExistsError(
        f'run "{run_id}" already waits on the queue (job {job_id}) with another flow or '
        "input; choose another run_id"
    )


def _same_json(one: Any, other: Any) -> bool:
    """The same JSON document (``True`` is not ``1``, key order does not matter)."""
    return json.dumps(one, sort_keys=True) == json.dumps(other, sort_keys=True)


def restart_run(
    run_id: str,
    *,
    enqueue: bool | None = None,
    inline: bool = False,
    store: SnapshotStore | None = None,
) -> Outcome:
    """Discard a run and start it again from scratch with the same input and run id, where
    ``run_placement(enqueue=, inline=)`` says; with ``COMMAND`` nothing is discarded and the
    outcome carries the commands that do both.

    If the new start cannot even be enqueued, the discarded snapshot is put back.
    """
    store = snapshot_store(store)
    snapshot = load_snapshot(run_id, store)
    definition = check_startable(definition_for(snapshot, store))
    _refuse_live_lease(run_id, store, "restart", snapshot.status)
    flow = f"{definition.kind}:{definition.name}"
    placement = run_placement(enqueue=enqueue, inline=inline)
    if placement == COMMAND:
        command = restart_command(run_id, flow, snapshot.input)
        message = f'run "{run_id}" not discarded nor started again: {NO_WORKER}; run: {command}'
        return Outcome(message, command=command)
    store.delete(run_id)
    if placement == INLINE:
        return describe_result(run_id, definition.execute(snapshot.input, run_id=run_id))
    from .background import enqueue_execute

    try:
        with _enqueueing(run_id):
            job = enqueue_execute(flow, snapshot.input, run_id)
    except BaseException:
        store.save(snapshot)
        raise
    return Outcome(f'run "{run_id}" enqueued again from scratch as job {job.id}', job_id=job.id)


@contextmanager
def _enqueueing(run_id: str) -> Iterator[None]:
    """Turn a queue failure into one clear error (a refusal by the jobs layer passes as is)."""
    try:
        yield
    except AIError:
        raise
    except Exception as exc:
        raise QueueUnavailableError(
            f'could not enqueue run "{run_id}" on {background.queue_label()}: '
            f"{type(exc).__name__}: {exc}"
        ) from exc


def describe_result(run_id: str, result: Any) -> Outcome:
    """A run's result in one line: its status, duration and error (``None``: what a resume
    that found nothing left to run gives)."""
    if result is None:
        return Outcome(f'run "{run_id}": nothing left to run (it had settled already)')
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


@dataclass(frozen=True)
class CancelOutcome(Outcome):
    """What :func:`request_cancel` did, for the commands, the admin and the API.

    ``action`` is ``"cancelled"`` (no live worker held the run: it was cancelled at once),
    ``"requested"`` (its worker ``worker`` stops at its next checkpoint; a step polling
    ``ctx.cancel`` sees it within ``within_seconds``, the heartbeat interval) or ``"pending"``
    (an earlier request, made at ``requested_at``, still stands and was kept).
    """

    run_id: str = ""
    action: str = ""
    requested_at: datetime | None = None
    reason: str | None = None
    worker: str | None = None
    within_seconds: float | None = None

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        if self.requested_at is not None:
            data["requested_at"] = self.requested_at.isoformat()
        return data


CANCELLED_NOW, CANCEL_REQUESTED, CANCEL_PENDING = "cancelled", "requested", "pending"


def request_cancel(
    run_id: str, reason: str = "", store: SnapshotStore | None = None
) -> CancelOutcome:
    """Cancel a running run: at once when no live worker holds it, else by asking its worker,
    which stops at its next checkpoint (its heartbeat sets ``ctx.cancel`` within one
    interval). A second request while one is pending keeps the first and says so."""
    store = snapshot_store(store)
    snapshot = load_snapshot(run_id, store)
    if not store.supports_cancel:
        raise StoreError(f"{store!r} cannot carry a cancel request to the run's worker")
    if snapshot.status != RUNNING:
        raise _not_running(run_id, snapshot.status)
    lease = store.lease(run_id) if store.supports_leases else None
    if store.supports_leases and not _held_live(lease, snapshot.status):
        cancelled = _cancel_unheld(store, snapshot, reason)
        if cancelled is not None:
            return cancelled
        lease = store.lease(run_id)  # a worker took the run meanwhile: ask it instead
    return _ask_worker(store, run_id, reason, lease[0] if lease else None)


def _not_running(run_id: str, status: str) -> RunNotRunningError:
    return RunNotRunningError(
        f'run "{run_id}" is {status}, not running: there is nothing to cancel'
    )


def _held_live(lease: tuple[str, Any] | None, status: str) -> bool:
    if lease is None:
        return False
    return lease_state(lease[0], lease[1], timezone.now(), status).blocks


def _ask_worker(
    store: SnapshotStore, run_id: str, reason: str, worker: str | None
) -> CancelOutcome:
    """Record the request for the worker holding the run (one atomic store write)."""
    # The store records it only while the run is still running (it may finish meanwhile).
    asked = store.request_cancel(run_id, reason)
    if not asked:
        raise _not_running(run_id, load_snapshot(run_id, store).status)
    if isinstance(asked, CancelRequest):
        at = _when(asked.requested_at)
        why = f": {asked.reason}" if asked.reason else ""
        return CancelOutcome(
            f'a cancel is already pending for run "{run_id}" (requested at {at}{why}); '
            "its worker stops at its next checkpoint",
            run_id=run_id,
            action=CANCEL_PENDING,
            requested_at=asked.requested_at,
            reason=asked.reason,
            worker=worker,
        )
    if store.supports_leases:
        within: float | None = heartbeat_interval(store)
        when = f"ctx.cancel is set within {within:g} s"
    else:
        within, when = None, "the snapshot write after its current step"
    by = f"its worker {worker}" if worker else "its worker"
    return CancelOutcome(
        f'cancel requested for run "{run_id}": {by} stops at its next checkpoint ({when}) '
        "and the run ends cancelled",
        run_id=run_id,
        action=CANCEL_REQUESTED,
        requested_at=timezone.now(),
        reason=reason or None,
        worker=worker,
        within_seconds=within,
    )


def _cancel_unheld(store: SnapshotStore, snapshot: Any, reason: str) -> CancelOutcome | None:
    """Mark a run no live worker holds cancelled, as its worker would have; None when a
    worker took it meanwhile.

    The write is the one a resuming worker's first write is: it takes the lease only if the
    lease is still free, expired or a dead process's, *and* the stored snapshot is still the
    one read (``expected``). So of this write and a worker resuming the run at the same
    moment, exactly one wins; the other is refused and changes nothing.
    """
    run_id, owner = snapshot.run_id, new_owner_id()
    cancelled = _cancelled_snapshot(snapshot, reason)
    try:
        store.save(cancelled, claim=LeaseClaim(owner, ACQUIRE, snapshot.saved_at))
    except (LeaseHeldError, LeaseLostError):
        return None
    try:  # a finished run keeps no lease nor cancel request (best effort, as a run's own)
        store.save(cancelled, claim=LeaseClaim(owner, RELEASE))
    except AIError as exc:
        logger.warning("run %r is cancelled but its lease was not released: %s", run_id, exc)
    return CancelOutcome(
        f'run "{run_id}" cancelled (no live worker held it)',
        run_id=run_id,
        action=CANCELLED_NOW,
        requested_at=cancelled.saved_at,
        reason=reason or None,
    )


def _cancelled_snapshot(snapshot: Any, reason: str) -> Any:
    """``snapshot`` ended ``cancelled`` now, with the error its kind's cancelled run stores."""
    at, text = now(), reason or OPERATOR_CANCEL
    message = f"{snapshot.kind} cancelled: {text}"
    error_class = kind_named(snapshot.kind).cancelled_error
    if error_class is not None:
        error = error_class(message, cancelled_at=at.isoformat(), reason=text)
    else:
        error = AIError(message, code="RUN_CANCELLED", category="cancelled")
    return dataclasses.replace(snapshot, status=CANCELLED, error=error_dict(error), saved_at=at)


def _when(value: Any) -> str:
    return value.isoformat(timespec="seconds") if isinstance(value, datetime) else str(value)


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


def describe_migration(
    run_id: str, renames: Mapping[str, str], drop: Iterable[str], accepted: bool, migrated: Any
) -> Outcome:
    """A migration in one line: what was renamed and dropped, whether the signature was
    accepted, the run's next step."""
    parts = [f"{old} → {new}" for old, new in renames.items() if old != new]
    parts += [f"{name} dropped" for name in drop]
    what = ", ".join(parts) or "no step renamed"
    signature = "; signature accepted" if accepted else ""
    return Outcome(f'run "{run_id}" migrated ({what}){signature}; next step {migrated.next}')


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
    meanwhile is left alone (the delete checks the status again). With
    ``BACKGROUND = "tasks"`` the deliveries that settled before the cutoff go too.
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
    if background.kind() == background.TASKS:
        _prune_deliveries(cutoff)
    return done


def _prune_deliveries(cutoff: datetime) -> None:
    """Settled tasks-framework deliveries (``Delivery``) that ended before ``cutoff``: their
    runs' outcomes are in the runs' snapshots and checkpoints."""
    from .models import Delivery

    settled = (Delivery.State.FINISHED, Delivery.State.FAILED)
    Delivery.objects.filter(state__in=settled, finished_at__lt=cutoff).delete()


def stale_runs(store: SnapshotStore | None = None) -> list[str]:
    """Running runs no live worker holds (lease never taken, expired, or holder dead),
    oldest first: what ``drain_runs`` resumes."""
    stale = snapshot_store(store).runs(RunQuery(stale=True, oldest_first=True))
    return [info.run_id for info in stale]


class Drained(tuple[str, str]):
    """One run ``drain_runs`` acted on: a ``(run_id, outcome)`` pair, as always, that also says
    what the run is part of (``about``: a turn's ``session_id`` and ``turn_index``; ``{}``)."""

    about: dict[str, Any]

    def __new__(cls, run_id: str, outcome: str, about: Mapping[str, Any] | None = None) -> Drained:
        drained = super().__new__(cls, (run_id, outcome))
        drained.about = dict(about or {})
        return drained

    @property
    def run_id(self) -> str:
        return self[0]

    @property
    def outcome(self) -> str:
        return self[1]


def drain_runs(
    enqueue: bool = False,
    progress: Progress | None = None,
    store: SnapshotStore | None = None,
    cancel: Any = None,
    requeue: bool = True,
) -> list[Drained]:
    """Resume every stale run (inline, or as background jobs with ``enqueue``), each the way
    its kind resumes (an interrupted orchestrator turn finishes as its session's next turn).
    With ``enqueue``, the jobs or tasks of dead workers are first put back on their queue
    (``requeue=False``: the caller did that).

    Safe on every worker boot and from several hosts at once: leases decide who runs what,
    and a run another worker took meanwhile is reported as skipped. ``cancel`` (a
    ``CancelToken``) is passed to each resume; once it is cancelled (``drain_runs`` on SIGTERM)
    the run in progress stops at its next check point and no further run is started.
    """
    outcomes: list[Drained] = []
    if enqueue and requeue:
        # Jobs a dead worker took before its run's first snapshot write leave no stale run
        # behind: put them back on their queue first.
        background.requeue_abandoned()
    run_ids = stale_runs(store)
    for index, run_id in enumerate(run_ids, start=1):
        if cancel is not None and cancel.cancelled:
            break
        outcomes.append(_drain_one(run_id, enqueue, store, cancel))
        if progress is not None:
            progress(index, len(run_ids))
    return outcomes


def _drain_one(run_id: str, enqueue: bool, store: SnapshotStore | None, cancel: Any) -> Drained:
    about: dict[str, Any] = {}
    try:
        snapshot = load_snapshot(run_id, store)
        kind = kind_named(snapshot.kind)
        about = kind.about(snapshot)
        if enqueue:
            from .background import enqueue_resume

            return Drained(run_id, f"enqueued as job {enqueue_resume(run_id).id}", about)
        result = resume_run(run_id, store=store, cancel=cancel)
    except LeaseHeldError as exc:
        return Drained(run_id, f"skipped: {exc.message}", about)
    except AIError as exc:
        logger.warning("drain could not resume run %r: %s", run_id, exc.message)
        return Drained(run_id, f"error: {exc.message}", about)
    return Drained(run_id, _drained_outcome(result, kind.settled_status), about)


def _drained_outcome(result: Any, settled_status: str) -> str:
    if result is None:  # a turn checkpointed before its process died: its leftover is gone
        return "completed: it had settled already; its leftover snapshot was removed"
    report = result.report
    if not getattr(report, "persisted", True):
        last = report.persist_error.message if report.persist_error is not None else "?"
        return (
            f"not-durable: {report.status}, but {report.failed_writes} snapshot write(s) "
            f"failed (last: {last})"
        )
    if isinstance(result.error, RunInterruptedError):
        return f"interrupted: {result.error.message}"
    if result.error is not None:
        return f"{report.status}: {result.error.message}"
    if report.status == settled_status != COMPLETED:
        return f"{COMPLETED}: {report.status}"
    return str(report.status)


# --- operations on a session (the admin, the API) ---------------------------------------


@dataclass(frozen=True)
class ForkOutcome(Outcome):
    """What :func:`fork_session` did: ``turns`` copied, from ``first_turn`` (above 0 when the
    source's earlier turns were pruned) to ``turn_index``."""

    orchestrator_name: str = ""
    session_id: str = ""
    new_session_id: str = ""
    turn_index: int = 0
    first_turn: int = 0
    turns: int = 0


def fork_session(
    name: str,
    session_id: str,
    turn_index: int,
    new_session_id: str,
    store: CheckpointStore | None = None,
) -> ForkOutcome:
    """Copy turns up to ``turn_index`` of a session into the new session ``new_session_id``:
    same turn indexes, state, route, signature, version and summary mark, saved now.

    Only the turns still stored are copied (a pruned source gives a fork that starts where
    the source does). The source is never changed. Refused, with nothing written: an unknown
    session, a turn the session does not have, a bad or already stored new id. On the
    database store the copy is one transaction; on the others a copy that fails midway is
    deleted again.
    """
    checkpoints = checkpoint_store(name, store)
    sid = check_session_id(session_id)
    new_sid = check_new_session_id(name, new_session_id, checkpoints)
    rows = _rows_to_fork(name, sid, turn_index, checkpoints)
    at = now()
    copies = [
        dataclasses.replace(
            row, session_id=new_sid, saved_at=at, lock_acquired_at=None, lock_expires_at=None
        )
        for row in rows
    ]
    with _all_or_nothing(checkpoints, name, new_sid):
        for copy in copies:
            checkpoints.save(copy)
    first = rows[0].turn_index
    message = (
        f'session "{sid}" of orchestrator "{name}" forked at turn {turn_index} into '
        f'"{new_sid}": {_turns(len(rows))} copied ({_span(first, turn_index)})'
    )
    if first > 0:
        message += (
            f"; turns {_span(0, first - 1)} were pruned from the source, so the fork "
            f"starts at turn {first}"
        )
    return ForkOutcome(
        message,
        orchestrator_name=name,
        session_id=sid,
        new_session_id=new_sid,
        turn_index=turn_index,
        first_turn=first,
        turns=len(rows),
    )


def check_new_session_id(name: str, value: Any, store: CheckpointStore | None = None) -> str:
    """``value`` if it can name a new session of orchestrator ``name``: a valid session id
    (for the registered orchestrator, if any) that no stored session uses yet."""
    checkpoints = checkpoint_store(name, store)
    orchestrator = registry.lookup("orchestrator", name)
    # A registered orchestrator knows its own limits too (an iterating one's run ids).
    check = orchestrator.check_session_id if orchestrator is not None else check_session_id
    new_sid: str = check(value)
    if checkpoints.load(name, new_sid) is not None:
        raise SessionExistsError(
            f'session "{new_sid}" of orchestrator "{name}" already exists; choose another id',
            orchestrator_name=name,
            session_id=new_sid,
        )
    return new_sid


def _rows_to_fork(
    name: str, sid: str, turn_index: Any, checkpoints: CheckpointStore
) -> list[CheckpointRecord]:
    if isinstance(turn_index, bool) or not isinstance(turn_index, int) or turn_index < 0:
        raise OrchestratorFailedError(
            f"turn_index must be a turn number (an integer >= 0), got {turn_index!r}"
        )
    history = checkpoints.history(name, sid)
    if not history:
        raise UnknownSessionError(
            f'no session "{sid}" of orchestrator "{name}" is stored',
            orchestrator_name=name,
            session_id=sid,
        )
    first, last = history[0].turn_index, history[-1].turn_index
    if not first <= turn_index <= last:
        pruned = f" (turns {_span(0, first - 1)} were pruned)" if first > 0 else ""
        raise OrchestratorFailedError(
            f'session "{sid}" of orchestrator "{name}" has no turn {turn_index} to fork from: '
            f"its stored turns are {_span(first, last)}{pruned}"
        )
    return [row for row in history if row.turn_index <= turn_index]


@contextmanager
def _all_or_nothing(checkpoints: CheckpointStore, name: str, session_id: str) -> Iterator[None]:
    """One transaction on the database store; elsewhere, a failure deletes what was written
    (the new session had no rows: ``fork_session`` checked)."""
    atomic: AbstractContextManager[Any] = nullcontext()
    if isinstance(checkpoints, DatabaseCheckpointStore):
        atomic = transaction.atomic(using=checkpoints.using)
    try:
        with atomic:
            yield
    except BaseException:
        if not isinstance(checkpoints, DatabaseCheckpointStore):
            try:
                checkpoints.delete(name, session_id)
            except AIError as exc:
                logger.warning("could not remove the half-written fork %r: %s", session_id, exc)
        raise


def _span(first: int, last: int) -> str:
    return str(first) if first == last else f"{first}-{last}"


def _turns(count: int) -> str:
    return "1 turn" if count == 1 else f"{count} turns"


def start_resume_turn(
    name: str,
    session_id: str,
    *,
    force: bool = False,
    enqueue: bool | None = None,
    inline: bool = False,
) -> Outcome:
    """Finish the session's interrupted turn with the registered orchestrator ``name``,
    where ``run_placement(enqueue=, inline=)`` says: on a django-rq worker (the turn's run
    id is resumed), in this process, or nowhere (the outcome carries the command).

    Refused with an ``AIError`` before anything runs, is enqueued or a command is offered:
    an unknown orchestrator, a session without an interrupted turn, a drifted orchestrator
    (unless ``force``), a turn a live worker is running.
    """
    orchestrator = registry.get("orchestrator", name)
    sid = orchestrator.check_session_id(session_id)
    record = checkpoint_store(name).load(name, sid)
    turn = record.turn_index + 1 if record is not None else 0
    run_id = turn_run_id(sid, orchestrator.version, turn)
    store: SnapshotStore | None = orchestrator.store if orchestrator.iterate else None
    snapshot = store.load(run_id) if store is not None else None
    what = f'turn {turn} of session "{sid}"'
    if store is None or snapshot is None or snapshot.status != RUNNING:
        raise OrchestratorFailedError(
            f'session "{sid}" of orchestrator "{name}" has no interrupted turn: nothing to resume',
            code="ORCHESTRATOR_NOTHING_TO_RESUME",
        )
    if not force:
        orchestrator.check_turn_drift(sid, record.signature if record else snapshot.signature)
    _refuse_live_lease(run_id, store, "resume", snapshot.status)
    placement = run_placement(enqueue=enqueue, inline=inline)
    if placement == QUEUE:
        from .background import enqueue_resume

        with _enqueueing(run_id):
            job = enqueue_resume(run_id, force=force)
        message = f'{what} (run "{run_id}") enqueued as job {job.id}: a worker finishes it'
        return Outcome(message, job_id=job.id)
    if placement == COMMAND:
        command = resume_turn_command(name, sid, force=force)
        return Outcome(f"{what} not resumed: {NO_WORKER}; run: {command}", command=command)
    result = orchestrator.resume_run(run_id, force=force)
    if result is None:
        return Outcome(f"{what} was settled meanwhile: there was nothing left to finish")
    if result.error is not None:
        return Outcome(f"{what} {result.report.status}: {result.error.message}", ok=False)
    return Outcome(f"{what} finished: {result.report.status}")


def execute_turn_command(name: str, session_id: str, input: Any) -> str:
    """The shell command that sends ``input`` to a session as its next turn."""
    options = _option("--session", session_id) + _option("--input", json.dumps(input))
    return _manage("execute_turn", *_arguments([name], options))


@dataclass(frozen=True)
class TurnOutcome(Outcome):
    """What :func:`send_turn` did; ``result`` is the turn's result when it ran here."""

    result: Any = None


def send_turn(
    name: str,
    session_id: str,
    input: Any,
    *,
    turn_key: str | None = None,
    enqueue: bool | None = None,
    inline: bool = False,
) -> TurnOutcome:
    """Send ``input`` to a session of the registered orchestrator ``name`` as its next turn,
    where ``run_placement(enqueue=, inline=)`` says: on a django-rq worker (one job per turn,
    ``turn_key`` naming it: by default a digest of the input), in this process, or nowhere
    (the outcome carries the command). Bad input is refused before anything."""
    orchestrator = registry.get("orchestrator", name)
    sid = orchestrator.check_session_id(session_id)
    dumps(input, path="input")
    placement = run_placement(enqueue=enqueue, inline=inline)
    what = f'a turn of session "{sid}" of orchestrator "{name}"'
    if placement == QUEUE:
        from .background import enqueue_turn

        with _enqueueing(sid):
            job = enqueue_turn(name, sid, input, turn_key=turn_key)
        return TurnOutcome(f"{what} enqueued as job {job.id}: a worker runs it", job_id=job.id)
    if placement == COMMAND:
        command = execute_turn_command(name, sid, input)
        return TurnOutcome(f"{what} not run: {NO_WORKER}; run: {command}", command=command)
    result = orchestrator.execute(input, session_id=sid)
    if result.error is not None:
        message = f"{what} {result.report.status}: {result.error.message}"
        return TurnOutcome(message, ok=False, result=result)
    return TurnOutcome(f'turn {result.turn_index} of session "{sid}" stored', result=result)
