"""The supervisor's iteration loop, written once as a generator of effects (see ``effects``),
so ``execute`` and ``aexecute`` share every line.

Snapshot writes: one when the run starts (it takes the run's lease), one after every settled
iteration (the terminal END iteration included), and the final one with the run's status.
A crash inside an iteration loses only that iteration: resume starts it again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator
from time import perf_counter
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from .cancel import CancelToken
from .effects import Call, Emit, Gather
from .errors import (
    AIError,
    LeaseHeldError,
    LeaseLostError,
    MaxIterationsError,
    SnapshotSerializationError,
    SupervisorCancelledError,
    SupervisorFailedError,
    to_ai_error,
)
from .events import normalise_handlers
from .routing import END
from .run_writes import LeasedWrites
from .schema import validate_schema
from .serialization import dumps
from .snapshots import CANCELLED, COMPLETED, FAILED, MAX_ITERATIONS, RUNNING, iso, now
from .supervisor_decide import ROUTER_SCHEMA, Deciding
from .supervisor_dispatch import UNSAFE_KEYS, Dispatching, is_unsafe_key
from .supervisor_results import SupervisorContext, SupervisorReport, SupervisorResult
from .supervisor_snapshots import EncodedRun, SupervisorSnapshot
from .usage import ZERO, Usage

__all__ = [
    "ROUTER_SCHEMA",
    "SUPERVISOR_EVENTS",
    "UNSAFE_KEYS",
    "SupervisorContext",
    "SupervisorReport",
    "SupervisorResult",
    "SupervisorRun",
    "is_unsafe_key",
]

if TYPE_CHECKING:
    from .supervisor import Supervisor

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


def _ms(start: float) -> float:
    return round((perf_counter() - start) * 1000.0, 3)


class _Stop(Exception):
    """The run ends normally (END, satisfied, an intent's next END)."""

    def __init__(self, terminated_by: str) -> None:
        self.terminated_by = terminated_by


class SupervisorRun(Deciding, Dispatching, LeasedWrites):
    """The mutable side of one execution; :meth:`run` is the engine generator."""

    error_event = "supervisor.error"
    logger = logger

    def __init__(
        self,
        sup: Supervisor,
        *,
        input: Any,
        run_id: str,
        context: Any,
        cancel: CancelToken | None,
        on: Any,
        session_id: str | None,
        store: Any,
        resume_from: SupervisorSnapshot | None = None,
    ) -> None:
        self.sup = sup
        self.input = input
        self.run_id = run_id
        self.context = MappingProxyType(dict(context or {}))
        self.cancel = cancel if cancel is not None else CancelToken()
        self.on = normalise_handlers(on, SUPERVISOR_EVENTS)
        self.session_id = session_id
        self.store = store
        self.init_lease(store)
        self.resume_from = resume_from
        self.clock = perf_counter()
        self.carried: dict[str, Any] | None = None
        if resume_from is not None:
            self.snapshots = list(resume_from.snapshots)
            self.state = dict(resume_from.state)
            self.usage = resume_from.usage
            self.started_at = resume_from.started_at
            self.carried = (self.snapshots[-1].get("carried") if self.snapshots else None) or None
        else:
            self.snapshots, self.state = [], dict(sup.initial_state)
            self.usage, self.started_at = ZERO, now()
        self.encoded = [dumps(s) for s in self.snapshots]
        self.input_json: str | None = None

    # --- middleware -----------------------------------------------------------------------

    def _pipeline_ctx(self) -> Any:
        from .middleware import PipelineContext

        return PipelineContext(
            level="supervisor",
            agent={"name": self.sup.name, "is_anonymous": False},
            input=self.input,
            options={"run_id": self.run_id, "session_id": self.session_id},
        )

    def with_middleware(self, inner: Callable[[], Any]) -> Any:
        if not self.sup.middleware:
            return inner()
        from .middleware import run_pipeline

        return run_pipeline(self.sup.middleware, "supervisor", self._pipeline_ctx(), inner)

    async def awith_middleware(self, inner: Callable[[], Any]) -> Any:
        if not self.sup.middleware:
            return await inner()
        from .middleware import arun_pipeline

        return await arun_pipeline(self.sup.middleware, "supervisor", self._pipeline_ctx(), inner)

    # --- events and persistence -----------------------------------------------------------

    def emit(self, event: str, **payload: Any) -> Effects:
        handlers = self.sup.emitter.handlers(event, self.on)
        if handlers:
            payload["event"] = event
            payload["run_id"] = payload["root_run_id"] = self.run_id
            yield Emit(handlers, payload)

    @property
    def iteration(self) -> int:
        return len(self.snapshots)

    def snapshot(self, status: str, error: AIError | None = None) -> SupervisorSnapshot:
        sup = self.sup
        snap = SupervisorSnapshot(
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
        )
        if self.input_json is not None:
            encoded = EncodedRun(self.input_json, self.sup.fingerprint_json, list(self.encoded))
            object.__setattr__(snap, "encoded", encoded)
        claim = self.claim(status)
        if claim is not None:
            object.__setattr__(snap, "claim", claim)
        return snap

    def checkpoint(self, status: str, error: AIError | None = None) -> Effects:
        """Write a snapshot (see ``LeasedWrites.write``); nothing without a store."""
        if self.store is not None:
            yield from self.write(self.snapshot(status, error), status)

    def cancelled_error(self) -> SupervisorCancelledError:
        token = self.cancel
        reason = token.reason_text
        return SupervisorCancelledError(
            "supervisor cancelled" + (f": {reason}" if reason else ""),
            cancelled_at=(token.cancelled_at or now()).isoformat(),
            reason=reason or None,
        )

    def check_cancel(self) -> None:
        if self.cancel.cancelled:
            raise self.cancelled_error()

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
            **extra,
        )

    # --- the run --------------------------------------------------------------------------

    def run(self) -> Effects:
        status, error = COMPLETED, None
        try:
            self.input_json = dumps(self.input, path="input")
        except SnapshotSerializationError as exc:
            self.store, error, status = None, exc, FAILED
        yield from self.checkpoint(RUNNING)  # takes the lease: a held run fails fast here
        self.start_heartbeat()
        try:
            return (yield from self.run_held(error, status))
        finally:
            self.stop_heartbeat()

    def run_held(self, error: Any, status: str) -> Effects:
        """The run once its lease is held: iterations, output, final write, events."""
        sup, terminated_by = self.sup, None
        yield from self.emit("supervisor.starting", supervisor_name=sup.name, input=self.input)
        try:
            if error is not None:
                raise error
            while self.iteration < sup.max_iterations:
                self.check_cancel()
                yield from self.run_iteration()
            raise MaxIterationsError(
                f'supervisor "{sup.name}" reached max_iterations={sup.max_iterations} '
                "without ending",
                max_iterations=sup.max_iterations,
            )
        except _Stop as stop:
            terminated_by = stop.terminated_by
        except SupervisorCancelledError as exc:
            status, error, terminated_by = CANCELLED, exc, "cancelled"
        except MaxIterationsError as exc:
            status, error, terminated_by = MAX_ITERATIONS, exc, "max-iterations"
        except (LeaseHeldError, LeaseLostError):
            raise
        except AIError as exc:
            status, error, terminated_by = FAILED, exc, "error"
        except Exception as exc:
            error = SupervisorFailedError(f'supervisor "{sup.name}" failed: {exc}', cause=exc)
            status, terminated_by = FAILED, "error"
        data = self.state
        if status == COMPLETED and sup.output is not None:
            try:
                data = yield Call(validate_schema, (sup.output, self.state))
            except Exception as exc:
                error = to_ai_error(exc, wrap_as=SupervisorFailedError)
                status, terminated_by = FAILED, "error"
        yield from self.checkpoint(status, error)
        result = self.result(status, error, terminated_by, data)
        if status == CANCELLED:
            yield from self.emit(
                "supervisor.cancelled", cancelled_at=error.cancelled_at, reason=error.reason
            )
        elif error is not None:
            yield from self.emit("supervisor.error", error=error, phase="run")
        yield from self.emit("supervisor.completed", result=result)
        return result

    def result(
        self, status: str, error: Any, terminated_by: str | None, data: Any
    ) -> SupervisorResult:
        sup = self.sup
        report = SupervisorReport(
            run_id=self.run_id,
            name=sup.name,
            status=status,
            started_at=self.started_at,
            ended_at=now(),
            duration_ms=_ms(self.clock),
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
        return SupervisorResult(
            report=report,
            data=data if status == COMPLETED else None,
            error=report.error,
            usage=self.usage,
        )

    def run_iteration(self) -> Effects:
        """Decide, dispatch, merge, evaluate, snapshot; raises ``_Stop`` when the run ends."""
        index, started, clock = self.iteration, now(), perf_counter()
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
            "duration_ms": _ms(clock),
            "usage": usage.to_dict(),
        }
        if self.store is not None:  # encoded once, reused by every later save
            self.encoded.append(dumps(record, path=f"snapshots.{index}"))
        self.snapshots.append(record)
        self.carried = carried
        yield from self.emit("supervisor.iteration.completed", iteration=index, snapshot=record)
        yield from self.checkpoint(RUNNING)
        if stop is not None:
            raise _Stop(stop)
