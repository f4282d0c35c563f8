"""One agent execution: the trip loop, tool calls, the transcript and structured output.

``Agent.execute`` and ``Agent.aexecute`` drive the same effects generator (see :mod:`.effects`),
so the two share every line of the loop. Neither raises for a model, tool or schema failure:
the error is returned in ``result.error``.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ..errors import (
    AgentCancelledError,
    AgentExecutionError,
    AgentMaxTripsError,
    AIError,
    ModelCallError,
    SchemaValidationError,
    ToolExecutionError,
    to_ai_error,
)
from ..runs.cancel import CancelToken
from ..runs.effects import Call, CallEither, Emit, Engine
from ..runs.events import HandlerMap, normalise_handlers
from ..runs.snapshots import iso
from ..runs.usage import ZERO, Usage
from .json_schema import json_schema_issues
from .messages import Message, ModelResponse, ToolCall
from .middleware import PipelineContext, pipeline_effects
from .results import AgentReport, AgentResult, TripRecord
from .schema import validate_schema
from .tools import Tool

if TYPE_CHECKING:
    from .agent import Agent

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
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_FENCE = re.compile(r"^```[A-Za-z0-9_-]*\s*\n(.*)\n```\s*$", re.DOTALL)


class AgentRun:
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
            check_output(output, f"agent {agent.name!r}")
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
            agent={
                "name": agent.name,
                "is_anonymous": agent.is_anonymous,
                "signature": agent.signature,
                "version": agent.version,
            },
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
                cached=reply.cached,
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
    """Check the arguments against the tool's schema, then call the tool (a plain ``run``
    goes to a worker thread under ``aexecute``). Invalid arguments never reach the tool: the
    model gets the problem back and may call again."""
    issues = json_schema_issues(found.parameters, ctx.arguments)
    if issues:
        raise ToolExecutionError(
            f"tool {found.name!r} got invalid arguments: {'; '.join(issues[:3])}",
            tool_name=found.name,
            trip_index=index,
        )
    try:
        args = (ctx.arguments, ctx) if found.takes_context else (ctx.arguments,)
        return (yield Call(found.run, args, offload=True))
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
    return validate_schema(schema, value)


def check_output(output: Any, where: str) -> None:
    """Reject an ``output`` that :func:`.schema.validate_schema` could not use."""
    usable = isinstance(output, Mapping) or callable(output)
    usable = usable or any(
        hasattr(output, a) for a in ("model_validate", "validate_python", "validate")
    )
    if not usable:
        raise TypeError(
            f"{where}: output must be a JSON Schema dict, a pydantic model, an object with "
            f"validate(value) or a callable; got {output!r}"
        )
