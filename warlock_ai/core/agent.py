"""Agents: a model, a system prompt and tools, run as a loop of model calls ("trips").

``execute`` and ``aexecute`` drive the same effects generator (see :mod:`.effects`), so the
two share every line of the loop. Neither raises for a model, tool or schema failure: the
error is returned in ``result.error``, which is what workflow steps, the supervisor and the
orchestrator expect of an agent.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from .cancel import CancelToken
from .effects import Call, CallEither, Emit, Engine, run_async, run_sync
from .errors import (
    AgentCancelledError,
    AgentExecutionError,
    AgentMaxTripsError,
    AIError,
    ModelCallError,
    SchemaValidationError,
    ToolExecutionError,
    to_ai_error,
)
from .events import HandlerMap, normalise_handlers
from .messages import Message, ModelResponse, ToolCall
from .middleware import Middleware, PipelineContext, pipeline_effects
from .schema import validate_schema
from .signature import signature_of
from .snapshots import error_dict, iso
from .tools import Tool
from .usage import ZERO, Usage

AGENT_EVENTS = frozenset(
    {
        "agent.starting",
        "agent.trip",
        "agent.tool",
        "agent.completed",
        "agent.error",
        "agent.cancelled",
    }
)
_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_FENCE = re.compile(r"^```[A-Za-z0-9_-]*\s*\n(.*)\n```\s*$", re.DOTALL)


# --- results ----------------------------------------------------------------------------


@dataclass(frozen=True)
class TripRecord:
    """One model call and the tools it asked for; ``errors`` are the tools that failed."""

    index: int
    usage: Usage
    duration_ms: float
    finish_reason: str | None
    tool_calls: tuple[str, ...] = ()
    errors: tuple[AIError, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "usage": self.usage.to_dict(),
            "duration_ms": self.duration_ms,
            "finish_reason": self.finish_reason,
            "tool_calls": list(self.tool_calls),
            "errors": [error_dict(e) for e in self.errors],
        }


@dataclass(frozen=True)
class AgentReport:
    name: str
    model: dict[str, str]
    trips: list[TripRecord]
    duration_ms: float
    status: str  # "completed" | "failed" | "cancelled"
    session_id: str | None = None
    version: Any = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "model": dict(self.model),
            "status": self.status,
            "duration_ms": self.duration_ms,
            "session_id": self.session_id,
            "version": self.version,
            "trips": [trip.to_dict() for trip in self.trips],
        }


@dataclass(frozen=True, kw_only=True)
class AgentResult:
    """What ``execute`` returns; ``usage`` is the sum of every trip, ``messages`` the
    transcript (system prompt, history, prompt, tool rounds, final reply)."""

    report: AgentReport
    type: str = "agent"
    text: str | None = None
    data: Any = None
    usage: Usage = ZERO
    error: AIError | None = None
    messages: list[Message] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def status(self) -> str:
        return self.report.status

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (for snapshots and API responses)."""
        return {
            "type": self.type,
            "text": self.text,
            "data": self.data,
            "usage": self.usage.to_dict(),
            "error": error_dict(self.error),
            "report": self.report.to_dict(),
            "messages": [m.to_dict() for m in self.messages],
        }


