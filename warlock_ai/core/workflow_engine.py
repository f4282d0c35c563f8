"""The workflow run loop, written once as a generator of effects (see ``effects``).

One ``WorkflowRun`` is one execution (fresh or resumed). Snapshot writes: one when the run
starts, one after every top-level step settles (a parallel group once, atomically), and the
terminal one (merged into the last step's write when nothing happens in between).
"""

from __future__ import annotations

import logging
from collections.abc import Generator, Mapping
from dataclasses import replace
from time import perf_counter
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from .cancel import CancelToken
from .effects import Call, Emit
from .errors import (
    AIError,
    MaxStepsExceededError,
    RoutingError,
    SnapshotSerializationError,
    WorkflowCancelledError,
    WorkflowError,
    to_ai_error,
)
from .events import normalise_handlers
from .results import WorkflowContext, WorkflowReport, WorkflowResult
from .routing import parse_route
from .run_writes import LeasedWrites
from .serialization import dumps
from .snapshots import (
    CANCELLED,
    COMPLETED,
    FAILED,
    RUNNING,
    Encoded,
    StepRecord,
    WorkflowSnapshot,
    now,
)
from .steps import Step
from .usage import ZERO, Usage
from .workflow_steps import StepExecution, describe, elapsed_ms, is_cancellation

if TYPE_CHECKING:
    from .workflow import Workflow

logger = logging.getLogger("warlock_ai.workflow")

WORKFLOW_EVENTS = frozenset(
    {
        "workflow.starting",
        "workflow.step.starting",
        "workflow.step.streaming",
        "workflow.step.completed",
        "workflow.step.skipped",
        "workflow.step.retrying",
        "workflow.step.failed",
        "workflow.loop.warning",
        "workflow.cancelled",
        "workflow.completed",
        "workflow.error",
    }
)

Effects = Generator[Any, Any, Any]


def _context(context: Any) -> dict[str, Any]:
    if context is None:
        return {}
    if not isinstance(context, Mapping):
        raise WorkflowError(f"context must be a mapping, got {type(context).__name__}")
    return dict(context)


