"""Django's tasks framework under ``warlock_ai.task_jobs``: one ``Delivery`` row per run or
turn, the one task (``deliver_task``) that carries its key, pushed on commit, and deliveries
whose worker died put back.

The tasks framework (``django.tasks`` on Django 6, the ``django-tasks`` backport on 5.2) has
no job ids, no retries and no notion of a dead worker: a ``db_worker`` killed mid-task leaves
its task RUNNING for ever. So what rq gives ``warlock_ai.jobs`` is kept here, in the
project's database: a delivery's key is the rq job id's form (``job_queue.job_id_for``), a
second enqueue of a live delivery returns it, the process running it is its ``owner`` and
renews ``seen_at`` every third of ``LEASE_SECONDS``, and ``requeue_abandoned`` (run by
``drain_runs --enqueue``) pushes again every delivery whose owner died, whose owner stopped
renewing for ``LEASE_SECONDS``, or whose task was lost before any worker took it.

A delivery names the task that carries it (``result_id``, the task result's id): a task that
is not that one (an older copy, still queued after the delivery was pushed again) runs
nothing, so one delivery runs once however many of its tasks a backend holds.

Importing this module binds ``deliver_task`` to the tasks backend
``WARLOCK_AI["TASKS_BACKEND"]``; each push names the delivery's backend and queue again.
"""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager
from datetime import timedelta
from functools import partial
from importlib import import_module
from importlib.util import find_spec
from typing import Any

from django.db import IntegrityError, connections, router, transaction
from django.utils import timezone

from . import concurrency
from .conf import warlock_settings
from .core.errors import ConcurrencyLimitError, SessionBusyError
from .core.runs.leases import new_owner_id, owner_is_dead
from .db_lock import renewing
from .db_lock import write_lock as _write_lock
from .models import Delivery
from .run_jobs import execute_job, resume_job, run_turn
from .tasks_framework import backend, tasks_module

__all__ = [
    "BUSY_RETRIES",
    "FINISHED_TURN_DAYS",
    "PUSH_GRACE_SECONDS",
    "RETRIES",
    "claim",
    "deliver",
    "deliver_task",
    "finish",
    "heartbeat",
    "live_delivery",
    "push_again",
    "requeue_abandoned",
    "tasks_module",
]

logger = logging.getLogger("warlock_ai.jobs")

#: How often a delivery that raised (a shutdown, a snapshot write that did not land, a bug)
#: is pushed again before it is left failed: rq's ``Retry(max=3)``, kept here.
RETRIES = 3
#: How many times a turn whose session stayed busy for its orchestrator's whole
#: ``lock_timeout`` is pushed again (without using an attempt) before it fails
#: (``jobs.BUSY_RETRIES``).
BUSY_RETRIES = 20
#: A delivery still waiting this long after it was (re)enqueued without its task having been
#: pushed (the process died between its commit and the push) is pushed again.
PUSH_GRACE_SECONDS = 60
#: A finished turn's delivery is kept (so the same turn enqueued again runs nothing) as long
#: as rq keeps a finished turn's job (``jobs.TURN_JOB_TTL``, a day), unless ``prune_runs``
#: removes it sooner; the turn's checkpoint row still knows its key then.
FINISHED_TURN_DAYS = 1

WAITING, RUNNING = Delivery.State.WAITING, Delivery.State.RUNNING
FINISHED, FAILED = Delivery.State.FINISHED, Delivery.State.FAILED


def _db() -> str:
    return router.db_for_write(Delivery)


def _locked(db: str, key: str) -> Delivery | None:
    return Delivery.objects.using(db).select_for_update().filter(key=key).first()


# --- enqueueing ---------------------------------------------------------------------------


def deliver(
    key: str, task: str, arguments: dict[str, Any], queue: str | None, keep_finished: bool
) -> Delivery:
    """The live delivery ``key`` (waiting, or running in a live process; with
    ``keep_finished`` also one that finished, so a turn never runs twice), else a new one
    whose task is pushed when the current transaction commits (at once outside one).

    Two processes enqueueing one run at once make one delivery: the row is created under a
    savepoint, and the loser of the race takes the winner's row. A push that fails outside a
    transaction removes the row it was for and raises, so nothing looks enqueued that is not.
    """
    db = _db()
    fresh = {
        "task": task,
        "arguments": arguments,
        "backend": warlock_settings.TASKS_BACKEND,
        "queue": queue or warlock_settings.TASKS_QUEUE,
    }
    with _write_lock(db):
        row, created = _locked(db, key), False
        if row is None:
            try:
                with transaction.atomic(using=db):  # a savepoint: losing the race is fine
                    row = Delivery.objects.using(db).create(key=key, state=WAITING, **fresh)
                created = True
            except IntegrityError:  # another process created it and committed meanwhile
                row = Delivery.objects.using(db).select_for_update().get(key=key)
        if not created:
            if live_delivery(row, keep_finished):
                logger.info("delivery %s is already there (%s)", key, row.state)
                return row
            _reset(row, db, new=True, **fresh)  # settled or abandoned: a new delivery
    if connections[db].in_atomic_block:
        transaction.on_commit(partial(_push_or_forget, row, db), using=db)
    else:
        _push_or_forget(row, db)
    return row


