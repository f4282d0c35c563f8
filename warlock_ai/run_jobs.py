"""What a background job does, whichever runs it (django-rq's ``warlock_ai.jobs`` or Django's
tasks framework's ``warlock_ai.task_queue``), and the checks made before it is enqueued.

Delivery is at least once and these bodies are idempotent: a job delivered again for a
completed run runs nothing, a turn's job delivered again finishes its own turn rather than
starting another, and a job whose run another worker holds (``LeaseHeldError``) steps aside;
each ends normally with a small summary. The run's own outcome lives in its snapshot (a
turn's in its checkpoint row), not in the job.

A job is given as ``job`` an object with ``id`` (the turn's key), ``meta`` (a dict) and
``save_meta()``: an rq job, or a ``Delivery`` row.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

from . import concurrency, runs
from .conf import warlock_settings
from .core.errors import (
    ConcurrencyLimitError,
    InterruptedTurnError,
    LeaseHeldError,
    LeaseLostError,
    OrchestratorFailedError,
    RunExistsError,
    RunInterruptedError,
    UnknownRunError,
)
from .core.orchestrator.snapshot import parse_turn_run_id, turn_run_id
from .core.runs.cancel import CancelToken
from .core.runs.definition import check_run_id, new_run_id
from .core.runs.interrupts import stop_on_signals
from .core.runs.leases import held_error
from .core.runs.serialization import dumps
from .core.runs.snapshots import COMPLETED, RUNNING, TERMINAL_STATUSES
from .registry import registry
from .sessions import interrupted_turn, orchestrator_named

__all__ = [
    "check_execute",
    "check_resume",
    "check_turn",
    "execute_job",
    "refuse_leased",
    "refuse_stored",
    "resume_job",
    "run_turn",
    "turn_to_resume",
]

logger = logging.getLogger("warlock_ai.jobs")

# --- before enqueueing: bad input is refused here, not in the worker ----------------------


def check_execute(flow: str, input: Any, run_id: str | None) -> tuple[Any, str, str]:
    """``(definition, "kind:name", run_id)`` of a start (the run id generated when not
    given, so it is known before the job starts); an unknown flow, a bad run id or input
    that is not JSON is refused."""
    definition = registry.find(flow)
    if run_id is None:
        run_id = new_run_id(definition.descriptor.run_id_prefix)
    check_run_id(run_id)
    dumps(input, path="input")
    return definition, f"{definition.kind}:{definition.name}", run_id


def refuse_stored(definition: Any, run_id: str) -> None:
    """A run already stored cannot be started again (it is resumed)."""
    if runs.snapshot_store(definition.store).load(run_id) is not None:
        raise RunExistsError(
            f'run "{run_id}" already exists; resume it (enqueue_resume) instead of starting it'
        )


def check_resume(run_id: str, force: bool) -> tuple[Any, Any]:
    """``(definition, snapshot)`` of a stored run to resume; an unknown run and (unless
    ``force``) a drifted one are refused."""
    snapshot = runs.load_snapshot(run_id)
    definition = runs.definition_for(snapshot)
    if not force:
        definition.check_drift(snapshot)
    return definition, snapshot


def refuse_leased(run_id: str, definition: Any, snapshot: Any) -> None:
    """A running run whose lease a live worker holds is that worker's."""
    lease = runs.live_lease(run_id, runs.snapshot_store(definition.store), snapshot.status)
    if lease is not None:
        raise held_error(run_id, *lease)


def check_turn(
    orchestrator_name: str, session_id: str, input: Any, turn: dict[str, Any], key: Any
) -> tuple[Any, str, str]:
    """``(orchestrator, session id, turn key)`` of a turn to enqueue: unknown orchestrator,
    bad session id, values that are not JSON and a bad key are refused. The key is by
    default a digest of the input (the input's JSON, keys sorted)."""
    orch = orchestrator_named(orchestrator_name)
    sid = orch.check_session_id(session_id)
    _check_turn(input, turn)
    if key is None:
        text = json.dumps(input, sort_keys=True, separators=(",", ":"))
        key = hashlib.sha256(text.encode()).hexdigest()
    if not isinstance(key, str) or not key:
        raise OrchestratorFailedError(f"turn_key must be a non-empty string, got {key!r}")
    return orch, sid, key


def _check_turn(input: Any, turn: dict[str, Any]) -> None:
    dumps(input, path="input")
    for name in ("state", "context"):
        if turn[name] is not None and not isinstance(turn[name], dict):
            raise OrchestratorFailedError(f"{name} must be a dict, got {type(turn[name]).__name__}")
        dumps(turn[name], path=name)
    if turn["history"] is not None and not isinstance(turn["history"], list):
        raise OrchestratorFailedError(
            f"history must be a list of messages, got {type(turn['history']).__name__}"
        )
    dumps(turn["history"], path="history")


def turn_to_resume(orchestrator_name: str, session_id: str) -> str | None:
    """The run id of the session's interrupted turn, or None when it has none."""
    orch = orchestrator_named(orchestrator_name)
    stored = interrupted_turn(orch, orch.check_session_id(session_id))
    return None if stored is None else stored.run_id


