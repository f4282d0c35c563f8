"""Running an iteration's intents and folding their outcomes into the run: dispatch (agents,
workflows, callbacks), the state merge with its unsafe-key guard, evaluate, and what carries
over to the next iteration."""

from __future__ import annotations

import logging
from collections.abc import Generator, Mapping
from time import perf_counter
from typing import TYPE_CHECKING, Any

from ..errors import AIError, SupervisorFailedError, to_ai_error
from ..runs.effects import Call, CallEither
from ..runs.routing import END
from ..runs.run import elapsed_ms
from ..runs.snapshots import iso, now
from ..runs.usage import ZERO, Usage
from .decide import text_of
from .intents import AGENT, WORKFLOW, Intent
from .results import SupervisorContext

if TYPE_CHECKING:
    from .definition import Supervisor

logger = logging.getLogger("warlock_ai.supervisor")

Effects = Generator[Any, Any, Any]

#: Keys never merged into the state: the original's prototype keys, and Python's dunders.
UNSAFE_KEYS = frozenset({"__proto__", "constructor", "prototype"})


def is_unsafe_key(key: Any) -> bool:
    return (
        not isinstance(key, str)
        or key in UNSAFE_KEYS
        or (key.startswith("__") and key.endswith("__"))
    )


class Dispatching:
    """Mixin of ``SupervisorRun``: run the chosen intents, merge, evaluate, carry.

    What it uses of the run (and of ``Deciding``) is declared here for the type checker.
    """

    sup: Supervisor
    input: Any
    state: dict[str, Any]

    if TYPE_CHECKING:

        def ctx(self, **extra: Any) -> SupervisorContext: ...
        def emit(self, event: str, **payload: Any) -> Effects: ...
        def normalise(self, raw: Any) -> Any: ...

    #: The conversation the dispatched agents see (an orchestrator turn's window), or None.
    agent_history: list[Any] | None = None

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
            "duration_ms": elapsed_ms(clock),
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
            return text_of(self.input)
        return self.input

    def call_unit(self, intent: Intent, prompt: Any, ctx: SupervisorContext) -> Effects:
        """Returns ``(output, usage, error)`` of one agent, workflow or callback."""
        unit = intent.unit
        if intent.kind in (AGENT, WORKFLOW):
            options = ctx._options()
            if intent.kind == AGENT and isinstance(intent.output, Mapping):
                options["output"] = dict(intent.output)
            if intent.kind == AGENT and self.agent_history is not None:
                options["history"] = self.agent_history
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

    def carry(self, verdict: dict[str, Any] | None, branches: dict[str, dict[str, Any]]) -> Effects:
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