def _reset(row: Delivery, db: str, new: bool = False, **fields: Any) -> None:
    """Make ``row`` a delivery waiting for a new task: pushed again, or (``new``) a new
    delivery under its key, with nothing of the old one kept."""
    values = {
        "state": WAITING,
        "owner": "",
        "result_id": "",
        "enqueued_at": timezone.now(),
        **fields,
    }
    if new:
        values.update(attempts=0, notes={}, outcome=None, started_at=None, seen_at=None)
        values.update(finished_at=None)
    for name, value in values.items():
        setattr(row, name, value)
    row.save(using=db, update_fields=list(values))


def _push_or_forget(row: Delivery, db: str) -> None:
    """Push the task of a new delivery; when that fails, the delivery goes (unless a worker
    took it already) and the error is raised: the caller was told nothing was enqueued."""
    try:
        push(row, db)
    except BaseException:
        Delivery.objects.using(db).filter(key=row.key, state=WAITING, result_id="").delete()
        raise


def push(row: Delivery, db: str) -> None:
    """Enqueue the task that carries ``row.key`` and note its id on the row (unless another
    push noted its own first: that task is the delivery's, this one will run nothing)."""
    task = deliver_task.using(backend=row.backend, queue_name=row.queue)
    result = task.enqueue(row.key)
    row.result_id = str(result.id)
    waiting = Delivery.objects.using(db).filter(key=row.key, state=WAITING, result_id="")
    waiting.update(result_id=row.result_id)


def _push_logged(row: Delivery, db: str) -> bool:
    """Push again a delivery that is waiting already; a failure is logged, and the delivery
    waits for ``drain_runs --enqueue`` (it pushes a task-less delivery after
    ``PUSH_GRACE_SECONDS``)."""
    try:
        push(row, db)
    except Exception as exc:
        logger.warning("delivery %s: could not push its task (%s: %s)", row.key,
                       type(exc).__name__, exc)  # fmt: skip
        return False
    return True


def live_delivery(row: Delivery, keep_finished: bool = False) -> bool:
    """Waiting or running and not abandoned; with ``keep_finished``, finished too (for a
    day: ``FINISHED_TURN_DAYS``)."""
    if row.state == FINISHED:
        cutoff = timezone.now() - timedelta(days=FINISHED_TURN_DAYS)
        return keep_finished and (row.finished_at is None or row.finished_at > cutoff)
    return row.state in (WAITING, RUNNING) and abandoned(row) is None


def abandoned(row: Delivery) -> str | None:
    """Why a waiting or running delivery will never end by itself, or None."""
    now = timezone.now()
    lease = timedelta(seconds=float(warlock_settings.LEASE_SECONDS))
    if row.state == RUNNING:
        if owner_is_dead(row.owner):
            return "its worker died"
        if row.seen_at is not None and row.seen_at < now - lease:
            return f"its worker stopped renewing it for {lease.total_seconds():g} s"
        return None
    if row.state != WAITING:
        return None
    if not row.result_id:
        if row.enqueued_at < now - timedelta(seconds=PUSH_GRACE_SECONDS):
            return "its task was never pushed"
        return None
    return _task_lost(row, now - lease)


def _task_lost(row: Delivery, cutoff: Any) -> str | None:
    """A waiting delivery whose task the backend ended, lost, or has had running since before
    ``cutoff`` without the task ever taking the row (its worker died in between)."""
    tasks = tasks_module()
    missing = import_module(f"{tasks.__name__}.exceptions").TaskResultDoesNotExist
    try:
        task_backend = tasks.task_backends[row.backend]
    except Exception:
        return f'its tasks backend "{row.backend}" is not configured any more'
    try:
        result = task_backend.get_result(row.result_id)
    except NotImplementedError:  # a backend that cannot look results up
        return None
    except missing:
        return "its task is gone from the tasks backend"
    status = str(result.status)
    if status in ("SUCCESSFUL", "FAILED"):
        return f"its task ended ({status}) without running it"
    started = result.started_at or result.enqueued_at
    if status == "RUNNING" and started is not None and started < cutoff:
        return "its task's worker died before running it"
    return None


# --- in the worker ------------------------------------------------------------------------


