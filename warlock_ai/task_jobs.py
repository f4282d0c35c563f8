"""Background runs on Django's tasks framework (``WARLOCK_AI["BACKGROUND"] = "tasks"``):
enqueue a flow, a resume or an orchestrator's turn; a tasks worker (``manage.py db_worker``
with django-tasks-db) runs it. The same four functions as ``warlock_ai.jobs`` (django-rq);
``warlock_ai.background`` picks one of the two by the setting.

Each is one ``Delivery`` row and one task, ``task_queue.deliver_task``, that carries only the
row's key. The job bodies are django-rq's (``run_jobs``): idempotent, stepping aside when
another worker holds the run. What the tasks framework leaves out is kept in
``task_queue``: one live delivery per run or turn, a retry after a failure, a turn pushed
again while its session is busy, and recovery of a delivery whose worker died
(``requeue_abandoned``, run by ``drain_runs --enqueue``).
"""

from __future__ import annotations

from typing import Any

from .job_queue import job_id_for, turn_job_id
from .models import Delivery
from .run_jobs import (
    check_execute,
    check_resume,
    check_turn,
    refuse_leased,
    refuse_stored,
    turn_to_resume,
)
from .task_queue import deliver, live_delivery

__all__ = [
    "enqueue_execute",
    "enqueue_resume",
    "enqueue_resume_turn",
    "enqueue_turn",
]

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
    definition, snapshot = check_resume(run_id, force)
    existing = _live(job_id_for(run_id))
    if existing is not None:
        return existing
    refuse_leased(run_id, definition, snapshot)
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
