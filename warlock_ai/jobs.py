"""Background runs on django-rq (the ``rq`` extra): enqueue a flow, a resume or an
orchestrator's turn, a worker runs it.

One run (one turn) never has two jobs waiting, and a job is pushed when the caller's
transaction commits (``job_queue``). Delivery is at least once and the job functions
(``run_jobs``, shared with Django's tasks framework) are idempotent. The run's own outcome
lives in its snapshot (a turn's in its checkpoint row), not in the rq job.
``requeue_abandoned_jobs`` (for ``drain_runs --enqueue``) puts back the jobs of workers that
died; it is what recovers a job taken by a worker that died before the run wrote its first
snapshot, when the run is known to rq only.

These functions always use django-rq; ``warlock_ai.background`` enqueues on whichever of
django-rq and the tasks framework ``WARLOCK_AI["BACKGROUND"]`` names.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from .core.errors import SessionBusyError
from .job_queue import (
    RETRIES,
    enqueue_once,
    get_queue,
    job_id_for,
    live_job,
    requeue_abandoned_jobs,
    turn_job_id,
)
from .run_jobs import (
    check_execute,
    check_resume,
    check_turn,
    execute_job,
    refuse_leased,
    refuse_stored,
    resume_job,
    run_turn,
    turn_to_resume,
)

if TYPE_CHECKING:
    from rq.job import Job

__all__ = [
    "BUSY_RETRIES",
    "RETRIES",
    "TURN_JOB_TTL",
    "enqueue_execute",
    "enqueue_resume",
    "enqueue_resume_turn",
    "enqueue_turn",
    "execute_job",
    "job_id_for",
    "requeue_abandoned_jobs",
    "resume_job",
    "turn_job",
]

logger = logging.getLogger(__name__)

#: How many times a turn's job whose session stayed busy for its orchestrator's whole
#: ``lock_timeout`` goes back on its queue (at the back, so other jobs run meanwhile)
#: before it fails: the job returns ``rq.Retry``, so no rq scheduler is needed.
BUSY_RETRIES = 20
#: How long (seconds) rq keeps a turn's finished job: enqueueing the same turn again within
#: it returns that job instead of running the turn twice.
TURN_JOB_TTL = 86400

# --- enqueueing ---------------------------------------------------------------------------


def enqueue_execute(
    flow: str, input: Any = None, run_id: str | None = None, queue: str | None = None
) -> Job:
    """Run the registered flow ``flow`` on a worker; returns the rq job.

    The run id is generated here when not given, so it is known before the job starts
    (``job.meta["run_id"]``). Bad input (unknown flow, run id too long, input that is not
    JSON, a run id already stored) is refused now, not in the worker.
    """
    definition, name, run_id = check_execute(flow, input, run_id)
    rq_queue = get_queue(queue)
    existing = live_job(rq_queue, job_id_for(run_id))
    if existing is not None:
        return existing
    refuse_stored(definition, run_id)
    args = (name, input, run_id)
    return enqueue_once(
        rq_queue,
        execute_job,
        args,
        job_id=job_id_for(run_id),
        meta={"run_id": run_id},
        description=f"warlock_ai execute {name} {run_id}",
    )


def enqueue_resume(run_id: str, force: bool = False, queue: str | None = None) -> Job:
    """Resume the stored run ``run_id`` on a worker; returns the rq job.

    Refused now: an unknown run, a run whose definition drifted (unless ``force``), and a
    running run whose lease a live worker holds (that worker is running it).
    """
    definition, snapshot = check_resume(run_id, force)
    rq_queue = get_queue(queue)
    existing = live_job(rq_queue, job_id_for(run_id))
    if existing is not None:
        return existing
    refuse_leased(run_id, definition, snapshot)
    args = (run_id, force)
    return enqueue_once(
        rq_queue,
        resume_job,
        args,
        job_id=job_id_for(run_id),
        meta={"run_id": run_id},
        description=f"warlock_ai resume {run_id}",
        at_front=True,  # a run that started goes before the runs that have not
    )


def enqueue_turn(
    orchestrator_name: str,
    session_id: str,
    input: Any,
    *,
    history: list[Any] | None = None,
    state: dict[str, Any] | None = None,
    context: dict[str, Any] | None = None,
    force: bool = False,
    turn_key: str | None = None,
    queue: str | None = None,
) -> Job:
    """Run one turn of a session on a worker; returns the rq job.

    One job per turn: its id derives from (orchestrator, session, ``turn_key``, by default a
    digest of the input), so the same turn enqueued twice is one job, while it waits or runs
    and for ``TURN_JOB_TTL`` seconds after it finished. Bad input (unknown orchestrator, bad
    session id, values that are not JSON) is refused now, not in the worker.
    """
    turn = {"history": history, "state": state, "context": context, "force": bool(force)}
    orch, sid, key = check_turn(orchestrator_name, session_id, input, turn, turn_key)
    return enqueue_once(
        get_queue(queue),
        turn_job,
        (orch.name, sid, input),
        job_id=turn_job_id(orch.name, sid, key),
        meta={"orchestrator": orch.name, "session_id": sid, "turn_key": key},
        description=f"warlock_ai turn of {orch.name} session {sid}",
        kwargs=turn,
        result_ttl=TURN_JOB_TTL,
    )


def enqueue_resume_turn(
    orchestrator_name: str, session_id: str, force: bool = False, queue: str | None = None
) -> Job | None:
    """Finish the session's interrupted turn on a worker; returns the rq job, or None when
    the session has no interrupted turn. It is the resume job of the turn's run
    (``enqueue_resume``), so it is one job with what ``drain_runs --enqueue`` queues."""
    run_id = turn_to_resume(orchestrator_name, session_id)
    if run_id is None:
        return None
    return enqueue_resume(run_id, force=force, queue=queue)


# --- the turn's job function (run by `manage.py rqworker`) ---------------------------------


def turn_job(
    orchestrator_name: str,
    session_id: str,
    input: Any,
    history: list[Any] | None = None,
    state: dict[str, Any] | None = None,
    context: dict[str, Any] | None = None,
    force: bool = False,
) -> Any:
    """Run one turn of the session. Delivered again after a crash, it finishes its own
    turn instead of starting another (see ``run_jobs._earlier_delivery``); a session busy for the
    whole ``lock_timeout`` puts the job back on its queue (``BUSY_RETRIES`` times)."""
    from rq import Retry, get_current_job

    turn = {"history": history, "state": state, "context": context, "force": force}
    try:
        return run_turn(orchestrator_name, session_id, input, turn, get_current_job())
    except SessionBusyError as exc:
        logger.info("%s; the job goes back on its queue", exc.message)
        return Retry(max=BUSY_RETRIES)
