"""A trip-level middleware that writes a ``ModelCall`` row around every model call.

``before`` writes the row (status ``started``) before the request goes out, ``after`` fills
in the usage of the reply, ``on_error`` marks a failed call; a call whose process was killed
while it waited stays ``started``. Rows from every process land in one table, which is how
the demo counts, across a crash and a resume, which calls were made and paid for.

A trip middleware sees the agent, the model and the messages, not the run: the supervisor's
``supervisor.iteration.starting`` event names the run and the iteration, and
:data:`RUN_EVENTS` keeps them in a context variable the middleware reads. That holds while the
intents of an iteration run in the context that runs the supervisor: under ``execute`` (the
commands, rq workers) when one intent is dispatched at a time, as ``support-triage`` does, and
under ``aexecute`` always. Under ``aexecute`` the hooks return awaitables that write the rows
in a worker thread, as Django's ORM requires.
"""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from asgiref.sync import sync_to_async
from django.utils import timezone

import warlock_ai as ai

from .models import ModelCall

# (run id, iteration) of the supervisor iteration running in this context, if any.
_current: ContextVar[tuple[str, int | None]] = ContextVar("support_call", default=("", None))


def iteration_started(event: dict[str, Any]) -> None:
    _current.set((event["run_id"], event["iteration"]))


def run_finished(event: dict[str, Any]) -> None:
    _current.set(("", None))


#: Definition-level handlers for the supervisor (``ai.supervisor(on=RUN_EVENTS)``).
RUN_EVENTS = {
    "supervisor.iteration.starting": iteration_started,
    "supervisor.completed": run_finished,
}

#: The same for an orchestrator (``ai.orchestrator(on=TURN_EVENTS)``): a turn's inner loop
#: emits the supervisor's iteration events under the turn's run id, and ends with one of these.
TURN_EVENTS = {
    "supervisor.iteration.starting": iteration_started,
    "orchestrator.turn.awaiting-input": run_finished,
    "orchestrator.turn.failed": run_finished,
    "orchestrator.turn.cancelled": run_finished,
}


def _key(ctx: ai.PipelineContext) -> str:
    return f"support.model_call.{ctx.trip_index}"


def _database(write: Callable[..., None]) -> Callable[..., Any]:
    """``write`` as a hook: run now, or inside an event loop as an awaitable in a thread."""

    @functools.wraps(write)
    def hook(*args: Any) -> Any:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return write(*args)
        return sync_to_async(write)(*args)

    return hook


@_database
def call_started(ctx: ai.PipelineContext) -> None:
    run_id, iteration = _current.get()
    row = ModelCall.objects.create(
        run_id=run_id,
        iteration=iteration,
        agent=ctx.agent["name"],
        trip=ctx.trip_index or 0,
        model=f"{ctx.model['provider']}/{ctx.model['name']}",
        pid=os.getpid(),
    )
    ctx.state[_key(ctx)] = row.pk  # the state is shared by the levels of one execution


@_database
def call_finished(ctx: ai.PipelineContext, reply: Any) -> None:
    usage = ai.Usage.coerce(getattr(reply, "usage", None))
    ModelCall.objects.filter(pk=ctx.state.pop(_key(ctx), None)).update(
        status=ModelCall.Status.FINISHED,
        input_tokens=usage.input,
        output_tokens=usage.output,
        total_tokens=usage.total,
        finished_at=timezone.now(),
    )


@_database
def call_failed(ctx: ai.PipelineContext, error: Exception) -> None:
    ModelCall.objects.filter(pk=ctx.state.pop(_key(ctx), None)).update(
        status=ModelCall.Status.FAILED, finished_at=timezone.now()
    )
    # Returning None lets the error go on to the agent.


model_calls = ai.Middleware(
    "model-calls",
    trip=ai.Hooks(before=call_started, after=call_finished, on_error=call_failed),
)