# --- the job bodies -----------------------------------------------------------------------


#: How many times a job over a concurrency limit may go back on its rq queue: as often as it
#: takes (rq's ``Retry`` needs a number).
DEFERRALS = 2**31 - 1


def execute_job(flow: str, input: Any, run_id: str) -> Any:
    """Start ``flow`` as run ``run_id``. Delivered again, the job finds the run stored: an
    interrupted run is resumed, a finished one is left alone. A flow or queue at its
    concurrency limit puts the job back on its queue (see ``_deferred``)."""
    try:
        with concurrency.slot(registry.find(flow).name, run_id):
            return _execute(flow, input, run_id)
    except ConcurrencyLimitError as exc:
        return _deferred(exc)


def _execute(flow: str, input: Any, run_id: str) -> dict[str, Any]:
    try:
        with _stopping_cleanly() as cancel:
            result = runs.execute_flow(flow, input, run_id=run_id, cancel=cancel)
        return _summary(result, "ran")
    except RunExistsError:
        store = registry.find(flow).store  # where execute_flow found it
        snapshot = runs.load_snapshot(run_id, store)
        if snapshot.status in TERMINAL_STATUSES:
            return _nothing_to_do(snapshot)
        logger.info("run %r was started by an earlier delivery of its job; resuming it", run_id)
        return _resume(run_id, False, store)
    except (LeaseHeldError, LeaseLostError) as exc:
        return _stepped_aside(run_id, exc, registry.find(flow).store)


def resume_job(run_id: str, force: bool = False) -> Any:
    """Resume run ``run_id`` (in the configured snapshot store); a completed run runs nothing."""
    try:
        return _resume(run_id, force, None)
    except ConcurrencyLimitError as exc:
        return _deferred(exc)


def _deferred(exc: ConcurrencyLimitError) -> Any:
    """A job over a concurrency limit: a task is pushed again by ``task_queue``; an rq job
    returns rq's ``Retry``, which puts it at the back of its queue without using one of the
    attempts it has for failures."""
    if concurrency.current_queue.get() is not None:
        raise exc
    from rq import Retry

    logger.info("%s", exc.message)
    return Retry(max=DEFERRALS)


def _resume(run_id: str, force: bool, store: Any) -> dict[str, Any]:
    try:
        snapshot = runs.load_snapshot(run_id, store)
    except UnknownRunError:  # a turn finished meanwhile (its snapshot goes), or discarded
        logger.info("run %r is not stored (any more); nothing to run", run_id)
        return {"run_id": run_id, "status": None, "outcome": "nothing to run: not stored"}
    if snapshot.status == COMPLETED:
        return _nothing_to_do(snapshot)
    try:
        with concurrency.slot(snapshot.name, run_id), _stopping_cleanly() as cancel:
            result = runs.resume_run(run_id, force=force, store=store, cancel=cancel)
        if result is None:  # a turn that had been checkpointed after all
            return {"run_id": run_id, "status": None, "outcome": "nothing to run: settled"}
        return _summary(result, "resumed")
    except (LeaseHeldError, LeaseLostError) as exc:
        return _stepped_aside(run_id, exc, store)


def run_turn(
    orchestrator_name: str, session_id: str, input: Any, turn: dict[str, Any], job: Any
) -> dict[str, Any]:
    """Run one turn of the session. Delivered again after a crash, it finishes its own
    turn instead of starting another (see ``_earlier_delivery``). ``SessionBusyError``
    (the session stayed busy for its orchestrator's whole ``lock_timeout``) is the caller's
    to handle: it puts the job back on its queue."""
    orch = orchestrator_named(orchestrator_name)
    earlier = _earlier_delivery(orch, session_id, job, turn["force"])
    if earlier is not None:
        return earlier
    with _stopping_cleanly() as cancel:
        result = _run_turn(orch, session_id, input, turn, cancel, job)
    return _summary(result, "ran")


def _run_turn(
    orch: Any, session_id: str, input: Any, turn: dict[str, Any], cancel: Any, job: Any
) -> Any:
    """The turn, noted on the job as it goes; an interrupted turn of the session (another
    job's, whose worker died) is finished first."""
    on = {"orchestrator.checkpoint.persisted": partial(_note, job, "turn_checkpointed")}
    if job is not None:  # the row names its job: a delivery again finds its turn landed
        turn = {**turn, "turn_key": job.id}
    if orch.iterate:  # the turn's first snapshot, written before it starts, holds its input
        on["orchestrator.turn.starting"] = partial(_note, job, "turn_run_id")
    try:
        return orch.execute(input, session_id=session_id, cancel=cancel, on=on, **turn)
    except InterruptedTurnError as exc:
        run_id = getattr(exc, "run_id", None)
        logger.info("session %r: finishing interrupted turn %s first", session_id, run_id)
        finished = orch.resume_run(run_id, force=turn["force"], cancel=cancel)
        if finished is not None:
            _raise_unsettled(finished)
        return orch.execute(input, session_id=session_id, cancel=cancel, on=on, **turn)


