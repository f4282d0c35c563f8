"""Deciding an iteration: carried directives, the initial intent, the route callable or the
router agent, and the checks on what they return (known keys, de-duplicated, fan-out cap)."""

from __future__ import annotations

from collections.abc import Generator, Mapping
from time import perf_counter
from typing import TYPE_CHECKING, Any

from ..errors import (
    AIError,
    SnapshotSerializationError,
    SupervisorFailedError,
    SupervisorRoutingError,
)
from ..runs.effects import Call, CallEither
from ..runs.routing import END
from ..runs.run import elapsed_ms
from ..runs.serialization import dumps
from ..runs.usage import ZERO, Usage

if TYPE_CHECKING:
    from ..runs.cancel import CancelToken
    from .definition import Supervisor
    from .results import SupervisorContext
    from .snapshot import SupervisorSnapshot

Effects = Generator[Any, Any, Any]

ROUTER_SCHEMA = {
    "type": "object",
    "properties": {
        "next": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
        "reasoning": {"type": "string"},
    },
    "required": ["next"],
}


def text_of(value: Any) -> str:
    return value if isinstance(value, str) else dumps(value)


def plain_json(value: Any) -> bool:
    try:
        dumps(value)
    except SnapshotSerializationError:
        return False
    return True


class Deciding:
    """Mixin of ``SupervisorRun``: which intents the iteration dispatches.

    What it uses of the run is declared here for the type checker.
    """

    sup: Supervisor
    input: Any
    state: dict[str, Any]
    snapshots: list[dict[str, Any]]
    carried: dict[str, Any] | None
    resume_from: SupervisorSnapshot | None
    cancel: CancelToken
    session_id: str | None
    #: The conversation the router agent sees (an orchestrator turn's window), or None.
    router_history: list[Any] | None = None

    if TYPE_CHECKING:

        def ctx(self, **extra: Any) -> SupervisorContext: ...
        def emit(self, event: str, **payload: Any) -> Effects: ...
        def check_cancel(self) -> None: ...

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
            "duration_ms": elapsed_ms(clock),
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
        if self.router_history is not None:
            options["history"] = self.router_history
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
        lines.append(f"Input: {text_of(self.input)}")
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
                returned=raw if plain_json(raw) else repr(raw),
                available_keys=available,
            )
        return items

    # --- dispatching ------------------------------------------------------------------------
