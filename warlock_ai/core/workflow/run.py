"""The workflow's body on the run kernel: the step loop, routing and what each save holds.

One ``WorkflowRun`` is one execution (fresh or resumed). Snapshot writes: one when the run
starts, one after every top-level step settles (a parallel group once, atomically), and the
terminal one (merged into the last step's write when nothing happens in between).
"""

from __future__ import annotations

import logging
from collections.abc import Generator
from dataclasses import replace
from typing import TYPE_CHECKING, Any, cast

from ..errors import (
    AIError,
    MaxStepsExceededError,
    RoutingError,
    SnapshotSerializationError,
    WorkflowCancelledError,
    WorkflowError,
)
from ..runs.effects import Call
from ..runs.routing import parse_route
from ..runs.run import Run, describe, elapsed_ms
from ..runs.snapshots import CANCELLED, COMPLETED, FAILED, RUNNING, now
from ..runs.state import StateEncoding, StepState, own_items
from .results import WorkflowContext, WorkflowReport, WorkflowResult
from .snapshot import SKIPPED, Encoded, StepRecord, WorkflowSnapshot
from .step_execution import StepExecution, is_cancellation
from .steps import Step

if TYPE_CHECKING:
    from .definition import Workflow  # noqa: F401 (named in the string of WorkflowRun's base)

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


class WorkflowRun(StepExecution, Run["Workflow", WorkflowSnapshot, WorkflowResult]):
    """The step loop of one execution; running a step (attempts, retries, agent calls,
    parallel groups) is ``StepExecution``'s."""

    logger = logger
    cancelled_class = WorkflowCancelledError
    failure_class = WorkflowError

    def setup(self) -> None:
        resume_from = self.resume_from
        self.wf = self.definition
        self.steps: dict[str, StepRecord] = dict(resume_from.steps) if resume_from else {}
        self.ctx = WorkflowContext(
            input=self.input,
            state=self.state,
            context=self.context,
            steps=self.steps,
            run_id=self.run_id,
            started_at=self.started_at,
            cancel=self.cancel,
            session_id=self.session_id,
            workflow_name=self.wf.name,
        )
        self.state_json: StateEncoding | None = None
        self.pending_state_json: StateEncoding | None = None
        self.step_count = 0
        self.entries: dict[str, int] = {}
        self.last_goto: str | None = None
        #: The step a resume would start at: written as the snapshot's ``next``.
        self.resume_at: str | None = self.first_step()
        self.children: list[Any] = []

    def first_step(self) -> str | None:
        steps = self.wf.steps
        snap = self.resume_from
        if snap is None:
            return steps[0].name
        if snap.next is not None and snap.next in self.wf.steps_by_name:
            return snap.next
        for step in steps:
            record = self.steps.get(step.name)
            if record is None or record.status not in (COMPLETED, SKIPPED):
                return step.name
        return None

    def local(self, step: Step, event: str, payload: dict[str, Any]) -> Effects:
        """Step-local handlers are called directly; unlike events, their errors propagate."""
        handler = step.on.get(event) if step.on else None
        if handler is not None:
            yield Call(handler, (payload,))

    # --- the kernel's hooks ---------------------------------------------------------------

    def encode_start(self) -> None:
        super().encode_start()
        self.state_json = StateEncoding.of(self.state)

    def snapshot(self, status: str, error: AIError | None) -> WorkflowSnapshot:
        wf = self.wf
        snap = WorkflowSnapshot(
            run_id=self.run_id,
            workflow_name=wf.name,
            signature=wf.signature,
            version=wf.version,
            input=self.input,
            state=dict(own_items(self.state)),
            steps=dict(self.steps),
            next=None if status == COMPLETED else self.resume_at,
            status=status,
            started_at=self.started_at,
            saved_at=now(),
            usage=self.usage,
            error=error.to_dict() if error is not None else None,
            fingerprint=wf.fingerprint,
            attempts=self.run_attempts,
        )
        if self.input_json is not None and self.state_json is not None:
            snap.with_encoding(Encoded(self.input_json, wf.fingerprint_json, self.state_json))
        return snap

    def body(self) -> Effects:
        current = self.resume_at
        while current is not None:
            self.resume_at = current
            self.check_cancel()
            current = yield from self.advance(current)
        self.resume_at = None

    def output(self) -> Effects:
        if self.wf.output is None:
            return None
        return (yield from self.extract(self.wf.output, self.ctx.with_state(self.state)))

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
            state=dict(own_items(self.state)),
            children=self.children,
            cancelled_at=self.cancel.cancelled_at if status == CANCELLED else None,
        )
        return WorkflowResult(report=report, data=data, error=report.error, usage=self.usage)

    # --- one step -------------------------------------------------------------------------

    def advance(self, name: str) -> Effects:
        """Run one top-level step, checkpoint, route; returns the next step (None: the end)."""
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
        if self.writer is not None:
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
            self.resume_at, self.terminal_written = None, True
            yield from self.checkpoint(COMPLETED)
            return None
        self.resume_at = next_name
        yield from self.checkpoint(RUNNING)
        self.check_cancel()
        if kind == "goto":
            if target not in wf.steps_by_name:
                raise RoutingError(
                    f'step "{name}" routed to unknown step "{target}"',
                    step_name=name,
                    target_name=target,
                )
            self.last_goto = target
        return next_name

    def settle(self, name: str, record: StepRecord, state: dict[str, Any]) -> None:
        if state is not self.state:
            self.state = state
            if self.writer is not None:
                self.state_json = self.pending_state_json
            if isinstance(state, StepState):
                state.settled()
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
                # A run with a writer encoded its state at the start (encode_start).
                self.pending_state_json = cast(StateEncoding, self.state_json).updated(state)
            for child_name, child in (record.steps or {}).items():
                child.to_json(path=f"steps.{child_name}")
            record.to_json(path=f"steps.{step.name}")
        except SnapshotSerializationError as exc:
            exc.step_name = step.name
            self.pending_state_json = self.state_json
            failed = replace(record, status=FAILED, output=None, error=exc, steps=None, result=None)
            yield from self.emit(
                "workflow.step.failed",
                step=step.name,
                error=exc,
                attempts=record.attempts,
                duration_ms=record.duration_ms,
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
            raise cast(AIError, record.error)  # a failed record carries its error
        if kind == "goto" and target not in self.wf.steps_by_name:
            raise RoutingError(
                f'step "{name}" on_failure routed to unknown step "{target}"',
                step_name=name,
                target_name=target,
            )
        self.resume_at = target
        yield from self.checkpoint(RUNNING)
        self.check_cancel()
        if kind == "goto":
            self.last_goto = target
        return target

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
