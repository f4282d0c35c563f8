"""Django's tasks framework plumbing for ``warlock_ai.tasks``: one ``Delivery`` row per run or
turn, the task that carries its key pushed on commit, and deliveries whose worker died put back.

The tasks framework (``django.tasks`` on Django 6, the ``django-tasks`` backport on 5.2) has
no job ids, no retries and no notion of a dead worker: a ``db_worker`` killed mid-task leaves
its task RUNNING for ever. So what rq gives ``warlock_ai.jobs`` is kept here, in the
project's database: a delivery's key is the rq job id's form (``job_queue.job_id_for``), a
second enqueue of a live delivery returns it, the process running it is its ``owner`` and
renews ``seen_at`` every third of ``LEASE_SECONDS``, and ``requeue_abandoned`` (run by
``drain_runs --enqueue``) pushes again every delivery whose owner died, whose owner stopped
renewing for ``LEASE_SECONDS``, or whose task was lost before any worker took it.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from functools import partial
from importlib import import_module
from importlib.util import find_spec
from typing import Any

from django.db import IntegrityError, close_old_connections, connection, transaction
from django.utils import timezone

from .conf import warlock_settings
from .core.runs.leases import new_owner_id, owner_is_dead
from .models import Delivery

__all__ = [
    "FINISHED_TURN_DAYS",
    "PUSH_GRACE_SECONDS",
    "RETRIES",
    "backend",
    "claim",
    "deliver",
    "finish",
    "heartbeat",
    "live_delivery",
    "requeue_abandoned",
    "tasks_module",
]

logger = logging.getLogger("warlock_ai.jobs")

#: How often a delivery that raised (a shutdown, a snapshot write that did not land, a bug)
#: is pushed again before it is left failed: rq's ``Retry(max=3)``, kept here.
RETRIES = 3
#: A delivery still waiting this long after it was enqueued without its task having been
#: pushed (the process died between its commit and the push) is pushed again.
PUSH_GRACE_SECONDS = 60
#: A finished turn's delivery is kept (so the same turn enqueued again runs nothing) as long
#: as rq keeps a finished turn's job: ``jobs.TURN_JOB_TTL``, a day.
FINISHED_TURN_DAYS = 1

WAITING, RUNNING = Delivery.State.WAITING, Delivery.State.RUNNING
FINISHED, FAILED = Delivery.State.FINISHED, Delivery.State.FAILED


def tasks_module() -> Any:
    """``django.tasks`` where Django has it (6.0+), else the ``django_tasks`` backport: the
    same choice ``django-tasks-db`` makes, so tasks and workers agree."""
    if find_spec("django.tasks") is not None:
        import django.tasks as module
    else:
        try:
            import django_tasks as module  # type: ignore[no-redef]
        except ImportError:
            raise ImportError(
                "WARLOCK_AI['BACKGROUND'] = 'tasks' needs Django's tasks framework: Django 6, "
                "or pip install 'warlock-ai[tasks]' on Django 5.2"
            ) from None
    return module


def backend() -> Any:
    """The tasks backend ``WARLOCK_AI["TASKS_BACKEND"]`` (an alias of ``settings.TASKS``)."""
    return tasks_module().task_backends[warlock_settings.TASKS_BACKEND]


def owner_name() -> str:
    """This execution as a delivery's owner: ``host:pid:8hex`` (the form leases use, so
    ``owner_is_dead`` tells a dead process of this host at once)."""
    return new_owner_id()


# --- enqueueing ---------------------------------------------------------------------------


def deliver(
    key: str, task: str, arguments: dict[str, Any], queue: str | None, keep_finished: bool
) -> Delivery:
    """The live delivery ``key`` (waiting, or running in a live process; with
    ``keep_finished`` also one that finished, so a turn never runs twice), else a new one
    whose task is pushed when the current transaction commits (at once outside one)."""
    queue = queue or warlock_settings.TASKS_QUEUE
    fields = {
        "task": task,
        "arguments": arguments,
        "state": WAITING,
        "backend": warlock_settings.TASKS_BACKEND,
        "queue": queue,
        "result_id": "",
        "owner": "",
        "attempts": 0,
        "notes": {},
        "outcome": None,
        "enqueued_at": timezone.now(),
        "started_at": None,
        "seen_at": None,
        "finished_at": None,
    }
    try:
        with transaction.atomic():
            existing = Delivery.objects.select_for_update().filter(key=key).first()
            if existing is not None and live_delivery(existing, keep_finished):
                logger.info("delivery %s is already there (%s)", key, existing.state)
                return existing
            row, _ = Delivery.objects.update_or_create(key=key, defaults=fields)
    except IntegrityError:  # another process created it meanwhile: that one is live
        return Delivery.objects.get(key=key)
    _push_on_commit(row)
    return row


def _push_on_commit(row: Delivery) -> None:
    if connection.in_atomic_block:
        transaction.on_commit(partial(push, row))
    else:
        push(row)


def push(row: Delivery) -> Delivery:
    """Enqueue the task that carries ``row.key`` and note its result id on the row."""
    from .tasks import deliver_task

    task = deliver_task.using(backend=row.backend, queue_name=row.queue)
    result = task.enqueue(row.key)
    row.result_id = str(result.id)
    Delivery.objects.filter(key=row.key, state=WAITING).update(result_id=row.result_id)
    return row


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
    """A waiting delivery whose task the backend ended, or has had running since before
    ``cutoff`` without the task ever taking the row (its worker died in between)."""
    tasks = tasks_module()
    missing = import_module(f"{tasks.__name__}.exceptions").TaskResultDoesNotExist
    try:
        result = tasks.task_backends[row.backend].get_result(row.result_id)
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
    it is gone, finished, or running in a live process."""
    with transaction.atomic():
        row = Delivery.objects.select_for_update().filter(key=key).first()
        if row is None:
            return None, "nothing to run: its delivery is gone"
        if row.state == FINISHED:
            return None, "nothing to run: its delivery finished"
        if row.state == RUNNING and abandoned(row) is None:
            return None, f"skipped: running in {row.owner}"
        now = timezone.now()
        row.state, row.owner, row.attempts = RUNNING, owner_name(), row.attempts + 1
        row.started_at = row.seen_at = now
        if result_id:
            row.result_id = result_id
        row.save(update_fields=["state", "owner", "attempts", "started_at", "seen_at", "result_id"])
    return row, None


