"""Background runs on Django's tasks framework (``WARLOCK_AI["BACKGROUND"] = "tasks"``):
enqueue a flow, a resume or an orchestrator's turn; a tasks worker (``manage.py db_worker``
with django-tasks-db) runs it.

Each is one ``Delivery`` row (``task_queue``) and one task, ``deliver_task``, that carries
only the row's key. The job bodies are django-rq's (``run_jobs``): idempotent, stepping aside
when another worker holds the run. What the tasks framework leaves out is kept here: one live
delivery per run or turn, a retry after a failure (``task_queue.RETRIES``), a turn pushed
again while its session is busy, and recovery of a delivery whose worker died
(``task_queue.requeue_abandoned``, run by ``drain_runs --enqueue``).

Importing this module binds ``deliver_task`` to the tasks backend
``WARLOCK_AI["TASKS_BACKEND"]``; each enqueue names the configured backend and queue again.
"""

from __future__ import annotations

import logging
from typing import Any

from .conf import warlock_settings
from .core.errors import SessionBusyError
from .job_queue import job_id_for, turn_job_id
from .models import Delivery
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
from .task_queue import claim, deliver, finish, heartbeat, live_delivery, push_again, tasks_module

__all__ = [
    "BUSY_RETRIES",
    "deliver_task",
    "enqueue_execute",
    "enqueue_resume",
    "enqueue_resume_turn",
    "enqueue_turn",
]

logger = logging.getLogger("warlock_ai.jobs")

#: How many times a turn whose session stayed busy for its orchestrator's whole
#: ``lock_timeout`` is pushed again before its delivery fails (``jobs.BUSY_RETRIES``).
BUSY_RETRIES = 20

# --- enqueueing ---------------------------------------------------------------------------


def enqueue_execute(
    flow: str, input: Any = None, run_id: str | None = None, queue: str | None = None
) -> Delivery:
    """Run the registered flow ``flow`` on a tasks worker; returns its ``Delivery``.

    As ``jobs.enqueue_execute``: the run id is generated here when not given, bad input and
    a run already stored are refused now, and a live delivery of the run is returned as is.
    """
    definition, name, run_id = check_execute(flow, input, run_id)
    existing = _live(job_id_for(run_id))
    if existing is not None:
        return existing
    refuse_stored(definition, run_id)
    arguments = {"flow": name, "input": input, "run_id": run_id}
    return deliver(job_id_for(run_id), "execute", arguments, queue, keep_finished=False)


def enqueue_resume(run_id: str, force: bool = False, queue: str | None = None) -> Delivery:
    """Resume the stored run ``run_id`` on a tasks worker; refused as ``jobs.enqueue_resume``
    refuses (unknown, drifted unless ``force``, leased by a live worker)."""
    definition = check_resume(run_id, force)
    existing = _live(job_id_for(run_id))
    if existing is not None:
        return existing
    refuse_leased(run_id, definition)
    arguments = {"run_id": run_id, "force": bool(force)}
    return deliver(job_id_for(run_id), "resume", arguments, queue, keep_finished=False)


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
) -> Delivery:
    """Run one turn of a session on a tasks worker: one delivery per turn, as
    ``jobs.enqueue_turn`` (the same turn enqueued again within a day runs nothing)."""
    turn = {"history": history, "state": state, "context": context, "force": bool(force)}
    orch, sid, key = check_turn(orchestrator_name, session_id, input, turn, turn_key)
    arguments = {"orchestrator": orch.name, "session_id": sid, "input": input, "turn": turn}
    arguments["turn_key"] = key
    return deliver(turn_job_id(orch.name, sid, key), "turn", arguments, queue, keep_finished=True)


def enqueue_resume_turn(
    orchestrator_name: str, session_id: str, force: bool = False, queue: str | None = None
) -> Delivery | None:
    """Finish the session's interrupted turn on a tasks worker (the resume of its run), or
    None when the session has none."""
    run_id = turn_to_resume(orchestrator_name, session_id)
    return None if run_id is None else enqueue_resume(run_id, force=force, queue=queue)


def _live(key: str) -> Delivery | None:
    row = Delivery.objects.filter(key=key).first()
    return row if row is not None and live_delivery(row) else None


# --- the task (run by a tasks worker) -----------------------------------------------------


def _deliver(context: Any, key: str) -> dict[str, Any]:
    """Run delivery ``key``: take it (a delivery another live process runs, or one that
    finished, is left alone), run its body with ``seen_at`` renewed, settle it. A failure is
    pushed again while attempts are left, and raised, so the tasks backend records it too."""
    result_id = getattr(getattr(context, "task_result", None), "id", None)
    row, why = claim(key, str(result_id) if result_id is not None else None)
    if row is None:
        logger.info("delivery %s: %s", key, why)
        return {"key": key, "outcome": why}
    try:
        with heartbeat(row):
            outcome = _BODIES[row.task](row)
    except SessionBusyError as exc:
        return _busy(row, exc)
    except BaseException as exc:
        again = finish(row, None, exc)
        logger.warning("delivery %s failed (%s)%s", key, exc, "; pushed again" if again else "")
        raise
    finish(row, outcome, None)
    return outcome


def _busy(row: Delivery, exc: SessionBusyError) -> dict[str, Any]:
    busy = int(row.notes.get("busy", 0)) + 1
    row.notes["busy"] = busy
    row.save_meta()
    if busy > BUSY_RETRIES:
        finish(row, None, exc)
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