def claim(key: str, result_id: str | None) -> tuple[Delivery | None, str | None]:
    """Take delivery ``key`` for this process: ``(row, None)``, or ``(None, why not)`` when
    it is gone, settled, running in a live process, or carried by another task now."""
    db = _db()
    with _write_lock(db):
        row = _locked(db, key)
        if row is None:
            return None, "nothing to run: its delivery is gone"
        if row.state in (FINISHED, FAILED):
            return None, f"nothing to run: its delivery {row.state}"
        if row.state == RUNNING and abandoned(row) is None:
            return None, f"skipped: running in {row.owner}"
        if row.state == WAITING and row.result_id and result_id and row.result_id != result_id:
            return None, f"skipped: the delivery's task is {row.result_id} now"
        now = timezone.now()
        row.state, row.owner, row.attempts = RUNNING, new_owner_id(), row.attempts + 1
        row.started_at = row.seen_at = now
        row.result_id = result_id or row.result_id
        fields = ["state", "owner", "attempts", "started_at", "seen_at", "result_id"]
        row.save(using=db, update_fields=fields)
    return row, None


def finish(
    row: Delivery, outcome: dict[str, Any] | None, error: BaseException | None, retry: bool = True
) -> bool:
    """Settle ``row``: finished with ``outcome``, or after ``error`` pushed again while
    attempts are left and ``retry`` (returns True), else failed. A row another process took
    over meanwhile (its ``owner`` changed) is left alone."""
    db = _db()
    mine = Delivery.objects.using(db).filter(key=row.key, owner=row.owner, state=RUNNING)
    now = timezone.now()
    if error is None:
        mine.update(state=FINISHED, outcome=outcome, owner="", finished_at=now, seen_at=now)
        return False
    text = f"{type(error).__name__}: {getattr(error, 'message', None) or error}"
    if retry and row.attempts < RETRIES and _wait_again(row, db, outcome={"error": text}):
        return True
    mine.update(state=FAILED, outcome={"error": text}, owner="", finished_at=now, seen_at=now)
    return False


def push_again(row: Delivery) -> None:
    """Back to waiting and pushed again, without using an attempt (a busy session)."""
    _wait_again(row, _db(), attempts=max(row.attempts - 1, 0))


def _wait_again(row: Delivery, db: str, **fields: Any) -> bool:
    """The running ``row``, if this process still owns it, back to waiting (with ``fields``)
    and its task pushed again; False when another process took it over meanwhile."""
    mine = Delivery.objects.using(db).filter(key=row.key, owner=row.owner, state=RUNNING)
    if not mine.update(state=WAITING, owner="", result_id="", enqueued_at=timezone.now(), **fields):
        return False
    row.state, row.owner, row.result_id = WAITING, "", ""
    _push_logged(row, db)
    return True


def heartbeat(row: Delivery) -> AbstractContextManager[None]:
    """Renew ``seen_at`` of a running delivery every third of ``LEASE_SECONDS``, from a
    thread of its own (with its own database connection), while the body runs."""
    mine = Delivery.objects.using(_db()).filter(key=row.key, owner=row.owner)
    return renewing(mine, f"delivery {row.key}", lambda: {"seen_at": timezone.now()})


# --- workers that died --------------------------------------------------------------------


def requeue_abandoned() -> list[tuple[str, str]]:
    """Push again every delivery whose worker died, stopped renewing it, or whose task was
    lost; returns ``(run_id, outcome)`` pairs, like ``drain_runs``. A delivery that cannot
    be pushed is reported (``error: ...``) and the others go on."""
    db = _db()
    outcomes = []
    candidates = Delivery.objects.using(db).filter(state__in=(WAITING, RUNNING))
    for key in candidates.order_by("enqueued_at").values_list("key", flat=True):
        try:
            outcome = _requeue(db, key)
        except Exception as exc:
            logger.warning(
                "delivery %s could not be put back: %s: %s", key, type(exc).__name__, exc
            )
            outcome = (key, f"error: {type(exc).__name__}: {exc}")
        if outcome is not None:
            outcomes.append(outcome)
    return outcomes


def _requeue(db: str, key: str) -> tuple[str, str] | None:
    with _write_lock(db):
        row = _locked(db, key)
        why = abandoned(row) if row is not None else None
        if row is None or why is None:
            return None
        _fail_backend_task(row, why)
        task_backend, queue = _usable(row)
        _reset(row, db, backend=task_backend, queue=queue)
        # Pushed before the reset commits: a sweeper that dies in between leaves the delivery
        # as it was, for the next sweep, not waiting task-less for PUSH_GRACE_SECONDS (a
        # task it pushed that the delivery never names runs nothing).
        pushed = _push_logged(row, db)
    run_id = row.arguments.get("run_id") or row.notes.get("turn_run_id") or key
    if not pushed:
        return run_id, f"error: {why}, and its task could not be pushed again"
    logger.warning("run %r: %s; delivery %s pushed again", run_id, why, key)
    return run_id, f"requeued: {why}"


