"""Background runs on django-rq (the ``rq`` extra): enqueue a flow or a resume, a worker runs it.

The rq job id is derived from the run id, so one run never has two jobs waiting: enqueueing a
run whose job is still queued, or running on a live worker, returns that job. Inside a
transaction the job is pushed when the transaction commits, never before, so a worker cannot
start a run whose rows the caller has not committed yet (and a rollback enqueues nothing).

Delivery is at least once and the job functions are idempotent: a job delivered again for a
completed run runs nothing, and a job whose run another worker holds (``LeaseHeldError``)
steps aside; both end normally with a small summary. The run's own outcome lives in its
snapshot, not in the rq job. ``requeue_abandoned_jobs`` (for ``drain_runs --enqueue``) puts
back the jobs of workers that died; it is what recovers a job taken by a worker that died
before the run wrote its first snapshot, when the run is known to rq only.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from functools import partial
from typing import TYPE_CHECKING, Any, cast

from django.db import transaction

from . import runs
from .conf import warlock_settings
from .core.errors import (
    LeaseHeldError,
    LeaseLostError,
    RunExistsError,
    RunInterruptedError,
    UnknownRunError,
)
from .core.runs.cancel import CancelToken
from .core.runs.definition import check_run_id, new_run_id
from .core.runs.interrupts import stop_on_signals
from .core.runs.leases import held_error, owner_is_dead
from .core.runs.serialization import dumps
from .core.runs.snapshots import COMPLETED, TERMINAL_STATUSES
from .registry import registry

if TYPE_CHECKING:
    from redis import Redis
    from rq.job import Job
    from rq.queue import Queue

__all__ = [
    "RETRIES",
    "enqueue_execute",
    "enqueue_resume",
    "execute_job",
    "job_id_for",
    "requeue_abandoned_jobs",
    "resume_job",
]

logger = logging.getLogger(__name__)

#: How often rq itself re-delivers a job that raised or whose worker died (rq's maintenance
#: finds those); safe because the job functions are idempotent.
RETRIES = 3
#: rq job ids allow only ``[A-Za-z0-9_-]``: such run ids are kept readable, others hashed.
_PLAIN_PREFIX, _HASHED_PREFIX = "warlock-run-", "warlock-runh-"
_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
#: Job states meaning "this run's job will run"; ``started`` counts only while its worker lives.
_WAITING = frozenset({"created", "queued", "deferred", "scheduled", "rate_limited"})
#: A job popped by a worker is in rq's started registry a few milliseconds later; one still
#: outside it after this long was popped by a worker that died.
_POP_GRACE_SECONDS = 1.0


def job_id_for(run_id: str) -> str:
    """The rq job id of ``run_id``: ``warlock-run-<run_id>``, or a digest when the run id
    has characters rq refuses in job ids (the two forms cannot collide)."""
    if set(run_id) <= _SAFE:
        return _PLAIN_PREFIX + run_id
    return _HASHED_PREFIX + hashlib.sha256(run_id.encode()).hexdigest()[:40]


def _is_warlock_job(job_id: str) -> bool:
    return job_id.startswith((_PLAIN_PREFIX, _HASHED_PREFIX))


# --- enqueueing ---------------------------------------------------------------------------


def enqueue_execute(
    flow: str, input: Any = None, run_id: str | None = None, queue: str | None = None
) -> Job:
    """Run the registered flow ``flow`` on a worker; returns the rq job.

    The run id is generated here when not given, so it is known before the job starts
    (``job.meta["run_id"]``). Bad input (unknown flow, run id too long, input that is not
    JSON, a run id already stored) is refused now, not in the worker.
    """
    definition = registry.find(flow)
    if run_id is None:
        run_id = new_run_id(definition.descriptor.run_id_prefix)
    check_run_id(run_id)
    dumps(input, path="input")
    rq_queue = _queue(queue)
    existing = _live_job(rq_queue, job_id_for(run_id))
    if existing is not None:
        return existing
    if runs.snapshot_store(definition.store).load(run_id) is not None:
        raise RunExistsError(
            f'run "{run_id}" already exists; resume it (enqueue_resume) instead of starting it'
        )
    name = f"{definition.kind}:{definition.name}"
    args = (name, input, run_id)
    return _enqueue(rq_queue, execute_job, args, run_id, f"warlock_ai execute {name} {run_id}")


def enqueue_resume(run_id: str, force: bool = False, queue: str | None = None) -> Job:
    """Resume the stored run ``run_id`` on a worker; returns the rq job.

    Refused now: an unknown run, a run whose definition drifted (unless ``force``), and a
    running run whose lease a live worker holds (that worker is running it).
    """
    snapshot = runs.load_snapshot(run_id)
    definition = runs.definition_for(snapshot)
    if not force:
        definition.check_drift(snapshot)
    rq_queue = _queue(queue)
    existing = _live_job(rq_queue, job_id_for(run_id))
    if existing is not None:
        return existing
    lease = runs.live_lease(run_id, runs.snapshot_store(definition.store), snapshot.status)
    if lease is not None:
        raise held_error(run_id, *lease)
    args = (run_id, force)
    return _enqueue(rq_queue, resume_job, args, run_id, f"warlock_ai resume {run_id}")


def _queue(name: str | None) -> Queue:
    import django_rq

    # "auto": the queue pushes at once; _enqueue decides about the transaction itself.
    return django_rq.get_queue(name or warlock_settings.RQ_QUEUE, commit_mode="auto")


def _enqueue(rq_queue: Queue, func: Any, args: tuple, run_id: str, description: str) -> Job:
    """Push now, or when the current transaction commits (django-rq's ``on_db_commit``).

    django-rq's commit mode is not used as is because the duplicate check must run at
    commit time, under the same lock as the push; the rule is the same, on the default
    database: in an atomic block, ``transaction.on_commit``; otherwise at once.
    """
    from rq import Retry

    job = rq_queue.create_job(
        func,
        args=args,
        job_id=job_id_for(run_id),
        description=description,
        meta={"run_id": run_id},
        retry=Retry(max=RETRIES),
    )
    if transaction.get_connection().in_atomic_block:
        transaction.on_commit(partial(_push, rq_queue, job))
        return job
    return _push(rq_queue, job)


def _push(rq_queue: Queue, job: Job) -> Job:
    """Enqueue ``job`` unless its run has a live job; a finished or abandoned job with the
    same id is deleted first. A Redis lock makes check-and-push atomic across hosts."""
    with _lock(rq_queue, job.id):
        existing = _live_job(rq_queue, job.id)
        if existing is not None:
            logger.info("run %r already has job %s", job.meta["run_id"], existing.id)
            return existing
        return _replace(rq_queue, job)


def _replace(rq_queue: Queue, job: Job) -> Job:
    old = _fetch(rq_queue, job.id)
    if old is not None:
        old.delete(remove_from_queue=True)
        rq_queue.connection.lrem(rq_queue.intermediate_queue_key, 0, job.id)
    return rq_queue.enqueue_job(job)


def _lock(rq_queue: Queue, job_id: str) -> AbstractContextManager[Any]:
    if not rq_queue.is_async:  # ASYNC=False (tests): the job runs inside enqueue_job
        return nullcontext()
    return rq_queue.connection.lock(f"warlock_ai:enqueue-lock:{job_id}", timeout=30)


def _fetch(rq_queue: Queue, job_id: str) -> Job | None:
    from rq.exceptions import NoSuchJobError

    try:
        return rq_queue.job_class.fetch(
            job_id, connection=rq_queue.connection, serializer=rq_queue.serializer
        )
    except NoSuchJobError:
        return None


def _live_job(rq_queue: Queue, job_id: str) -> Job | None:
    """The job ``job_id`` when it is waiting, or started by a worker that is still alive."""
    job = _fetch(rq_queue, job_id)
    if job is None:
        return None
    status = job.get_status(refresh=False)  # a str enum: equal to "queued" etc.
    if status in _WAITING and (status != "queued" or _in_its_queue(rq_queue, job)):
        return job
    if status == "started" and _workers_of(job, alive=True):
        return job
    return None


def _in_its_queue(rq_queue: Queue, job: Job) -> bool:
    """A "queued" job whose queue no longer lists it (emptied, flushed) will never run."""
    key = f"{rq_queue.redis_queue_namespace_prefix}{job.origin}"
    return rq_queue.connection.lpos(key, job.id) is not None


# --- workers that died --------------------------------------------------------------------


def requeue_abandoned_jobs(queue: str | None = None) -> list[tuple[str, str]]:
    """Put back on the queue the warlock jobs whose worker died while it held them.

    A worker on this host that is gone is seen at once, one elsewhere when rq's record of
    it expires (``worker_ttl``). Returns ``(run_id, outcome)`` pairs, like ``drain_runs``.
    """
    rq_queue = _queue(queue)
    outcomes = []
    for job_id in _abandoned_job_ids(rq_queue):
        with _lock(rq_queue, job_id):
            job = _fetch(rq_queue, job_id)
            if job is None:
                continue
            status = job.get_status(refresh=False)
            if status not in ("queued", "started"):
                continue
            if status == "started" and _workers_of(job, alive=True):
                continue
            _replace(rq_queue, _copy(rq_queue, job))
        run_id = job.meta.get("run_id", job_id)
        logger.warning("run %r: its job's worker died; job %s queued again", run_id, job_id)
        outcomes.append((run_id, "requeued: its worker died"))
    return outcomes


def _abandoned_job_ids(rq_queue: Queue) -> list[str]:
    """Warlock jobs started by a dead worker, or popped by one (left in rq's intermediate
    list; a live worker moves a popped job to the started registry within milliseconds)."""
    started = _started(rq_queue)
    dead = [job_id for job_id, workers in started.items() if not any(map(_alive, workers))]
    popped = _popped(rq_queue, started)
    if popped:
        time.sleep(_POP_GRACE_SECONDS)
        popped &= _popped(rq_queue, _started(rq_queue))
    return sorted(set(dead) | popped)


def _started(rq_queue: Queue) -> dict[str, list[Any]]:
    """Warlock job id -> the workers running it (``None`` for an execution that expired)."""
    registry_ = rq_queue.started_job_registry
    found: dict[str, list[Any]] = {}
    for job_id, execution_id in registry_.get_job_and_execution_ids(cleanup=False):
        if _is_warlock_job(job_id):
            found.setdefault(job_id, []).append(_worker(rq_queue.connection, job_id, execution_id))
    return found


def _popped(rq_queue: Queue, started: dict[str, list[Any]]) -> set[str]:
    # Replies are bytes: rq's connections do not decode responses (rq decodes them itself).
    ids = cast("list[bytes]", rq_queue.connection.lrange(rq_queue.intermediate_queue_key, 0, -1))
    return {i.decode() for i in ids if _is_warlock_job(i.decode()) and i.decode() not in started}


def _workers_of(job: Job, alive: bool) -> list[Any]:
    from rq.executions import ExecutionRegistry

    ids = ExecutionRegistry(job_id=job.id, connection=job.connection).get_execution_ids()
    workers = [_worker(job.connection, job.id, execution_id) for execution_id in ids]
    return [w for w in workers if _alive(w) == alive]


def _worker(connection: Redis, job_id: str, execution_id: str) -> Any:
    """The rq worker of an execution, or ``None`` when the execution or the worker expired."""
    from rq.executions import Execution
    from rq.worker import Worker

    key = Execution(id=execution_id, job_id=job_id, connection=connection).key
    name = cast("bytes | None", connection.hget(key, "worker_name"))  # not decoded, as above
    if not name:
        return None
    return Worker.find_by_key(Worker.redis_worker_namespace_prefix + name.decode(), connection)


def _alive(worker: Any) -> bool:
    if worker is None:
        return False
    # The lease check already knows how to tell a dead process of this host (zombies too).
    return not owner_is_dead(f"{worker.hostname}:{worker.pid}:rq")


def _copy(rq_queue: Queue, job: Job) -> Job:
    from rq import Retry

    return rq_queue.create_job(
        cast(str, job.func_name),  # a warlock job always names its function
        args=job.args,
        kwargs=job.kwargs,
        job_id=job.id,
        description=job.description,
        meta=job.meta,
        retry=Retry(max=RETRIES),
    )


# --- the job functions (run by `manage.py rqworker`) --------------------------------------


def execute_job(flow: str, input: Any, run_id: str) -> dict[str, Any]:
    """Start ``flow`` as run ``run_id``. Delivered again, the job finds the run stored: an
    interrupted run is resumed, a finished one is left alone."""
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


def resume_job(run_id: str, force: bool = False) -> dict[str, Any]:
    """Resume run ``run_id`` (in the configured snapshot store); a completed run runs nothing."""
    return _resume(run_id, force, None)


def _resume(run_id: str, force: bool, store: Any) -> dict[str, Any]:
    snapshot = runs.load_snapshot(run_id, store)
    if snapshot.status == COMPLETED:
        return _nothing_to_do(snapshot)
    try:
        with _stopping_cleanly() as cancel:
            result = runs.resume_run(run_id, force=force, store=store, cancel=cancel)
        return _summary(result, "resumed")
    except (LeaseHeldError, LeaseLostError) as exc:
        return _stepped_aside(run_id, exc, store)


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
    is stored."""
    if isinstance(result.error, RunInterruptedError):
        raise result.error
    not_durable = runs.not_persisted_error(result)
    if not_durable is not None:
        raise not_durable
    report = result.report
    summary = {"run_id": report.run_id, "status": report.status, "outcome": outcome}
    error = getattr(result, "error", None)
    if error is not None:
        summary["error"] = getattr(error, "message", str(error))
        logger.warning("run %r ended %s: %s", report.run_id, report.status, summary["error"])
    return summary


def _nothing_to_do(snapshot: Any) -> dict[str, Any]:
    logger.info("run %r is already %s; nothing to run", snapshot.run_id, snapshot.status)
    return {"run_id": snapshot.run_id, "status": snapshot.status, "outcome": "nothing to run"}


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
