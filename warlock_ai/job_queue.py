"""django-rq plumbing for ``warlock_ai.jobs``: job ids, one job at a time per run or turn,
pushed on transaction commit, and the jobs of workers that died put back on their queue.

The rq job id is derived from the run id (a turn's from its orchestrator, session and turn
key), so one run never has two jobs waiting: enqueueing a run whose job is still queued, or
running on a live worker, returns that job. Inside a transaction the job is pushed when the
transaction commits, never before, so a worker cannot start a run whose rows the caller has
not committed yet (and a rollback enqueues nothing).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from contextlib import AbstractContextManager, nullcontext
from functools import partial
from typing import TYPE_CHECKING, Any, cast

from django.db import transaction

from .conf import warlock_settings
from .core.runs.leases import owner_is_dead

if TYPE_CHECKING:
    from redis import Redis
    from rq.job import Job
    from rq.queue import Queue

__all__ = [
    "RETRIES",
    "enqueue_once",
    "get_queue",
    "job_id_for",
    "live_job",
    "requeue_abandoned_jobs",
    "turn_job_id",
]

logger = logging.getLogger("warlock_ai.jobs")

#: How often rq itself re-delivers a job that raised or whose worker died (rq's maintenance
#: finds those); safe because the job functions are idempotent.
RETRIES = 3
#: rq job ids allow only ``[A-Za-z0-9_-]``: such run ids are kept readable, others hashed.
_PLAIN_PREFIX, _HASHED_PREFIX = "warlock-run-", "warlock-runh-"
#: A turn's job: ``warlock-turn-`` and a digest of (orchestrator, session, turn key).
_TURN_PREFIX = "warlock-turn-"
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


def turn_job_id(orchestrator_name: str, session_id: str, turn_key: str) -> str:
    """The rq job id of one turn: ``warlock-turn-`` and a digest of the three."""
    text = json.dumps([orchestrator_name, session_id, turn_key])
    return _TURN_PREFIX + hashlib.sha256(text.encode()).hexdigest()[:40]


def _is_warlock_job(job_id: str) -> bool:
    return job_id.startswith((_PLAIN_PREFIX, _HASHED_PREFIX, _TURN_PREFIX))


def get_queue(name: str | None) -> Queue:
    """The django-rq queue ``name`` (default ``WARLOCK_AI["RQ_QUEUE"]``)."""
    import django_rq

    # "auto": the queue pushes at once; _enqueue decides about the transaction itself.
    return django_rq.get_queue(name or warlock_settings.RQ_QUEUE, commit_mode="auto")


def enqueue_once(
    rq_queue: Queue,
    func: Any,
    args: tuple,
    *,
    job_id: str,
    meta: dict[str, Any],
    description: str,
    kwargs: dict[str, Any] | None = None,
    result_ttl: int | None = None,
    at_front: bool = False,
) -> Job:
    """Push a job now, or when the current transaction commits (django-rq's
    ``on_db_commit``), unless a job ``job_id`` is already there (see ``_push``); with
    ``at_front``, ahead of the jobs waiting (a resume: its run started before them).

    django-rq's commit mode is not used as is because the duplicate check must run at
    commit time, under the same lock as the push; the rule is the same, on the default
    database: in an atomic block, ``transaction.on_commit``; otherwise at once.
    """
    from rq import Retry

    job = rq_queue.create_job(
        func,
        args=args,
        kwargs=kwargs,
        job_id=job_id,
        description=description,
        meta=meta,
        retry=Retry(max=RETRIES),
        result_ttl=result_ttl,
    )
    if transaction.get_connection().in_atomic_block:
        transaction.on_commit(partial(_push, rq_queue, job, at_front))
        return job
    return _push(rq_queue, job, at_front)


def _push(rq_queue: Queue, job: Job, at_front: bool = False) -> Job:
    """Enqueue ``job`` unless it has a live job (a turn's job: or a finished one, so a turn
    never runs twice); another job with the same id is deleted first. A Redis lock makes
    check-and-push atomic across hosts."""
    with _lock(rq_queue, job.id):
        existing = live_job(rq_queue, job.id, finished=job.id.startswith(_TURN_PREFIX))
        if existing is not None:
            logger.info("job %s is already there (%s)", existing.id, job.description)
            return existing
        return _replace(rq_queue, job, at_front)


def _replace(rq_queue: Queue, job: Job, at_front: bool = False) -> Job:
    old = _fetch(rq_queue, job.id)
    if old is not None:
        old.delete(remove_from_queue=True)
        rq_queue.connection.lrem(rq_queue.intermediate_queue_key, 0, job.id)
    return rq_queue.enqueue_job(job, at_front=at_front)


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


def live_job(rq_queue: Queue, job_id: str, finished: bool = False) -> Job | None:
    """The job ``job_id`` when it is waiting, or started by a worker that is still alive
    (or, with ``finished``, when it ran to its end)."""
    job = _fetch(rq_queue, job_id)
    if job is None:
        return None
    status = job.get_status(refresh=False)  # a str enum: equal to "queued" etc.
    if finished and status == "finished":
        return job
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

    A worker on this host that is gone is seen at once; one elsewhere when its run's lease
    has lapsed (the job started over ``LEASE_SECONDS`` ago and nobody renews the lease), or
    when rq's record of it expires, whichever comes first. Returns ``(run_id, outcome)``
    pairs, like ``drain_runs``.
    """
    rq_queue = get_queue(queue)
    outcomes = []
    abandoned, lapsed = _abandoned_job_ids(rq_queue)
    for job_id in abandoned:
        with _lock(rq_queue, job_id):
            job = _fetch(rq_queue, job_id)
            if job is None:
                continue
            status = job.get_status(refresh=False)
            if status not in ("queued", "started"):
                continue
            # A live worker's job that only its lapsed lease says is abandoned: ask again under
            # the lock (it may be a copy another host's sweep put back and a worker just took).
            alive = status == "started" and _workers_of(job, alive=True)
            if alive and (job_id not in lapsed or not _lease_lapsed(rq_queue, [job_id])):
                continue
            # At the front: its run started before the jobs waiting (and a cut-off worker's
            # run is taken over while that worker cannot write, not after a backlog).
            _replace(rq_queue, _copy(rq_queue, job), at_front=True)
        # A turn's job names its run once the turn started (``turn_run_id``).
        run_id = job.meta.get("run_id") or job.meta.get("turn_run_id") or job_id
        why = (
            "its worker stopped renewing the run's lease" if job_id in lapsed else "its worker died"
        )
        logger.warning("run %r: %s; job %s queued again", run_id, why, job_id)
        outcomes.append((run_id, f"requeued: {why}"))
    return outcomes