def _usable(row: Delivery) -> tuple[str, str]:
    """The row's backend and queue, or the configured ones where the row's are gone."""
    try:
        if row.queue in backend(row.backend).queues:
            return row.backend, row.queue
    except Exception:
        pass
    return warlock_settings.TASKS_BACKEND, warlock_settings.TASKS_QUEUE


def _fail_backend_task(row: Delivery, why: str) -> None:
    """Mark the lost task failed in django-tasks-db's table, which would show it running for
    ever (another backend keeps its own record)."""
    if not row.result_id or find_spec("django_tasks_db") is None:
        return
    from django.apps import apps

    if not apps.is_installed("django_tasks_db"):
        return
    from django_tasks_db.backend import DatabaseBackend
    from django_tasks_db.models import DBTaskResult

    try:
        if not isinstance(backend(row.backend), DatabaseBackend):
            return
        DBTaskResult.objects.filter(id=row.result_id, status="RUNNING").update(
            status="FAILED",
            finished_at=timezone.now(),
            exception_class_path="warlock_ai.task_queue.Abandoned",
            traceback=f"warlock_ai: {why}; delivery {row.key} was pushed again",
        )
    except Exception as exc:  # an alias gone, an id that is not the table's: nothing to mark
        logger.info("delivery %s: its task %s was not marked failed: %s", row.key,
                    row.result_id, exc)  # fmt: skip


# --- the task (run by a tasks worker) -----------------------------------------------------


def _deliver(context: Any, key: str) -> dict[str, Any]:
    """Run delivery ``key``: take it (a delivery another live process runs, a settled one, or
    one another task carries now, is left alone), run its body with ``seen_at`` renewed,
    settle it. A failure is pushed again while attempts are left, and raised, so the tasks
    backend records it too."""
    result_id = getattr(getattr(context, "task_result", None), "id", None)
    row, why = claim(key, str(result_id) if result_id is not None else None)
    if row is None:
        logger.info("delivery %s: %s", key, why)
        return {"key": key, "outcome": why}
    queue = concurrency.current_queue.set(row.queue)
    try:
        with heartbeat(row):
            outcome = _BODIES[row.task](row)
    except ConcurrencyLimitError as exc:
        return _deferred(row, exc)
    except SessionBusyError as exc:
        return _busy(row, exc)
    except BaseException as exc:
        again = finish(row, None, exc)
        logger.warning("delivery %s failed (%s)%s", key, exc, "; pushed again" if again else "")
        raise
    finally:
        concurrency.current_queue.reset(queue)
    finish(row, outcome, None)
    return outcome


def _deferred(row: Delivery, exc: ConcurrencyLimitError) -> dict[str, Any]:
    """Its flow or queue was at its concurrency limit for the whole wait: pushed again, as
    often as it takes, without using an attempt."""
    row.notes["deferred"] = int(row.notes.get("deferred", 0)) + 1
    row.save_meta()
    logger.info("%s; delivery %s is pushed again", exc.message, row.key)
    push_again(row)
    return {
        "key": row.key,
        "outcome": f"pushed again: {getattr(exc, 'scope', '?')} was at its limit",
    }


def _busy(row: Delivery, exc: SessionBusyError) -> dict[str, Any]:
    """The turn's session stayed busy for its whole ``lock_timeout``: pushed again, at most
    ``BUSY_RETRIES`` times, then failed."""
    busy = int(row.notes.get("busy", 0)) + 1
    row.notes["busy"] = busy
    row.save_meta()
    if busy > BUSY_RETRIES:
        finish(row, None, exc, retry=False)
        raise exc
    logger.info("%s; delivery %s is pushed again", exc.message, row.key)
    push_again(row)
    return {"key": row.key, "outcome": "pushed again: its session was busy"}


def _execute(row: Delivery) -> dict[str, Any]:
    arguments = row.arguments
    return execute_job(arguments["flow"], arguments["input"], arguments["run_id"])


def _resume(row: Delivery) -> dict[str, Any]:
    return resume_job(row.arguments["run_id"], row.arguments.get("force", False))


def _turn(row: Delivery) -> dict[str, Any]:
    arguments = row.arguments
    return run_turn(
        arguments["orchestrator"], arguments["session_id"], arguments["input"],
        arguments["turn"], row,
    )  # fmt: skip


_BODIES = {"execute": _execute, "resume": _resume, "turn": _turn}


@tasks_module().task(backend=warlock_settings.TASKS_BACKEND, takes_context=True)
def deliver_task(context: Any, key: str) -> dict[str, Any]:
    """The task of every delivery: it carries only the delivery's key."""
    return _deliver(context, key)
