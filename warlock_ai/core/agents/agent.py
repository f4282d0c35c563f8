"""Agents: a model, a system prompt and tools, run as a loop of model calls ("trips").

This module holds the definition (:class:`Agent`, :func:`agent`, its validation and
signature). One execution lives in :mod:`.agent_run`, and what it returns in
:mod:`.agent_results`. Neither ``execute`` nor ``aexecute`` raises for a model, tool or schema
failure: the error is returned in ``result.error``, which is what workflow steps, the
supervisor and the orchestrator expect of an agent.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from ..runs.cancel import CancelToken
from ..runs.effects import run_async, run_sync
from ..runs.events import HandlerMap
from ..runs.signature import signature_of
from .messages import Message
from .middleware import Middleware
from .results import AgentReport, AgentResult, TripRecord
from .run import AGENT_EVENTS, AgentRun, check_output
from .tools import Tool

__all__ = [
    "AGENT_EVENTS",
    "Agent",
    "AgentReport",
    "AgentResult",
    "TripRecord",
    "agent",
    "anonymous_name",
]

_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]")


class Agent:
    """An agent definition: immutable once built, safe to execute from many threads at once.

    Build it with :func:`agent`. ``signature`` covers the name, the model, the sorted tool
    names, ``max_trips``, whether there is an output schema and ``version``; the description
    and the system prompt are left out so rewording them does not strand durable runs.
    """

    def __init__(
        self,
        *,
        model: Any,
        name: str | None = None,
        description: str | None = None,
        system_prompt: str | None = None,
        tools: Sequence[Tool] = (),
        max_trips: int = 10,
        output: Any = None,
        middleware: Sequence[Middleware] = (),
        version: Any = None,
        model_options: Mapping[str, Any] | None = None,
    ) -> None:
        _check_model(model)
        self.model = model
        self.tools: tuple[Tool, ...] = _check_tools(tools)
        self._tools = {t.name: t for t in self.tools}
        self.is_anonymous = name is None
        self.name: str = name if name is not None else anonymous_name(model, self.tools)
        self.description = description
        self.system_prompt = system_prompt
        self.max_trips = max_trips
        self.output = output
        self.middleware: tuple[Middleware, ...] = tuple(middleware)
        self.version = version
        self.model_options: dict[str, Any] = dict(model_options or {})
        _check_settings(self)
        self.fingerprint: dict[str, Any] = {
            "n": None if self.is_anonymous else self.name,
            "p": model.provider,
            "m": model.name,
            "t": sorted(self._tools),
            "x": max_trips,
            "o": 1 if output is not None else 0,
            "v": version,
        }
        self.signature: str = signature_of(self.fingerprint)

    def tool_named(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def execute(
        self,
        prompt: str,
        *,
        history: Sequence[Message | Mapping[str, Any]] | None = None,
        output: Any = None,
        placeholders: Mapping[str, Any] | None = None,
        cancel: CancelToken | None = None,
        session_id: str | None = None,
        context: Mapping[str, Any] | None = None,
        on: HandlerMap | None = None,
        **model_options: Any,
    ) -> AgentResult:
        """Run the trip loop; extra keywords (``temperature``, ...) go to every model call."""
        run = AgentRun(
            self,
            prompt,
            history=history,
            output=output,
            placeholders=placeholders,
            cancel=cancel,
            session_id=session_id,
            context=context,
            on=on,
            extra=model_options,
        )
        result: AgentResult = run_sync(run.engine())
        return result

    async def aexecute(
        self,
        prompt: str,
        *,
        history: Sequence[Message | Mapping[str, Any]] | None = None,
        output: Any = None,
        placeholders: Mapping[str, Any] | None = None,
        cancel: CancelToken | None = None,
        session_id: str | None = None,
        context: Mapping[str, Any] | None = None,
        on: HandlerMap | None = None,
        **model_options: Any,
    ) -> AgentResult:
        """The async twin: awaits ``model.acomplete`` (else runs ``complete`` in a thread)."""
        run = AgentRun(
            self,
            prompt,
            history=history,
            output=output,
            placeholders=placeholders,
            cancel=cancel,
            session_id=session_id,
            context=context,
            on=on,
            extra=model_options,
        )
        result: AgentResult = await run_async(run.engine())
        return result

    def __repr__(self) -> str:
        return f"<Agent {self.name} model={self.model.provider}/{self.model.name}>"


def agent(
    *,
    model: Any,
    name: str | None = None,
    description: str | None = None,
    system_prompt: str | None = None,
    tools: Sequence[Tool] = (),
    max_trips: int = 10,
    output: Any = None,
    middleware: Sequence[Middleware] = (),
    version: Any = None,
    model_options: Mapping[str, Any] | None = None,
) -> Agent:
    """Define an agent. Without ``name`` it gets a stable synthetic ``anon_...`` name."""
    return Agent(
        model=model,
        name=name,
        description=description,
        system_prompt=system_prompt,
        tools=tools,
        max_trips=max_trips,
        output=output,
        middleware=middleware,
        version=version,
        model_options=model_options,
    )


def anonymous_name(model: Any, tools: Sequence[Tool]) -> str:
    """``anon_<provider>_<model>[_<sorted tools joined by +>]``, unsafe characters -> ``-``.

    The whole name is sanitised, the ``+`` joiner included, exactly like ``@warlock.js/ai``,
    so workflow signatures naming an anonymous agent match the TypeScript library's.
    """
    raw = f"anon_{model.provider}_{model.name}"
    if tools:
        raw += "_" + "+".join(sorted(t.name for t in tools))
    return _UNSAFE_NAME_CHARS.sub("-", raw)


def _check_model(model: Any) -> None:
    if not callable(getattr(model, "complete", None)):
        raise TypeError(f"agent(): model {model!r} has no complete(messages, **options) method")
    for attribute in ("name", "provider"):
        value = getattr(model, attribute, None)
        if not isinstance(value, str) or not value:
            raise TypeError(f"agent(): model {model!r} needs a non-empty string .{attribute}")


def _check_tools(tools: Sequence[Tool]) -> tuple[Tool, ...]:
    result = tuple(tools)
    names: set[str] = set()
    for item in result:
        if not isinstance(item, Tool):
            raise TypeError(f"agent(): tools must be built with ai.tool(...), got {item!r}")
        if item.name in names:
            raise ValueError(f"agent(): two tools are named {item.name!r}; tool names are unique")
        names.add(item.name)
    return result


def _check_settings(agent: Agent) -> None:
    where = f"agent {agent.name!r}"
    if agent.name == "" or not isinstance(agent.name, str):
        raise ValueError(f"agent(): name must be a non-empty string or None, got {agent.name!r}")
    if not isinstance(agent.max_trips, int) or agent.max_trips < 1:
        raise ValueError(f"{where}: max_trips must be an integer >= 1, got {agent.max_trips!r}")
    if agent.system_prompt is not None and not isinstance(agent.system_prompt, str):
        raise TypeError(f"{where}: system_prompt must be a string, got {agent.system_prompt!r}")
    for item in agent.middleware:
        if not isinstance(item, Middleware):
            raise TypeError(f"{where}: middleware must be ai.Middleware(...), got {item!r}")
    if agent.output is not None:
        check_output(agent.output, where)
