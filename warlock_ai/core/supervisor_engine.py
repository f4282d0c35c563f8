"""The supervisor's iteration loop, written once as a generator of effects (see ``effects``),
so ``execute`` and ``aexecute`` share every line.

Snapshot writes: one when the run starts (it takes the run's lease), one after every settled
iteration (the terminal END iteration included), and the final one with the run's status.
A crash inside an iteration loses only that iteration: resume starts it again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from time import perf_counter
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from .cancel import CancelRequest, CancelToken
from .effects import Call, CallEither, Emit, Gather, Save
from .errors import (
    AIError,
    LeaseHeldError,
    LeaseLostError,
    MaxIterationsError,
    SnapshotSerializationError,
    StoreError,
    SupervisorCancelledError,
    SupervisorFailedError,
    SupervisorRoutingError,
    to_ai_error,
)
from .events import normalise_handlers
from .intents import AGENT, WORKFLOW, Intent
from .leases import ACQUIRE, RELEASE, RENEW, LeaseClaim, new_owner_id
from .routing import END
from .schema import validate_schema
from .serialization import dumps
from .snapshots import CANCELLED, COMPLETED, FAILED, MAX_ITERATIONS, RUNNING, iso, now
from .supervisor_snapshots import EncodedRun, SupervisorSnapshot
from .usage import ZERO, Usage

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
#: Keys never merged into the state: the original's prototype keys, and Python's dunders.
UNSAFE_KEYS = frozenset({"__proto__", "constructor", "prototype"})
ROUTER_SCHEMA = {
    "type": "object",
    "properties": {
        "next": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
        "reasoning": {"type": "string"},
    },
    "required": ["next"],
}


def _ms(start: float) -> float:
    return round((perf_counter() - start) * 1000.0, 3)


def is_unsafe_key(key: Any) -> bool:
    return (
        not isinstance(key, str)
        or key in UNSAFE_KEYS
        or (key.startswith("__") and key.endswith("__"))
    )


@dataclass
class SupervisorContext:
    """What ``route``, ``evaluate``, ``next`` and callback intents receive.

    ``state`` is the live state (callbacks return a dict to merge instead of mutating it);
    ``results`` holds this iteration's branches (for ``evaluate`` and ``next``); callbacks
    call agents and workflows through ``run`` / ``arun`` so their usage is counted.
    """

    input: Any
    state: dict[str, Any]
    iteration: int
    snapshots: list[dict[str, Any]]
    context: Mapping[str, Any]
    run_id: str
    supervisor_name: str
    cancel: CancelToken
    session_id: str | None = None
    intent: str | None = None
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    usage: Usage = ZERO

    @property
    def last(self) -> dict[str, Any] | None:
        return self.snapshots[-1] if self.snapshots else None

    def _options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"cancel": self.cancel}
        if self.session_id is not None:
            options["session_id"] = self.session_id
        return options

    def run(self, unit: Any, input: Any = None, **options: Any) -> Any:
        """Call an agent (``input`` is the prompt) or a workflow; its usage is counted."""
        result = unit.execute(input, **{**self._options(), **options})
        self.usage = self.usage + Usage.coerce(getattr(result, "usage", None))
        return result

    async def arun(self, unit: Any, input: Any = None, **options: Any) -> Any:
        call = getattr(unit, "aexecute", None)
        if call is None:
            import asyncio

            return await asyncio.to_thread(self.run, unit, input, **options)
        result = await call(input, **{**self._options(), **options})
        self.usage = self.usage + Usage.coerce(getattr(result, "usage", None))
        return result


@dataclass
class SupervisorReport:
    run_id: str
    name: str
    status: str
    started_at: datetime
    ended_at: datetime
    duration_ms: float
    signature: str
    terminated_by: str | None = None
    version: str | None = None
    session_id: str | None = None
    error: AIError | None = None
    usage: Usage = ZERO
    snapshots: list[dict[str, Any]] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)
    cancelled_at: datetime | None = None
    type: str = "supervisor"

    @property
    def iterations(self) -> int:
        return len(self.snapshots)

    @property
    def supervisor_name(self) -> str:
        return self.name

    @staticmethod
    def stored_result(
        sup: Supervisor, snap: SupervisorSnapshot, session_id: Any
    ) -> SupervisorResult:
        """A completed run resumes to its stored result and runs nothing."""
        duration = (snap.saved_at - snap.started_at).total_seconds() * 1000.0
        report = SupervisorReport(
            run_id=snap.run_id,
            name=sup.name,
            status=COMPLETED,
            started_at=snap.started_at,
            ended_at=snap.saved_at,
            duration_ms=round(duration, 3),
            signature=snap.signature,
            version=sup.version,
            session_id=session_id,
            usage=snap.usage,
            snapshots=list(snap.snapshots),
            state=dict(snap.state),
        )
        return SupervisorResult(report=report, data=report.state, usage=snap.usage)


@dataclass
class SupervisorResult:
    """``execute`` never raises for a failing run: the error comes back in ``error``."""

    report: SupervisorReport
    data: Any = None
    error: AIError | None = None
    usage: Usage = ZERO
    type: str = "supervisor"

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def status(self) -> str:
        return self.report.status

    @property
    def run_id(self) -> str:
        return self.report.run_id


class _Stop(Exception):
    """The run ends normally (END, satisfied, an intent's next END)."""

    def __init__(self, terminated_by: str) -> None:
        self.terminated_by = terminated_by


class SupervisorRun:
    """The mutable side of one execution; :meth:`run` is the engine generator."""

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
        self.owner = new_owner_id() if getattr(store, "supports_leases", False) else None
        self.lease_held = False
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
        self.writes = 0

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
        if self.owner is not None:
            mode = ACQUIRE if not self.lease_held else RENEW if status == RUNNING else RELEASE
            expected = None
            if mode == ACQUIRE and self.resume_from is not None and not self.writes:
                expected = self.resume_from.saved_at
            object.__setattr__(snap, "claim", LeaseClaim(self.owner, mode, expected))
        return snap

    def checkpoint(self, status: str, error: AIError | None = None) -> Effects:
        """Write a snapshot; a failed write emits ``supervisor.error`` and never aborts the run
        (a lease held elsewhere, or lost to a takeover, stops this execution)."""
        if self.store is None:
            return
        failure = yield Save(self.store, self.snapshot(status, error))
        self.writes += 1
        if not isinstance(failure, BaseException):
            if self.owner is not None:
                self.lease_held = status == RUNNING
            if isinstance(failure, CancelRequest) and status == RUNNING:
                self.cancel.cancel(failure.reason or "cancel requested by an operator")
            return
        if isinstance(failure, (LeaseHeldError, LeaseLostError)):
            self.store = None
            raise failure
        err = to_ai_error(failure, wrap_as=StoreError)
        logger.warning(
            "snapshot write failed for run %r (status=%s): %s", self.run_id, status, err.message
        )
        yield from self.emit("supervisor.error", error=err, phase="persist")

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
        sup = self.sup
        status, error, terminated_by = COMPLETED, None, None
        try:
            self.input_json = dumps(self.input, path="input")
        except SnapshotSerializationError as exc:
            self.store, error, status = None, exc, FAILED
        yield from self.checkpoint(RUNNING)  # takes the lease: a held run fails fast here
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
        self.encoded.append(dumps(record, path=f"snapshots.{index}"))
        self.snapshots.append(record)
        self.carried = carried
        yield from self.emit("supervisor.iteration.completed", iteration=index, snapshot=record)
        yield from self.checkpoint(RUNNING)
        if stop is not None:
            raise _Stop(stop)

    # --- deciding ---------------------------------------------------------------------------

    def decide(self, index: int) -> Effects:
        """Returns ``(END or [keys], decision record, usage of the router)``."""
        sup, clock, usage, reasoning = self.sup, perf_counter(), ZERO, None
        carried, fresh = self.carried or {}, self.resume_from is None
        if carried.get("reassign_to"):
            source, raw = "evaluate", carried["reassign_to"]
        elif carried.get("next"):
            source, raw = "next", carried["next"]
        elif index == 0 and fresh and sup.initial_agent is not None:
            source, raw = "initial_agent", sup.initial_agent
        elif sup.route is not None:
            source = "route"
            try:
                raw = yield Call(sup.route, (self.ctx(),), True)
            except AIError:
                raise
            except Exception as exc:
                raise SupervisorFailedError(
                    f'supervisor "{sup.name}": route() raised: {exc}', cause=exc
                ) from exc
        else:
            source = "router"
            raw, reasoning, usage = yield from self.ask_router(index)
        self.check_cancel()
        keys = self.normalise(raw)
        decision = {
            "source": source,
            "next": raw,
            "reasoning": reasoning,
            "duration_ms": _ms(clock),
        }
        yield from self.emit(
            "supervisor.router.decided",
            iteration=index,
            next=raw,
            reasoning=reasoning,
            duration_ms=decision["duration_ms"],
        )
        return keys, decision, usage

    def ask_router(self, index: int) -> Effects:
        router = self.sup.router
        yield from self.emit("supervisor.router.deciding", iteration=index)
        options: dict[str, Any] = {"output": ROUTER_SCHEMA, "cancel": self.cancel}
        if self.session_id is not None:
            options["session_id"] = self.session_id
        result = yield CallEither(
            router.execute, getattr(router, "aexecute", None), (self.router_prompt(index),), options
        )
        usage = Usage.coerce(getattr(result, "usage", None))
        error = getattr(result, "error", None)
        if error is not None:
            raise error
        data = getattr(result, "data", None)
        if not isinstance(data, Mapping) or "next" not in data:
            raise SupervisorRoutingError(
                f'supervisor "{self.sup.name}": the router returned no "next" ({data!r})',
                returned=data
                if isinstance(data, (str, int, float, bool, type(None)))
                else repr(data),
                available_keys=list(self.sup.intents),
            )
        return data["next"], data.get("reasoning"), usage

    def router_prompt(self, index: int) -> str:
        sup = self.sup
        lines = [f'You route the work of the supervisor "{sup.name}".']
        if sup.goal:
            lines.append(f"Goal: {sup.goal}")
        lines.append("Intents:")
        lines += [f"- {key}: {intent.description}" for key, intent in sup.intents.items()]
        lines.append(f"Input: {_text(self.input)}")
        lines.append(f"State: {dumps(self.state)}")
        if self.snapshots:
            last = self.snapshots[-1]
            done = ", ".join(last.get("result") or {}) or "nothing"
            lines.append(f"Iteration {index}; the last iteration ran: {done}.")
        lines.append(
            'Answer with JSON {"next": <an intent key, a list of keys to run in parallel, or '
            f'"{END}" when the work is done>, "reasoning": <one sentence>}}.'
        )
        return "\n".join(lines)

    def normalise(self, raw: Any) -> Any:
        """END, or a de-duplicated list of known intent keys no wider than ``max_fan_out``."""
        sup = self.sup
        available = list(sup.intents)
        if raw == END:
            return END
        items = [raw] if isinstance(raw, str) else raw
        problem = None
        if not isinstance(items, list) or not items:
            problem = "an intent key, a non-empty list of keys, or END"
        elif any(not isinstance(k, str) for k in items):
            problem = "intent keys (strings)"
        elif any(k not in sup.intents for k in items):
            unknown = [k for k in items if k not in sup.intents]
            problem = f"known intent keys (unknown: {', '.join(unknown)})"
        else:
            items = list(dict.fromkeys(items))
            if len(items) > sup.max_fan_out:
                problem = f"at most max_fan_out={sup.max_fan_out} intents (got {len(items)})"
        if problem is not None:
            raise SupervisorRoutingError(
                f'supervisor "{sup.name}": route returned {raw!r}; expected {problem}',
                returned=raw if _plain(raw) else repr(raw),
                available_keys=available,
            )
        return items

    # --- dispatching ------------------------------------------------------------------------

    def dispatch(self, key: str, index: int) -> Effects:
        """Run one intent; its failure is recorded on its branch, never raised."""
        intent = self.sup.intents[key]
        started, clock = now(), perf_counter()
        ctx = self.ctx(intent=key)
        usage, output, error, prompt = ZERO, None, None, None
        try:
            prompt = yield from self.branch_input(intent, ctx)
            yield from self.emit(
                "supervisor.agent.starting", iteration=index, intent=key, input=prompt
            )
            output, usage, error = yield from self.call_unit(intent, prompt, ctx)
        except Exception as exc:
            error = to_ai_error(exc, wrap_as=SupervisorFailedError)
        branch = {
            "intent": key,
            "input": prompt,
            "output": output,
            "usage": usage.to_dict(),
            "started_at": iso(started),
            "ended_at": iso(now()),
            "duration_ms": _ms(clock),
            "error": error.to_dict() if error is not None else None,
        }
        if error is not None:
            yield from self.emit(
                "supervisor.agent.failed", iteration=index, intent=key, error=error
            )
        else:
            yield from self.emit(
                "supervisor.agent.completed",
                iteration=index,
                intent=key,
                output=output,
                usage=usage,
                duration_ms=branch["duration_ms"],
            )
        return branch

    def branch_input(self, intent: Intent, ctx: SupervisorContext) -> Effects:
        if intent.input is not None:
            return (yield Call(intent.input, (ctx,)))
        if intent.kind == AGENT:
            return _text(self.input)
        return self.input

    def call_unit(self, intent: Intent, prompt: Any, ctx: SupervisorContext) -> Effects:
        """Returns ``(output, usage, error)`` of one agent, workflow or callback."""
        unit = intent.unit
        if intent.kind in (AGENT, WORKFLOW):
            options = ctx._options()
            if intent.kind == AGENT and isinstance(intent.output, Mapping):
                options["output"] = dict(intent.output)
            result = yield CallEither(
                unit.execute, getattr(unit, "aexecute", None), (prompt,), options
            )
            usage = Usage.coerce(getattr(result, "usage", None))
            error = getattr(result, "error", None)
            if intent.kind == WORKFLOW or intent.output is not None:
                output = getattr(result, "data", None)
            else:
                output = getattr(result, "text", None)
            return output, usage, error
        output = yield Call(unit, (ctx,), True)
        return output, ctx.usage, None

    def merge(self, keys: list[str], branches: dict[str, dict[str, Any]]) -> Effects:
        """Merge branch outputs into the state in decision order; unsafe keys are dropped."""
        dropped: list[str] = []
        for key in keys:
            branch, intent = branches[key], self.sup.intents[key]
            output = branch["output"]
            if branch["error"] is not None or not intent.merges or not isinstance(output, Mapping):
                continue
            for name, value in output.items():
                if is_unsafe_key(name):
                    dropped.append(str(name))
                    logger.warning(
                        "state.merge.unsafe-key: intent %r returned key %r (dropped)", key, name
                    )
                    yield from self.emit("supervisor.state.unsafe_key", intent=key, key=str(name))
                    continue
                self.state[name] = value
        return dropped

    # --- after the branches -----------------------------------------------------------------

    def judge(self, index: int, branches: dict[str, dict[str, Any]]) -> Effects:
        if self.sup.evaluate is None:
            return None
        try:
            verdict = yield Call(self.sup.evaluate, (self.ctx(results=branches),), True)
        except AIError:
            raise
        except Exception as exc:
            raise SupervisorFailedError(
                f'supervisor "{self.sup.name}": evaluate() raised: {exc}', cause=exc
            ) from exc
        if verdict is None:
            return None
        if not isinstance(verdict, Mapping):
            raise SupervisorFailedError(
                f'supervisor "{self.sup.name}": evaluate() must return None or a dict with '
                f"satisfied / reassign_to / feedback, got {verdict!r}"
            )
        verdict = {
            k: verdict.get(k)
            for k in ("satisfied", "reassign_to", "feedback")
            if verdict.get(k) is not None
        }
        yield from self.emit("supervisor.evaluate.verdict", iteration=index, verdict=verdict)
        return verdict

    def carry(self, verdict: dict | None, branches: dict[str, dict[str, Any]]) -> Effects:
        """What ends the run now, or what the next iteration dispatches without routing."""
        if verdict and verdict.get("satisfied"):
            return "evaluate", None
        if verdict and verdict.get("reassign_to"):
            return None, {"reassign_to": self.normalise(verdict["reassign_to"])}
        targets: list[str] = []
        for key, branch in branches.items():
            intent = self.sup.intents[key]
            if intent.next is None or branch["error"] is not None:
                continue
            chosen = yield Call(intent.next, (self.ctx(intent=key, results=branches),))
            if chosen is None:
                continue
            if chosen == END:
                return "route", None
            targets += [t for t in self.normalise(chosen) if t not in targets]
        return None, ({"next": self.normalise(targets)} if targets else None)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else dumps(value)


def _plain(value: Any) -> bool:
    try:
        dumps(value)
    except SnapshotSerializationError:
        return False
    return True