def _abandoned_job_ids(rq_queue: Queue) -> tuple[list[str], set[str]]:
    """Warlock jobs started by a dead worker, or popped by one (left in rq's intermediate
    list; a live worker moves a popped job to the started registry within milliseconds);
    and which of them only their run's lapsed lease says are abandoned."""
    started = _started(rq_queue)
    dead = [job_id for job_id, workers in started.items() if not any(map(_alive, workers))]
    lapsed = set(_lease_lapsed(rq_queue, [job_id for job_id in started if job_id not in dead]))
    popped = _popped(rq_queue, started)
    if popped:
        time.sleep(_POP_GRACE_SECONDS)
        popped &= _popped(rq_queue, _started(rq_queue))
    return sorted(set(dead) | lapsed | popped), lapsed


def _lease_lapsed(rq_queue: Queue, job_ids: list[str]) -> list[str]:
    """Started jobs whose run's lease expired and which started over ``LEASE_SECONDS`` ago:
    their worker, whatever rq says of it (a worker elsewhere stays in rq's records for a
    minute after it died), stopped renewing the lease, so it died or lost the network; its
    writes are refused if it comes back (leases are fenced). One lease read per started job
    (as many as busy workers)."""
    if not job_ids:
        return []
    from datetime import UTC, datetime, timedelta

    from .runs import snapshot_store

    store = snapshot_store()
    now = datetime.now(UTC)
    started_before = now - timedelta(seconds=float(warlock_settings.LEASE_SECONDS))
    lapsed = []
    for job_id in job_ids:
        job = _fetch(rq_queue, job_id)
        started_at = job.started_at if job is not None else None
        run_id = job.meta.get("run_id") if job is not None else None
        if job is None or not run_id or started_at is None:
            continue
        if started_at.replace(tzinfo=started_at.tzinfo or UTC) >= started_before:
            continue
        lease = store.lease(run_id)
        expires = lease[1] if lease is not None else None
        if expires is not None and expires.replace(tzinfo=expires.tzinfo or UTC) < now:
            lapsed.append(job_id)
    return lapsed


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
        result_ttl=job.result_ttl,
    )
