"""What runs runs in the background: django-rq or Django's tasks framework, as
``WARLOCK_AI["BACKGROUND"]`` says. The admin, the commands and the API enqueue through here.

``"rq"``: ``warlock_ai.jobs`` on the django-rq queue ``RQ_QUEUE``. ``"tasks"``:
``warlock_ai.task_jobs`` on the tasks backend ``TASKS_BACKEND`` (an alias of ``settings.TASKS``),
queue ``TASKS_QUEUE``. ``None`` (the default): django-rq when it is installed and ``RQ_QUEUE``
is one of its ``RQ_QUEUES``, else nothing runs in the background. Either way leases, recovery,
cancel and drain are warlock_ai's own: the job bodies are the same (``run_jobs``).

What an enqueue returns is a handle with ``id``: an rq job, or a ``Delivery`` row.
"""

from __future__ import annotations

import logging
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from .conf import warlock_settings

logger = logging.getLogger("warlock_ai.background")

__all__ = [
    "RQ",
    "TASKS",
    "configured",
    "describe",
    "enqueue_execute",
    "enqueue_resume",
    "enqueue_resume_turn",
    "enqueue_turn",
    "kind",
    "queue_label",
    "requeue_abandoned",
    "waiting_start",
]

RQ, TASKS = "rq", "tasks"


def kind() -> str | None:
    """``"rq"``, ``"tasks"`` or None (nothing configured runs in the background)."""
    value = warlock_settings.BACKGROUND
    if value is None:
        return RQ if rq_configured() else None
    if value not in (RQ, TASKS):
        raise ImproperlyConfigured(
            f'WARLOCK_AI["BACKGROUND"] must be "rq", "tasks" or None, got {value!r}'
        )
    return str(value)


def rq_configured() -> bool:
    """django-rq is installed and ``WARLOCK_AI["RQ_QUEUE"]`` is one of its ``RQ_QUEUES``."""
    queues = getattr(settings, "RQ_QUEUES", None) or {}
    return apps.is_installed("django_rq") and warlock_settings.RQ_QUEUE in queues


def configured() -> bool:
    """Something will run what is enqueued: django-rq with its queue configured, or the
    tasks framework with the backend alias configured."""
    chosen = kind()
    if chosen == RQ:
        return rq_configured()
    return chosen == TASKS and tasks_problem() is None


def tasks_problem(queue: str | None = None) -> str | None:
    """Why the tasks backend (or ``queue`` on it) cannot take warlock_ai's tasks, or None."""
    from .tasks_framework import tasks_module

    try:
        module = tasks_module()
    except ImportError as exc:
        return str(exc)
    alias = warlock_settings.TASKS_BACKEND
    try:
        backend = module.task_backends[alias]
    except Exception as exc:
        return f'WARLOCK_AI["TASKS_BACKEND"] is "{alias}": {exc}'
    name = queue or warlock_settings.TASKS_QUEUE
    if name not in backend.queues:
        known = ", ".join(sorted(backend.queues))
        return f'unknown tasks queue "{name}"; the "{alias}" backend\'s QUEUES: {known}'
    return None


def _module() -> Any:
    chosen = kind()
    if chosen == TASKS:
        from . import task_jobs

        return task_jobs
    from . import jobs

    return jobs


def enqueue_execute(
    flow: str, input: Any = None, run_id: str | None = None, queue: str | None = None
) -> Any:
    """Run the registered flow ``flow`` in the background (``jobs``/``tasks.enqueue_execute``)."""
    return _module().enqueue_execute(flow, input, run_id, queue)


def enqueue_resume(run_id: str, force: bool = False, queue: str | None = None) -> Any:
    """Resume the stored run ``run_id`` in the background."""
    return _module().enqueue_resume(run_id, force=force, queue=queue)


def enqueue_turn(orchestrator_name: str, session_id: str, input: Any, **turn: Any) -> Any:
    """Run one turn of a session in the background (keywords as ``jobs.enqueue_turn``)."""
    return _module().enqueue_turn(orchestrator_name, session_id, input, **turn)


def enqueue_resume_turn(
    orchestrator_name: str, session_id: str, force: bool = False, queue: str | None = None
) -> Any:
    """Finish the session's interrupted turn in the background, or None when it has none."""
    return _module().enqueue_resume_turn(orchestrator_name, session_id, force=force, queue=queue)


def requeue_abandoned() -> list[tuple[str, str]]:
    """Put back what workers that died held: rq jobs, or deliveries of the tasks framework."""
    if kind() == TASKS:
        from .task_queue import requeue_abandoned as requeue

        return requeue()
    from redis.exceptions import RedisError

    from .jobs import requeue_abandoned_jobs

    # Every queue of RQ_QUEUES, the configured one first: a job enqueued on another queue
    # (``--queue bulk``) whose worker died is put back on its own.
    names = [warlock_settings.RQ_QUEUE]
    names += [n for n in getattr(settings, "RQ_QUEUES", {}) or {} if n not in names]
    outcomes = []
    for index, name in enumerate(names):
        try:
            outcomes += requeue_abandoned_jobs(name)
        except RedisError as exc:
            if index == 0:
                raise
            logger.warning("queue %s not swept: %s: %s", name, type(exc).__name__, exc)
    return outcomes


def waiting_start(run_id: str) -> tuple[str, str, Any] | None:
    """``(job id, "kind:name", input)`` of a start of ``run_id`` still waiting or running in
    the background, or None."""
    from .job_queue import job_id_for

    if kind() == TASKS:
        from .models import Delivery
        from .task_queue import live_delivery

        row = Delivery.objects.filter(key=job_id_for(run_id), task="execute").first()
        if row is None or not live_delivery(row):
            return None
        return row.key, row.arguments.get("flow"), row.arguments.get("input")
    from .job_queue import get_queue, live_job

    job = live_job(get_queue(None), job_id_for(run_id))
    if job is None:
        return None
    args = tuple(job.args or ())
    return (job.id, args[0], args[1]) if len(args) == 3 else (job.id, "", None)


def queue_label() -> str:
    """Where enqueued runs go, for messages: the django-rq queue or the tasks backend's."""
    if kind() == TASKS:
        backend = warlock_settings.TASKS_BACKEND
        return f'the tasks queue "{warlock_settings.TASKS_QUEUE}" of backend "{backend}"'
    return f'the django-rq queue "{warlock_settings.RQ_QUEUE}"'


def describe(handle: Any) -> dict[str, Any]:
    """What a command prints of an enqueued job: the run (``run_id``) or the turn
    (``orchestrator``, ``session_id``, ``turn_key``) it carries, ``job_id``, ``job_status``
    and ``queue``."""
    from .models import Delivery

    if isinstance(handle, Delivery):
        arguments = handle.arguments
        status, queue = str(handle.state), handle.queue
        if "run_id" in arguments:
            what = {"run_id": arguments["run_id"]}
        else:
            what = {key: arguments.get(key) for key in ("orchestrator", "session_id", "turn_key")}
    else:
        meta, status = handle.meta, handle.get_status(refresh=False)
        status, queue = getattr(status, "value", status), handle.origin
        if "run_id" in meta:
            what = {"run_id": meta["run_id"]}
        else:
            what = {key: meta.get(key) for key in ("orchestrator", "session_id", "turn_key")}
    return {**what, "job_id": handle.id, "job_status": status, "queue": queue}
