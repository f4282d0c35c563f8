"""The supervisor's body on the run kernel: the iteration loop and what each save holds.

Snapshot writes: one when the run starts (it takes the run's lease), one after every settled
iteration (the terminal END iteration included), and the final one with the run's status.
A crash inside an iteration loses only that iteration: resume starts it again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator
from time import perf_counter
from typing import TYPE_CHECKING, Any, ClassVar

from ..agents.schema import validate_schema
from ..errors import (
    AIError,
    MaxIterationsError,
    SnapshotSerializationError,
    SupervisorCancelledError,
    SupervisorFailedError,
)
from ..runs.effects import Call, Gather
from ..runs.routing import END
from ..runs.run import Run, elapsed_ms
from ..runs.serialization import dumps
from ..runs.snapshots import CANCELLED, COMPLETED, MAX_ITERATIONS, RUNNING, iso, now
from ..runs.usage import Usage
from .decide import Deciding
from .dispatch import Dispatching
from .results import SupervisorContext, SupervisorReport, SupervisorResult
from .snapshot import EncodedRun, SupervisorSnapshot

if TYPE_CHECKING:
    from .definition import Supervisor  # noqa: F401 (named in the string of SupervisorRun's base)

logger = logging.getLogger("warlock_ai.supervisor")

Effects = Generator[Any, Any, Any]

SUPERVISOR_EVENTS = frozenset(
    {
        "supervisor.starting",
        "supervisor.iteration.starting",
        "supervisor.router.deciding",
        "supervisor.router.decided",
        "supervisor.agent.starting",
        "supervisor.agent.completed",
        "supervisor.agent.failed",
        "supervisor.evaluate.verdict",
        "supervisor.iteration.completed",
        "supervisor.state.unsafe_key",
        "supervisor.cancelled",
        "supervisor.error",
        "supervisor.completed",
    }
)

#: ``terminated_by`` of a run that did not end by a decision.
_TERMINATED_BY = {CANCELLED: "cancelled", MAX_ITERATIONS: "max-iterations"}


class SupervisorRun(Deciding, Dispatching, Run["Supervisor", SupervisorSnapshot, SupervisorResult]):
    """The iteration loop of one execution; deciding and dispatching are its mixins'."""

    logger = logger
    cancelled_class: ClassVar[type[AIError]] = SupervisorCancelledError
    failure_class: ClassVar[type[AIError]] = SupervisorFailedError

    def setup(self) -> None:
        resume_from = self.resume_from
        self.sup = self.definition
        self.snapshots: list[dict[str, Any]] = list(resume_from.snapshots) if resume_from else []
        last = self.snapshots[-1] if self.snapshots else None
        self.carried: dict[str, Any] | None = (last.get("carried") if last else None) or None
        self.encoded = [dumps(s) for s in self.snapshots]
        #: What ended the run by a decision ("route", "router", "evaluate").
        self.stop: str | None = None

    def fresh_state(self) -> dict[str, Any]:
        return dict(self.definition.initial_state)

    # --- middleware -----------------------------------------------------------------------

    def _pipeline_ctx(self) -> Any:
        from ..agents.middleware import PipelineContext

        return PipelineContext(
            level="supervisor",
            agent={"name": self.sup.name, "is_anonymous": False},
            input=self.input,
            options={"run_id": self.run_id, "session_id": self.session_id},
        )

    def with_middleware(self, inner: Callable[[], Any]) -> Any:
        if not self.sup.middleware:
            return inner()
        from ..agents.middleware import run_pipeline

        return run_pipeline(self.sup.middleware, "supervisor", self._pipeline_ctx(), inner)

    async def awith_middleware(self, inner: Callable[[], Any]) -> Any:
        if not self.sup.middleware:
            return await inner()
        from ..agents.middleware import arun_pipeline

        return await arun_pipeline(self.sup.middleware, "supervisor", self._pipeline_ctx(), inner)

    # --- the kernel's hooks ---------------------------------------------------------------

    @property
    def iteration(self) -> int:
        return len(self.snapshots)

    def snapshot(self, status: str, error: AIError | None) -> SupervisorSnapshot:
        sup = self.sup
        snap = sup.snapshot_type(
            run_id=self.run_id,
            supervisor_name=sup.name,
            signature=sup.signature,
            version=sup.version,
            input=self.input,
            iteration=len(self.snapshots) - 1,
            snapshots=list(self.snapshots),
            status=status,
            started_at=self.started_at,
            saved_at=now(),
            state=self.state,
            usage=self.usage,
            error=error.to_dict() if error is not None else None,
            fingerprint=sup.fingerprint,
            attempts=self.run_attempts,
        )
        if self.input_json is not None:
            snap.with_encoding(
                EncodedRun(self.input_json, sup.fingerprint_json, list(self.encoded))
            )
        return snap

    def ctx(self, **extra: Any) -> SupervisorContext:
        return SupervisorContext(
            input=self.input,
            state=self.state,
            iteration=self.iteration,
            snapshots=self.snapshots,
            context=self.context,
            run_id=self.run_id,
            supervisor_name=self.sup.name,
            cancel=self.cancel,
            session_id=self.session_id,
            history=self.agent_history,
            **extra,
        )

    def body(self) -> Effects:
        sup = self.sup
        while self.iteration < sup.max_iterations:
            self.check_cancel()
            self.stop = yield from self.run_iteration()
            if self.stop is not None:
                return
        raise MaxIterationsError(
            f'supervisor "{sup.name}" reached max_iterations={sup.max_iterations} without ending',
            max_iterations=sup.max_iterations,
        )

    def failure(self, exc: Exception) -> tuple[str, AIError]:
        if isinstance(exc, MaxIterationsError):
            return MAX_ITERATIONS, exc
        return super().failure(exc)

    def output(self) -> Effects:
        if self.sup.output is None:
            return self.state
        return (yield Call(validate_schema, (self.sup.output, self.state)))

    def stored_output(self) -> Effects:
        """A completed run's stored state, as it was returned (``output`` is not run again)."""
        return self.state
        yield  # a generator like every other hook

    def result(self, status: str, error: AIError | None, data: Any) -> SupervisorResult:
        sup = self.sup
        terminated_by = self.stop if status == COMPLETED else _TERMINATED_BY.get(status, "error")
        report = SupervisorReport(
            run_id=self.run_id,
            name=sup.name,
            status=status,
            started_at=self.started_at,
            ended_at=now(),
            duration_ms=elapsed_ms(self.clock),
            signature=sup.signature,
            terminated_by=terminated_by,
            version=sup.version,
            session_id=self.session_id,
            error=error if status != COMPLETED else None,
            usage=self.usage,
            snapshots=self.snapshots,
            state=self.state,
            cancelled_at=self.cancel.cancelled_at if status == CANCELLED else None,
        )
        return SupervisorResult(report=report, data=data, error=report.error, usage=self.usage)

    # --- one iteration --------------------------------------------------------------------

    def run_iteration(self) -> Effects:
        """Decide, dispatch, merge, evaluate, snapshot; returns what ends the run, if it ends."""
        index, started, clock = self.iteration, now(), perf_counter()
        # What the stored run holds: put back if this iteration cannot be stored, so the
        # terminal write records the failure over the last settled state.
        settled = dict(self.state) if self.writer is not None else self.state
        yield from self.emit("supervisor.iteration.starting", iteration=index)
        keys, decision, usage = yield from self.decide(index)
        branches: dict[str, dict[str, Any]] = {}
        dropped: list[str] = []
        if keys is not END:
            self.check_cancel()
            outcomes = yield Gather([self.dispatch(key, index) for key in keys])
            for key, outcome in zip(keys, outcomes, strict=True):
                if isinstance(outcome, BaseException):
                    raise outcome
                branches[key] = outcome
                usage = usage + Usage.from_dict(outcome.get("usage"))
            dropped = yield from self.merge(keys, branches)
        verdict = (yield from self.judge(index, branches)) if keys is not END else None
        stop = decision["source"] if keys is END else None  # "route" or "router"
        carried = None
        if stop is None:
            stop, carried = yield from self.carry(verdict, branches)
        self.usage = self.usage + usage
        record = {
            "iteration": index,
            "decision": decision,
            "result": branches,
            "evaluate_verdict": verdict,
            "carried": carried,
            "state": dict(self.state),
            "dropped_keys": dropped or None,
            "started_at": iso(started),
            "ended_at": iso(now()),
            "duration_ms": elapsed_ms(clock),
            "usage": usage.to_dict(),
        }
        if self.writer is not None:  # encoded once, reused by every later save
            try:
                self.encoded.append(dumps(record, path=f"snapshots.{index}"))
            except SnapshotSerializationError:
                self.state = settled
                raise
        self.snapshots.append(record)
        self.carried = carried
        yield from self.emit("supervisor.iteration.completed", iteration=index, snapshot=record)
        yield from self.checkpoint(RUNNING)
        return stop