def _note(job: Any, key: str, event: dict[str, Any]) -> None:
    """Record on the job the turn's run id (a delivery again then knows its turn)."""
    if job is not None:
        job.meta[key] = event["run_id"]
        job.save_meta()


def _earlier_delivery(orch: Any, session_id: str, job: Any, force: bool) -> Any:
    """What an earlier delivery of this job left: None when it left nothing (then the turn
    runs), else the outcome: its turn finished here, or found ended (nothing to run).

    The turn's row carries the job's id (``turn_key``): a delivery that died between
    appending the row and noting ``turn_checkpointed`` finds its turn there and runs nothing.
    With ``iterate=True`` the turn's first snapshot holds its input before the turn starts,
    so once ``turn_run_id`` is noted, that turn is this job's, whoever finishes it (this
    job, ``drain_runs``, the next turn's job).
    """
    meta = job.meta if job is not None else {}
    done, started = meta.get("turn_checkpointed"), meta.get("turn_run_id")
    if done is None and job is not None:
        landed = orch.find_turn(session_id, job.id)
        if landed is not None:  # appended, then the worker died before noting it
            done = turn_run_id(session_id, orch.version, landed.turn_index)
    if done is None and started is not None:
        parsed = parse_turn_run_id(started, orch.version)
        latest = orch.latest(session_id)
        if parsed is not None and (latest is None or latest.turn_index < parsed[1]):
            stored = orch.store.load(started) if orch.store is not None else None
            if stored is not None and stored.status == RUNNING:
                with _stopping_cleanly() as cancel:
                    result = orch.resume_run(started, force=force, cancel=cancel)
                if result is not None:
                    return _summary(result, "resumed")
        done = started
    if done is None:
        return None
    logger.info("session %r: turn %s was this job's and has ended", session_id, done)
    return {"run_id": done, "session_id": session_id, "outcome": "nothing to run"}


@contextmanager
def _stopping_cleanly() -> Iterator[CancelToken]:
    """SIGTERM/SIGINT in the work horse (``Worker`` forwards a warm shutdown to it) stop the
    run at its next check point, snapshot stored and lease released, within
    ``SHUTDOWN_GRACE_SECONDS``."""
    token = CancelToken()
    with stop_on_signals(token, float(warlock_settings.SHUTDOWN_GRACE_SECONDS)):
        yield token


def _summary(result: Any, outcome: str) -> dict[str, Any]:
    """What the job returns. A run whose last snapshot was not stored, or that a shutdown
    interrupted, fails the job: rq delivers it again, and the next delivery resumes from what
    is stored. A run this worker was fenced out of mid-run (its lease lapsed and another
    worker resumed it: a network cut) is that worker's now: the job steps aside."""
    if isinstance(result.error, LeaseLostError):
        return _fenced_out(result.report.run_id, result.error)
    _raise_unsettled(result)
    report = result.report
    summary = {"run_id": report.run_id, "status": report.status, "outcome": outcome}
    if isinstance(getattr(result, "session_id", None), str):  # a turn
        summary.update(session_id=result.session_id, turn_index=result.turn_index)
    error = getattr(result, "error", None)
    if error is not None:
        summary["error"] = getattr(error, "message", str(error))
        logger.warning("run %r ended %s: %s", report.run_id, report.status, summary["error"])
    return summary


def _raise_unsettled(result: Any) -> None:
    """Raise when ``result`` is not settled in the store: interrupted, or its last snapshot
    not stored."""
    if isinstance(result.error, RunInterruptedError):
        raise result.error
    not_durable = runs.not_persisted_error(result)
    if not_durable is not None:
        raise not_durable


def _nothing_to_do(snapshot: Any) -> dict[str, Any]:
    logger.info("run %r is already %s; nothing to run", snapshot.run_id, snapshot.status)
    return {"run_id": snapshot.run_id, "status": snapshot.status, "outcome": "nothing to run"}


def _fenced_out(run_id: str, exc: LeaseLostError) -> dict[str, Any]:
    """A run this worker lost its lease of mid-run: whoever holds it, or the sweep once it
    lapses, finishes it. The status is not read back: the store may be what failed."""
    logger.warning("run %r: this worker's lease is gone; the job stops: %s", run_id, exc.message)
    holder = getattr(exc, "owner", None)
    outcome = f"skipped: leased by {holder}" if holder else "skipped: lease lost"
    return {"run_id": run_id, "status": None, "outcome": outcome}


def _stepped_aside(
    run_id: str, exc: LeaseHeldError | LeaseLostError, store: Any = None
) -> dict[str, Any]:
    logger.info("run %r: another worker has it; this job stops: %s", run_id, exc.message)
    owner = getattr(exc, "owner", None)
    outcome = f"skipped: leased by {owner}" if owner else "skipped: taken by another worker"
    try:
        status = runs.load_snapshot(run_id, store).status
    except UnknownRunError:  # discarded meanwhile
        status = None
    return {"run_id": run_id, "status": status, "outcome": outcome}