class WorkflowRun(StepExecution, LeasedWrites):
    """The mutable side of one execution; :meth:`run` is the engine generator.

    Running a step (attempts, retries, agent calls, parallel groups) is ``StepExecution``'s.
    """

    error_event = "workflow.error"
    logger = logger

    def __init__(
        self,
        wf: Workflow,
        *,
        input: Any,
        run_id: str,
        context: Any,
        cancel: CancelToken | None,
        on: Any,
        session_id: str | None,
        store: Any,
        resume_from: WorkflowSnapshot | None = None,
    ) -> None:
        self.wf = wf
        self.input = input
        self.run_id = run_id
        self.cancel = cancel if cancel is not None else CancelToken()
        self.on = normalise_handlers(on, WORKFLOW_EVENTS)
        self.session_id = session_id
        self.store = store
        self.init_lease(store)
        self.resume_from = resume_from
        if resume_from is not None:
            self.state: dict[str, Any] = dict(resume_from.state)
            self.steps: dict[str, StepRecord] = dict(resume_from.steps)
            self.usage: Usage = resume_from.usage
            self.started_at = resume_from.started_at
        else:
            self.state, self.steps, self.usage, self.started_at = {}, {}, ZERO, now()
        self.clock = perf_counter()
        self.ctx = WorkflowContext(
            input=input,
            state=self.state,
            context=MappingProxyType(_context(context)),
            steps=self.steps,
            run_id=run_id,
            started_at=self.started_at,
            cancel=self.cancel,
            session_id=session_id,
            workflow_name=wf.name,
        )
        self.input_json: str | None = None
        self.state_json: str | None = None
        self.pending_state_json: str | None = None
        self.step_count = 0
        self.entries: dict[str, int] = {}
        self.last_goto: str | None = None
        self.resume_at: str | None = None
        self.children: list[Any] = []

    # --- events and persistence -----------------------------------------------------------

    def emit(self, event: str, **payload: Any) -> Effects:
        handlers = self.wf.emitter.handlers(event, self.on)
        if handlers:
            payload["event"] = event
            payload["run_id"] = payload["root_run_id"] = self.run_id
            yield Emit(handlers, payload)

    def local(self, step: Step, event: str, payload: dict[str, Any]) -> Effects:
        """Step-local handlers are called directly; unlike events, their errors propagate."""
        handler = step.on.get(event) if step.on else None
        if handler is not None:
            yield Call(handler, (payload,))

    def snapshot(
        self, status: str, next_name: str | None, error: AIError | None = None
    ) -> WorkflowSnapshot:
        wf = self.wf
        snap = WorkflowSnapshot(
            run_id=self.run_id,
            workflow_name=wf.name,
            signature=wf.signature,
            version=wf.version,
            input=self.input,
            state=self.state,
            steps=dict(self.steps),
            next=next_name,
            status=status,
            started_at=self.started_at,
            saved_at=now(),
            usage=self.usage,
            error=error.to_dict() if error is not None else None,
            fingerprint=wf.fingerprint,
        )
        if self.input_json is not None:
            encoded = Encoded(self.input_json, wf.fingerprint_json, self.state_json)
            object.__setattr__(snap, "encoded", encoded)
        claim = self.claim(status)
        if claim is not None:
            object.__setattr__(snap, "claim", claim)
        return snap

    def checkpoint(
        self, status: str, next_name: str | None, error: AIError | None = None
    ) -> Effects:
        """Write a snapshot (see ``LeasedWrites.write``); nothing without a store."""
        if self.store is not None:
            yield from self.write(self.snapshot(status, next_name, error), status)

    def check_cancel(self) -> None:
        if self.cancel.cancelled:
            raise self.cancelled_error()

    def cancelled_error(self, cause: BaseException | None = None) -> WorkflowCancelledError:
        token = self.cancel
        reason = token.reason_text if token.cancelled else (describe(cause) if cause else "")
        return WorkflowCancelledError(
            "workflow cancelled" + (f": {reason}" if reason else ""),
            cancelled_at=(token.cancelled_at or now()).isoformat(),
            reason=reason or None,
            cause=cause if isinstance(cause, AIError) else None,
        )

    # --- the run --------------------------------------------------------------------------

    def first_step(self) -> str | None:
        steps = self.wf.steps
        snap = self.resume_from
        if snap is None:
            return steps[0].name
        if snap.next is not None and snap.next in self.wf.steps_by_name:
            return snap.next
        for step in steps:
            record = self.steps.get(step.name)
            if record is None or record.status not in (COMPLETED, "skipped"):
                return step.name
        return None

    def run(self) -> Effects:
        current = self.first_step()
        not_json = None
        if self.store is not None:
            try:
                self.input_json = dumps(self.input, path="input")
                self.state_json = dumps(self.state, path="state")
            except SnapshotSerializationError as exc:
                self.store, not_json = None, exc  # nothing is written for a non-JSON input
        # The first write takes the run's lease: a run leased by a live worker fails fast
        # here (LeaseHeldError propagates out of execute/resume) before anything runs.
        yield from self.checkpoint(RUNNING, current)
        self.start_heartbeat()
        try:
            return (yield from self.run_held(current, not_json))
        finally:
            self.stop_heartbeat()

    def run_held(self, current: str | None, not_json: Any) -> Effects:
        """The run once its lease is held: steps, output, terminal write, events."""
        wf = self.wf
        status, error, data = COMPLETED, None, None
        terminal_written = False
        yield from self.emit("workflow.starting", workflow_name=wf.name, input=self.input)
        try:
            if not_json is not None:
                raise not_json
            while current is not None:
                self.resume_at = current
                self.check_cancel()
                current, terminal_written = yield from self.advance(current)
            self.resume_at = None
        except WorkflowCancelledError as exc:
            status, error = CANCELLED, exc
        except AIError as exc:
            status, error = FAILED, exc
        except Exception as exc:
            status = FAILED
            error = WorkflowError(f'workflow "{wf.name}" failed: {describe(exc)}', cause=exc)
        if status == COMPLETED and wf.output is not None:
            try:
                data = yield from self.extract(wf.output, self.ctx.with_state(self.state))
            except Exception as exc:
                status, error = FAILED, to_ai_error(exc, wrap_as=WorkflowError)
        if status == COMPLETED:
            self.resume_at = None
        if not terminal_written:
            yield from self.checkpoint(status, self.resume_at, error)
        result = self.result(status, error, data)
        if status == CANCELLED:
            yield from self.emit(
                "workflow.cancelled", cancelled_at=error.cancelled_at, reason=error.reason
            )
        elif status == FAILED:
            yield from self.emit("workflow.error", error=error, phase="run")
        yield from self.emit("workflow.completed", result=result)
        return result

    def result(self, status: str, error: AIError | None, data: Any) -> WorkflowResult:
        wf = self.wf
        report = WorkflowReport(
            run_id=self.run_id,
            root_run_id=self.run_id,
            name=wf.name,
            version=wf.version,
            session_id=self.session_id,
            status=status,
            error=error if status in (FAILED, CANCELLED) else None,
            started_at=self.started_at,
            ended_at=now(),
            duration_ms=elapsed_ms(self.clock),
            signature=wf.signature,
            usage=self.usage,
            steps=self.steps,
            state=self.state,
            children=self.children,
            cancelled_at=self.cancel.cancelled_at if status == CANCELLED else None,
        )
        return WorkflowResult(report=report, data=data, error=report.error, usage=self.usage)

    def advance(self, name: str) -> Effects:
        """Run one top-level step, checkpoint, route. Returns ``(next step, terminal written)``."""
        wf = self.wf
        self.step_count += 1
        if self.step_count > wf.max_steps:
            raise MaxStepsExceededError(
                f'workflow "{wf.name}" exceeded max_steps={wf.max_steps} (entering "{name}")',
                max_steps=wf.max_steps,
            )
        count = self.entries[name] = self.entries.get(name, 0) + 1
        if count == wf.loop_warn_after:
            yield from self.emit(
                "workflow.loop.warning", step=name, entered_count=count, last_goto=self.last_goto
            )
        step = wf.steps_by_name.get(name)
        if step is None:
            raise RoutingError(f'workflow "{wf.name}": unknown step "{name}"', target_name=name)
        record, state = yield from self.execute_step(step, self.state)
        if self.store is not None:
            record, state = yield from self.validate_json(step, record, state)
        self.settle(name, record, state)
        if record.status == FAILED:
            return (yield from self.after_failure(step, record))
        # A settled step is never the resume point: if its router fails, resume falls back to
        # the first declared step that has not completed.
        self.resume_at = None
        kind, target = yield from self.route(step, record)
        if kind == "end":
            next_name = None
        elif kind == "goto":
            next_name = target
        else:
            next_name = wf.next_declared.get(name)
        if next_name is None and wf.output is None:
            yield from self.checkpoint(COMPLETED, None)
            return None, True
        yield from self.checkpoint(RUNNING, next_name)
        self.resume_at = next_name
        self.check_cancel()
        if kind == "goto":
            if target not in wf.steps_by_name:
                raise RoutingError(
                    f'step "{name}" routed to unknown step "{target}"',
                    step_name=name,
                    target_name=target,
                )
            self.last_goto = target
        return next_name, False

    def settle(self, name: str, record: StepRecord, state: dict[str, Any]) -> None:
        if state is not self.state:
            self.state = state
            if self.store is not None:
                self.state_json = self.pending_state_json
        self.steps[name] = record
        if record.steps:
            self.steps.update(record.steps)
        if record.usage:
            self.usage = self.usage + record.usage
        report = getattr(record.result, "report", None)
        if report is not None:
            self.children.append(report)

    def validate_json(self, step: Step, record: StepRecord, state: dict[str, Any]) -> Effects:
        """Encode the new state and the record once; a non-JSON value fails the step here."""
        self.pending_state_json = self.state_json
        try:
            if state is not self.state:
                self.pending_state_json = dumps(state, path="state")
            for child_name, child in (record.steps or {}).items():
                child.to_json(path=f"steps.{child_name}")
            record.to_json(path=f"steps.{step.name}")
        except SnapshotSerializationError as exc:
            exc.step_name = step.name
            self.pending_state_json = self.state_json
            failed = replace(record, status=FAILED, output=None, error=exc, steps=None, result=None)
            yield from self.emit(
                "workflow.step.failed", step=step.name, error=exc, attempts=record.attempts
            )
            return failed, self.state
        return record, state

    def after_failure(self, step: Step, record: StepRecord) -> Effects:
        name = step.name
        kind, target = None, None
        if step.on_failure is not None:
            ctx = self.ctx.with_state(self.state, record.result)
            try:
                decision = yield Call(step.on_failure, (ctx, record.error))
            except Exception as exc:
                if is_cancellation(exc):
                    raise self.cancelled_error(exc) from exc
                raise RoutingError(
                    f'step "{name}" on_failure raised: {describe(exc)}', step_name=name, cause=exc
                ) from exc
            kind, target = parse_route(decision)
        if kind is None:
            # Halt: the terminal snapshot (status failed, next = this step) follows at once.
            self.resume_at = name
            raise record.error
        if kind == "goto" and target not in self.wf.steps_by_name:
            raise RoutingError(
                f'step "{name}" on_failure routed to unknown step "{target}"',
                step_name=name,
                target_name=target,
            )
        yield from self.checkpoint(RUNNING, target)
        self.resume_at = target
        self.check_cancel()
        if kind == "goto":
            self.last_goto = target
        return target, False

    def route(self, step: Step, record: StepRecord) -> Effects:
        ctx = None
        kind, target = None, None
        if step.next_step is not None:
            ctx = self.ctx.with_state(self.state, record.result)
            kind, target = parse_route((yield from self.call_router(step, step.next_step, (ctx,))))
        if kind is None and self.wf.next_step is not None:
            ctx = ctx or self.ctx.with_state(self.state, record.result)
            decision = yield from self.call_router(step, self.wf.next_step, (step.name, ctx))
            kind, target = parse_route(decision)
        return kind, target

    def call_router(self, step: Step, fn: Any, args: tuple[Any, ...]) -> Effects:
        try:
            return (yield Call(fn, args))
        except Exception as exc:
            if is_cancellation(exc):
                raise self.cancelled_error(exc) from exc
            raise RoutingError(
                f'step "{step.name}" next_step raised: {describe(exc)}',
                step_name=step.name,
                cause=exc,
            ) from exc