def finish(row: Delivery, outcome: dict[str, Any] | None, error: BaseException | None) -> bool:
    """Settle ``row``: finished with ``outcome``, or (after ``error``) pushed again while it
    has attempts left (True), else failed."""
    mine = Delivery.objects.filter(key=row.key, owner=row.owner, state=RUNNING)
    now = timezone.now()
    if error is None:
        mine.update(state=FINISHED, outcome=outcome, owner="", finished_at=now, seen_at=now)
        return False
    text = f"{type(error).__name__}: {getattr(error, 'message', None) or error}"
    if row.attempts < RETRIES:
        if mine.update(state=WAITING, owner="", result_id="", outcome={"error": text}):
            row.state, row.owner = WAITING, ""
            push(row)
            return True
        return False
    mine.update(state=FAILED, outcome={"error": text}, owner="", finished_at=now, seen_at=now)
    return False


def push_again(row: Delivery) -> None:
    """Back to waiting and pushed again, without counting an attempt (a busy session)."""
    updated = Delivery.objects.filter(key=row.key, owner=row.owner, state=RUNNING).update(
        state=WAITING, owner="", result_id="", attempts=max(row.attempts - 1, 0)
    )
    if updated:
        row.state, row.owner = WAITING, ""
        push(row)


class heartbeat:
    """Renew ``seen_at`` of a running delivery every third of ``LEASE_SECONDS``, from a
    thread of its own (with its own database connection), while the body runs."""

    def __init__(self, row: Delivery) -> None:
        self.row = row
        self.stopped = threading.Event()
        self.every = max(float(warlock_settings.LEASE_SECONDS) / 3, 0.2)
        self.thread = threading.Thread(target=self._beat, name="warlock-delivery", daemon=True)

    def __enter__(self) -> heartbeat:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stopped.set()
        self.thread.join(timeout=10)

    def _beat(self) -> None:
        try:
            while not self.stopped.wait(self.every):
                try:
                    Delivery.objects.filter(key=self.row.key, owner=self.row.owner).update(
                        seen_at=timezone.now()
                    )
                except Exception as exc:  # the next beat tries again; the lease decides
                    logger.warning("delivery %s: could not renew it: %s", self.row.key, exc)
                    close_old_connections()
        finally:
            connection.close()


# --- workers that died --------------------------------------------------------------------


def requeue_abandoned() -> list[tuple[str, str]]:
    """Push again every delivery whose worker died, stopped renewing it, or whose task was
    lost; returns ``(run_id, outcome)`` pairs, like ``drain_runs``."""
    outcomes = []
    candidates = Delivery.objects.filter(state__in=(WAITING, RUNNING)).order_by("enqueued_at")
    for key in candidates.values_list("key", flat=True):
        with transaction.atomic():
            row = Delivery.objects.select_for_update().filter(key=key).first()
            why = abandoned(row) if row is not None else None
            if row is None or why is None:
                continue
            _fail_backend_task(row, why)
            Delivery.objects.filter(key=key).update(state=WAITING, owner="", result_id="")
            row.state, row.owner, row.result_id = WAITING, "", ""
            _push_on_commit(row)
        run_id = row.arguments.get("run_id") or row.notes.get("turn_run_id") or key
        logger.warning("run %r: %s; delivery %s pushed again", run_id, why, key)
        outcomes.append((run_id, f"requeued: {why}"))
    return outcomes


def _fail_backend_task(row: Delivery, why: str) -> None:
    """Mark the lost task failed in django-tasks-db's table, which would show it running for
    ever (another backend keeps its own record)."""
    if not row.result_id or find_spec("django_tasks_db") is None:
        return
    from django.apps import apps

    if not apps.is_installed("django_tasks_db"):
        return
    from django_tasks_db.models import DBTaskResult

    DBTaskResult.objects.filter(id=row.result_id, status="RUNNING").update(
        status="FAILED",
        finished_at=timezone.now(),
        exception_class_path="warlock_ai.task_queue.Abandoned",
        traceback=f"warlock_ai: {why}; delivery {row.key} was pushed again",
    )