# --- the agent ----------------------------------------------------------------------------


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
        run = _AgentRun(
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
        return run_sync(run.engine())

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
        run = _AgentRun(
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
        return await run_async(run.engine())

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
        _check_output(agent.output, where)


def _check_output(output: Any, where: str) -> None:
    usable = isinstance(output, Mapping) or callable(output)
    usable = usable or any(
        hasattr(output, a) for a in ("model_validate", "validate_python", "validate")
    )
    if not usable:
        raise TypeError(
            f"{where}: output must be a JSON Schema dict, a pydantic model, an object with "
            f"validate(value) or a callable; got {output!r}"
        )


# --- one execution ------------------------------------------------------------------------


class _AgentRun:
    """The state of one ``execute``: transcript, trips, usage, and the loop over them."""

    def __init__(
        self,
        agent: Agent,
        prompt: str,
        *,
        history: Sequence[Message | Mapping[str, Any]] | None,
        output: Any,
        placeholders: Mapping[str, Any] | None,
        cancel: CancelToken | None,
        session_id: str | None,
        context: Mapping[str, Any] | None,
        on: HandlerMap | None,
        extra: dict[str, Any],
    ) -> None:
        if output is not None:
            _check_output(output, f"agent {agent.name!r}")
        self.agent = agent
        self.cancel = cancel
        self.session_id = session_id
        self.schema = output if output is not None else agent.output
        self.handlers = normalise_handlers(on, AGENT_EVENTS)
        system = fill_placeholders(agent.system_prompt, placeholders)
        text = fill_placeholders(prompt, placeholders)
        self.messages = initial_messages(system, history, text)
        self.call_options = self._call_options(extra)
        self.model_info = {"name": agent.model.name, "provider": agent.model.provider}
        options = {"session_id": session_id, "cancel": cancel, "context": context, **extra}
        self.ctx = PipelineContext(
            level="execute",
            agent={"name": agent.name, "is_anonymous": agent.is_anonymous},
            model=dict(self.model_info),
            input=text,
            options=options,
        )
        self.trips: list[TripRecord] = []
        self.usage = ZERO
        self.text: str | None = None
        self.data: Any = None
        self.started = time.perf_counter()

    def _call_options(self, extra: dict[str, Any]) -> dict[str, Any]:
        """What every model call gets: the agent's options, the call's, tools, schema, ids."""
        options = {**self.agent.model_options, **extra}
        if self.agent.tools:
            options["tools"] = [t.spec() for t in self.agent.tools]
        if self.schema is not None:
            options["response_format"] = response_format(self.schema)
        if self.session_id is not None:
            options["session_id"] = self.session_id
        if self.cancel is not None:
            options["cancel"] = self.cancel
        return options

    def engine(self) -> Engine:
        yield from self.emit("agent.starting", input=self.ctx.input)
        try:
            value = yield from pipeline_effects(
                self.agent.middleware, "execute", self.ctx, self.loop
            )
            result = self.result(value)
        except Exception as exc:
            result = self.result(error=to_ai_error(exc, AgentExecutionError))
        event = {"completed": "agent.completed", "cancelled": "agent.cancelled"}
        yield from self.emit(event.get(result.report.status, "agent.error"), result=result)
        return result

    def loop(self) -> Engine:
        for index in range(self.agent.max_trips):
            self.check_cancel(index)
            started = time.perf_counter()
            reply = yield from self.trip(index)
            errors = (yield from self.run_tools(index, reply)) if reply.tool_calls else ()
            self.record(index, reply, started, errors)
            yield from self.emit("agent.trip", trip=self.trips[-1])
            if not reply.tool_calls:
                return self.finish(reply)
        raise AgentMaxTripsError(
            f"agent {self.agent.name!r} still asked for tools after max_trips="
            f"{self.agent.max_trips} trips; raise max_trips or check what its tools return",
            max_trips=self.agent.max_trips,
        )

    def check_cancel(self, index: int) -> None:
        token = self.cancel
        if token is not None and token.cancelled:
            reason = token.reason_text or None
            raise AgentCancelledError(
                f"agent {self.agent.name!r} was cancelled before trip {index}"
                + (f": {reason}" if reason else ""),
                cancelled_at=iso(token.cancelled_at),
                reason=reason,
            )

    def trip(self, index: int) -> Engine:
        ctx = replace(self.ctx, level="trip", trip_index=index, messages=list(self.messages))
        value = yield from pipeline_effects(
            self.agent.middleware, "trip", ctx, lambda: self.call_model(ctx)
        )
        reply = as_response(value)
        self.usage = self.usage + Usage.coerce(reply.usage)
        return reply

    def call_model(self, ctx: PipelineContext) -> Engine:
        model = self.agent.model
        args = (list(ctx.messages or ()),)
        try:
            return (
                yield CallEither(
                    model.complete, getattr(model, "acomplete", None), args, self.call_options
                )
            )
        except AIError:
            raise
        except Exception as exc:
            raise ModelCallError(
                f"model {model.provider}/{model.name} failed: {type(exc).__name__}: {exc}",
                provider=model.provider,
                model=model.name,
                cause=exc,
            ) from exc

    def run_tools(self, index: int, reply: ModelResponse) -> Engine:
        """Run each requested tool in order; a failing tool becomes an error message."""
        self.messages.append(Message("assistant", reply.content, tool_calls=reply.tool_calls))
        errors: list[AIError] = []
        for call in reply.tool_calls:
            content, error = yield from self.run_tool(index, call)
            self.messages.append(Message("tool", content, tool_call_id=call.id, name=call.name))
            if error is not None:
                errors.append(error)
        return tuple(errors)

    def run_tool(self, index: int, call: ToolCall) -> Engine:
        found = self.agent.tool_named(call.name)
        if found is None:
            known = ", ".join(sorted(t.name for t in self.agent.tools)) or "none"
            error = ToolExecutionError(
                f"unknown tool {call.name!r}; available tools: {known}",
                tool_name=call.name,
                trip_index=index,
            )
            return f"Error: {error.message}", error
        ctx = replace(
            self.ctx,
            level="tool",
            trip_index=index,
            messages=list(self.messages),
            tool_name=call.name,
            arguments=dict(call.arguments),
        )
        try:
            value = yield from pipeline_effects(
                self.agent.middleware, "tool", ctx, lambda: invoke_tool(found, ctx, index)
            )
        except ToolExecutionError as error:
            return f"Error: {error.message}", error
        yield from self.emit("agent.tool", tool=call.name, arguments=ctx.arguments, result=value)
        return tool_content(value), None

    def record(
        self, index: int, reply: ModelResponse, started: float, errors: tuple[AIError, ...]
    ) -> None:
        self.trips.append(
            TripRecord(
                index=index,
                usage=Usage.coerce(reply.usage),
                duration_ms=(time.perf_counter() - started) * 1000,
                finish_reason=reply.finish_reason,
                tool_calls=tuple(c.name for c in reply.tool_calls),
                errors=errors,
            )
        )

    def finish(self, reply: ModelResponse) -> AgentResult:
        self.text = reply.content
        self.messages.append(Message("assistant", reply.content))
        if self.schema is not None:
            self.data = parse_output(self.schema, reply.content)
        return self.result()

    def result(self, value: Any = None, error: AIError | None = None) -> AgentResult:
        """The result so far; a middleware's non-result value becomes its text or data."""
        if isinstance(value, AgentResult):
            return value
        text, data = self.text, self.data
        if isinstance(value, str):
            text = value
        elif value is not None:
            data = value
        return AgentResult(
            text=text,
            data=data,
            usage=self.usage,
            error=error,
            messages=list(self.messages),
            report=AgentReport(
                name=self.agent.name,
                model=dict(self.model_info),
                trips=list(self.trips),
                duration_ms=(time.perf_counter() - self.started) * 1000,
                status=_status(error),
                session_id=self.session_id,
                version=self.agent.version,
            ),
        )

    def emit(self, event: str, **payload: Any) -> Engine:
        handlers = self.handlers.get(event)
        if handlers:
            data = {"event": event, "agent": self.agent.name, "session_id": self.session_id}
            yield Emit(handlers, {**data, **payload})


def _status(error: AIError | None) -> str:
    if error is None:
        return "completed"
    return "cancelled" if isinstance(error, AgentCancelledError) else "failed"


def invoke_tool(found: Tool, ctx: PipelineContext, index: int) -> Engine:
    """Call the tool (a plain ``run`` goes to a worker thread under ``aexecute``)."""
    try:
        return (yield Call(found.run, (ctx.arguments,), offload=True))
    except Exception as exc:
        raise ToolExecutionError(
            f"tool {found.name!r} failed: {type(exc).__name__}: {exc}",
            tool_name=found.name,
            trip_index=index,
            cause=exc,
        ) from exc


# --- messages and replies -----------------------------------------------------------------


def fill_placeholders(text: str | None, placeholders: Mapping[str, Any] | None) -> str | None:
    """Replace ``{name}`` tokens found in ``placeholders``; other braces (JSON) stay as-is."""
    if not text or not placeholders:
        return text

    def substitute(match: re.Match[str]) -> str:
        key = match.group(1)
        return str(placeholders[key]) if key in placeholders else match.group(0)

    return _PLACEHOLDER.sub(substitute, text)


def initial_messages(
    system: str | None, history: Sequence[Message | Mapping[str, Any]] | None, prompt: str | None
) -> list[Message]:
    messages = [Message("system", system)] if system else []
    messages.extend(as_message(item) for item in history or ())
    messages.append(Message("user", prompt or ""))
    return messages


def as_message(item: Message | Mapping[str, Any]) -> Message:
    if isinstance(item, Message):
        return item
    if isinstance(item, Mapping) and "role" in item:
        return Message.from_dict(dict(item))
    raise TypeError(f"history items must be Message or {{'role', 'content'}} dicts, got {item!r}")


def as_response(value: Any) -> ModelResponse:
    """A model reply, or what a trip middleware returned instead (a str is a text reply)."""
    if isinstance(value, ModelResponse):
        return value
    if isinstance(value, str):
        return ModelResponse(content=value)
    raise AgentExecutionError(
        f"a trip returned {value!r}; models and trip middleware must return a ModelResponse"
    )


def tool_content(value: Any) -> str:
    """A tool's result as the JSON text the model reads (non-JSON values via ``str``)."""
    return json.dumps(value, ensure_ascii=False, default=str)


# --- structured output --------------------------------------------------------------------


def response_format(schema: Any) -> dict[str, Any] | None:
    """The JSON Schema handed to the model: the dict itself, or a pydantic model's schema."""
    if isinstance(schema, Mapping):
        return dict(schema)
    to_schema = getattr(schema, "model_json_schema", None)
    return to_schema() if callable(to_schema) else None


def parse_output(schema: Any, text: str) -> Any:
    """Parse the reply as JSON (a Markdown code fence around it is tolerated) and validate."""
    body = text.strip()
    fenced = _FENCE.match(body)
    try:
        value = json.loads(fenced.group(1) if fenced else body)
    except ValueError as exc:
        raise SchemaValidationError(
            f"the reply is not JSON ({exc}) but the agent has an output schema; "
            "check that the model supports response_format or ask for JSON in the prompt",
            issues=[f"$: not JSON: {exc}"],
        ) from exc
    validator = JsonSchema(schema) if isinstance(schema, Mapping) else schema
    return validate_schema(validator, value)


class JsonSchema:
    """Checks the common JSON Schema keywords without a dependency.

    Covered: ``type``, ``enum``, ``const``, ``properties``, ``required``,
    ``additionalProperties``, ``items``, ``anyOf``. For anything richer give the agent a
    pydantic model or a callable as ``output``.
    """

    def __init__(self, schema: Mapping[str, Any]) -> None:
        self.schema = schema

    def validate(self, value: Any) -> Any:
        issues = json_schema_issues(self.schema, value)
        if issues:
            raise SchemaValidationError(
                f"the reply does not match the output schema: {'; '.join(issues[:5])}",
                issues=issues,
            )
        return value


_JSON_TYPES: dict[str, Callable[[Any], bool]] = {
    "null": lambda v: v is None,
    "boolean": lambda v: isinstance(v, bool),
    "integer": lambda v: (
        (isinstance(v, int) and not isinstance(v, bool))
        or (isinstance(v, float) and v.is_integer())
    ),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "string": lambda v: isinstance(v, str),
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
}


def json_schema_issues(schema: Mapping[str, Any], value: Any, path: str = "$") -> list[str]:
    """Every way ``value`` breaks ``schema``, as ``"<path>: <problem>"`` strings."""
    expected = schema.get("type")
    if expected is not None:
        names = [expected] if isinstance(expected, str) else list(expected)
        if not any(_JSON_TYPES.get(n, lambda v: True)(value) for n in names):
            return [f"{path}: expected {' or '.join(names)}, got {type(value).__name__}"]
    issues: list[str] = []
    if "enum" in schema and value not in schema["enum"]:
        issues.append(f"{path}: {value!r} is not one of {schema['enum']!r}")
    if "const" in schema and value != schema["const"]:
        issues.append(f"{path}: must be {schema['const']!r}")
    if isinstance(value, dict):
        issues.extend(_object_issues(schema, value, path))
    items = schema.get("items")
    if isinstance(value, list) and isinstance(items, Mapping):
        for i, item in enumerate(value):
            issues.extend(json_schema_issues(items, item, f"{path}[{i}]"))
    options = schema.get("anyOf")
    if options and all(json_schema_issues(option, value, path) for option in options):
        issues.append(f"{path}: matches none of anyOf")
    return issues


def _object_issues(schema: Mapping[str, Any], value: dict[str, Any], path: str) -> list[str]:
    issues = [f"{path}: missing {key!r}" for key in schema.get("required", ()) if key not in value]
    properties = schema.get("properties") or {}
    extra = schema.get("additionalProperties", True)
    for key, item in value.items():
        if key in properties:
            issues.extend(json_schema_issues(properties[key], item, f"{path}.{key}"))
        elif extra is False:
            issues.append(f"{path}: unexpected property {key!r}")
        elif isinstance(extra, Mapping):
            issues.extend(json_schema_issues(extra, item, f"{path}.{key}"))
    return issues
