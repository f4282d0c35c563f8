"""Running one workflow step: skip, attempts with retries and backoff, the agent call, output
extraction, and parallel groups (children from one base state, merged in declaration order).

A step failure is returned as a failed ``StepRecord``, never raised; only cancellation and
step-local handler errors propagate to the run loop (``workflow_engine``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator
from datetime import datetime
from time import perf_counter
from typing import TYPE_CHECKING, Any, cast

from ..agents.schema import validate_schema
from ..errors import (
    AIError,
    StepFailedError,
    WorkflowCancelledError,
    WorkflowError,
    to_ai_error,
)
from ..runs.cancel import CancelToken
from ..runs.effects import Call, CallEither, Gather, Sleep
from ..runs.run import describe, elapsed_ms
from ..runs.snapshots import COMPLETED, FAILED, now
from ..runs.state import StepState, changed_items
from ..runs.usage import ZERO, Usage
from .results import WorkflowContext
from .retry import Retry, resolve_backoff, resolve_retry
from .snapshot import AttemptRecord, StepRecord
from .steps import Output, Step

if TYPE_CHECKING:
    from .definition import Workflow

logger = logging.getLogger("warlock_ai.workflow")

Effects = Generator[Any, Any, Any]


def is_cancellation(exc: BaseException) -> bool:
    return isinstance(exc, WorkflowCancelledError) or (
        isinstance(exc, AIError) and exc.category == "cancelled"
    )


class StepExecution:
    """Mixin of ``WorkflowRun``: run a step (or a parallel group) and return its record.

    Uses the run's ``wf``, ``ctx``, ``steps``, ``cancel``, ``session_id`` and its ``emit``,
    ``local``, ``check_cancel`` and ``cancelled_error``, declared here for the type checker.
    """

    wf: Workflow
    ctx: WorkflowContext
    steps: dict[str, StepRecord]
    cancel: CancelToken
    session_id: str | None

    if TYPE_CHECKING:

        def emit(self, event: str, **payload: Any) -> Effects: ...
        def local(self, step: Step, event: str, payload: dict[str, Any]) -> Effects: ...
        def check_cancel(self) -> None: ...
        def cancelled_error(self, cause: BaseException | None = None) -> AIError: ...

    def execute_step(self, step: Step, base: dict[str, Any], child: bool = False) -> Effects:
        """Run ``step`` against ``base``; returns ``(record, resulting state)``, never raising
        for a step failure (only cancellation and step-local handler errors propagate)."""
        started, clock = now(), perf_counter()
        if step.on:
            yield from self.local(step, "starting", {"step": step.name})
        yield from self.emit("workflow.step.starting", step=step.name)
        if step.skip is not None:
            skipped = yield from self.run_skip(step, base, started, clock)
            if skipped is not None:
                return skipped
        if step.parallel is not None:
            return (yield from self.execute_group(step, base, started, clock))
        try:
            return (yield from self.attempts(step, base, started, clock, child))
        except WorkflowCancelledError:
            if step.on_cancel is not None:
                try:
                    yield Call(step.on_cancel, (self.ctx.with_state(base),))
                except Exception:
                    logger.exception("on_cancel of step %r failed", step.name)
            raise

    def run_skip(
        self, step: Step, base: dict[str, Any], started: datetime, clock: float
    ) -> Effects:
        """Ask ``step.skip``; returns ``(record, state)`` if the step ends here, else None."""
        name = step.name
        skip_state = StepState.over(base)
        skip = cast("Callable[[WorkflowContext], Any]", step.skip)  # execute_step checked it
        try:
            skipped = yield Call(skip, (self.ctx.with_state(skip_state),))
        except Exception as exc:
            if is_cancellation(exc):
                raise self.cancelled_error(exc) from exc
            err = StepFailedError(
                f'step "{name}" skip raised: {describe(exc)}',
                step_name=name,
                attempts=1,
                cause=exc,
            )
            return self.failed(started, clock, 1, (), err), base
        if not skipped:
            return None
        yield from self.emit("workflow.step.skipped", step=name)
        record = StepRecord(
            status="skipped",
            started_at=started,
            duration_ms=elapsed_ms(clock),
            attempts=0,
            skipped=True,
        )
        return record, skip_state

    # --- attempts and retries -------------------------------------------------------------

    def attempts(
        self, step: Step, base: dict[str, Any], started: datetime, clock: float, child: bool
    ) -> Effects:
        name = step.name
        retry = resolve_retry(step.retry, None if child else self.wf.default_retry)
        total = retry.total_attempts
        history: list[AttemptRecord] = []
        usage = [ZERO]
        last: AIError | None = None
        for k in range(1, total + 1):
            self.check_cancel()
            attempt_started, attempt_clock = now(), perf_counter()
            ctx = self.ctx.with_state(StepState.over(base))
            try:
                result, output = yield from self.attempt(step, ctx, usage)
            except Exception as exc:
                if is_cancellation(exc):
                    raise self.cancelled_error(exc) from exc
                last = to_ai_error(exc)
                history.append(
                    AttemptRecord(k, attempt_started, elapsed_ms(attempt_clock), "failed", last)
                )
                if k >= total or not (yield from self.retry_after(step, retry, k, exc, last)):
                    break
                continue
            history.append(AttemptRecord(k, attempt_started, elapsed_ms(attempt_clock), "success"))
            duration = elapsed_ms(clock)
            record = StepRecord(
                status=COMPLETED,
                started_at=started,
                duration_ms=duration,
                attempts=k,
                attempt_history=tuple(history),
                output=output,
                usage=usage[0],
                result=result,
            )
            yield from self.emit(
                "workflow.step.completed",
                step=name,
                output=output,
                duration_ms=duration,
                attempts=k,
            )
            if step.on:
                yield from self.local(
                    step, "completed", {"step": name, "output": output, "duration_ms": duration}
                )
            return record, ctx.state
        # The loop ran at least once and only a failed attempt gets here: ``last`` is set.
        last_error = cast(AIError, last)
        record = yield from self.exhausted(step, started, clock, history, last_error, usage[0])
        return record, base

    def retry_after(
        self, step: Step, retry: Retry, k: int, exc: Exception, last: AIError
    ) -> Effects:
        """After failed attempt ``k``: False if ``retry_on`` declines, else announce the next
        attempt, back off, and return True."""
        if retry.retry_on is not None and (yield Call(retry.retry_on, (exc, k))) is False:
            return False
        payload = {
            "step": step.name,
            "attempt": k + 1,
            "total_attempts": retry.total_attempts,
            "last_error": last,
        }
        yield from self.emit("workflow.step.retrying", **payload)
        if step.on:
            yield from self.local(step, "retrying", payload)
        if retry.on_retry is not None:
            yield Call(retry.on_retry, (k + 1, exc))
        delay = resolve_backoff(k, retry.backoff)
        if delay > 0 and (yield Sleep(delay, self.cancel)):
            raise self.cancelled_error() from exc
        return True

    def exhausted(
        self,
        step: Step,
        started: datetime,
        clock: float,
        history: list[AttemptRecord],
        last: AIError,
        usage: Usage,
    ) -> Effects:
        """The failed record of a step whose attempts ran out (or whose retry was declined)."""
        name = step.name
        attempts = len(history)
        err = StepFailedError(
            f'step "{name}" failed after {attempts} attempt(s): {describe(last)}',
            step_name=name,
            attempts=attempts,
            cause=last,
        )
        record = self.failed(started, clock, attempts, tuple(history), err, usage)
        yield from self.emit(
            "workflow.step.failed",
            step=name,
            error=err,
            attempts=attempts,
            duration_ms=record.duration_ms,
        )
        if step.on:
            yield from self.local(
                step, "failed", {"step": name, "error": err, "attempts": attempts}
            )
        return record

    def failed(
        self,
        started: datetime,
        clock: float,
        attempts: int,
        history: tuple[AttemptRecord, ...],
        err: AIError,
        usage: Usage = ZERO,
    ) -> StepRecord:
        return StepRecord(
            status=FAILED,
            started_at=started,
            duration_ms=elapsed_ms(clock),
            attempts=attempts,
            attempt_history=history,
            error=err,
            usage=usage,
        )

    # --- one attempt ----------------------------------------------------------------------

    def attempt(self, step: Step, ctx: WorkflowContext, usage: list[Usage]) -> Effects:
        """before -> run | agent -> output -> after, on this attempt's own copy of the state."""
        if step.before is not None:
            yield Call(step.before, (ctx,))
        result = None
        if step.run is not None:
            result = yield Call(step.run, (ctx,), True)
        elif step.agent is not None:
            result = yield from self.call_agent(step, ctx, usage)
        ctx.agent_result = result
        output = None
        if step.output is not None:
            output = yield from self.extract(step.output, ctx)
        if step.after is not None:
            yield Call(step.after, (ctx,))
        return result, output

    def call_agent(self, step: Step, ctx: WorkflowContext, usage: list[Usage]) -> Effects:
        # ai.step() gives every agent step an input; a hand-built Step without one fails this
        # attempt with the TypeError of calling None.
        make_input = cast("Callable[[WorkflowContext], Any]", step.input)
        spec = yield Call(make_input, (ctx,))
        if isinstance(spec, str):
            prompt, options = spec, {}
        elif isinstance(spec, dict) and "prompt" in spec:
            options = dict(spec)
            prompt = options.pop("prompt")
        else:
            raise WorkflowError(
                f'step "{step.name}": input() must return a prompt or {{"prompt": ...}}'
            )
        options.setdefault("cancel", self.cancel)
        if self.session_id is not None:
            options.setdefault("session_id", self.session_id)
        agent = step.agent
        result = yield CallEither(
            agent.execute, getattr(agent, "aexecute", None), (prompt,), options
        )
        usage[0] = usage[0] + Usage.coerce(getattr(result, "usage", None))
        error = getattr(result, "error", None)
        if error is not None:
            raise error
        return result

    def extract(self, output: Output, ctx: WorkflowContext) -> Effects:
        value = yield Call(output.extract, (ctx,))
        if output.schema is not None:
            value = yield Call(validate_schema, (output.schema, value))
        return value

    # --- parallel groups ------------------------------------------------------------------

    def execute_group(
        self, step: Step, base: dict[str, Any], started: datetime, clock: float
    ) -> Effects:
        """Children run concurrently from the same base; merged in declaration order."""
        children = cast("tuple[Step, ...]", step.parallel)  # execute_step checked it
        outcomes = yield Gather([self.execute_step(c, base, child=True) for c in children])
        records, deltas, first_error = collect_children(children, outcomes, base)
        merged = StepState.over(base)
        for child_name, delta in deltas:
            if step.merge_state is not None:
                yield Call(step.merge_state, (merged, delta, child_name))
            else:
                merged.update(delta)
        output = None
        if step.output is not None:
            output, first_error = yield from self.group_output(
                step, merged, records, first_error, started, clock
            )
        usage = sum((r.usage for r in records.values()), ZERO)
        duration = elapsed_ms(clock)
        record = StepRecord(
            status=FAILED if first_error else COMPLETED,
            started_at=started,
            duration_ms=duration,
            attempts=1,
            output=output,
            error=first_error,
            steps=records,
            usage=usage,
        )
        if first_error is not None:
            yield from self.emit(
                "workflow.step.failed",
                step=step.name,
                error=first_error,
                attempts=1,
                duration_ms=duration,
            )
            return record, base
        yield from self.emit(
            "workflow.step.completed",
            step=step.name,
            output=output,
            duration_ms=duration,
            attempts=1,
        )
        return record, merged

    def group_output(
        self,
        step: Step,
        merged: dict[str, Any],
        records: dict[str, StepRecord],
        first_error: AIError | None,
        started: datetime,
        clock: float,
    ) -> Effects:
        """Extract the group's output, its children's records visible under the group's name;
        returns ``(output, first error)``."""
        ctx = self.ctx.with_state(merged)
        ctx.steps = {
            **self.steps,
            step.name: StepRecord(
                status=FAILED if first_error else COMPLETED,
                started_at=started,
                duration_ms=elapsed_ms(clock),
                attempts=1,
                steps=records,
            ),
        }
        output = cast(Output, step.output)  # execute_group checked it
        try:
            return (yield from self.extract(output, ctx)), first_error
        except Exception as exc:
            if is_cancellation(exc):
                raise self.cancelled_error(exc) from exc
            return None, first_error or to_ai_error(exc)


def collect_children(
    children: tuple[Step, ...], outcomes: list[Any], base: dict[str, Any]
) -> tuple[dict[str, StepRecord], list[tuple[str, dict[str, Any]]], AIError | None]:
    """``(records, state deltas of the children that succeeded, first error)``; an outcome
    that is an exception (cancellation, a step-local handler error) is raised."""
    records: dict[str, StepRecord] = {}
    deltas: list[tuple[str, dict[str, Any]]] = []
    first_error: AIError | None = None
    for child, outcome in zip(children, outcomes, strict=True):
        if isinstance(outcome, BaseException):
            raise outcome
        record, state = outcome
        records[child.name] = record
        if record.status == FAILED:
            first_error = first_error or record.error
        else:
            deltas.append((child.name, changed_items(state, base)))
    return records, deltas, first_error
