"""The model contract: messages, tool calls, replies, embeddings and prices.

Every model (``warlock_ai.testing.FakeModel``, ``warlock_ai.providers.openai.OpenAIModel``, or
your own) has ``name``, ``provider`` and ``complete(messages, **options)`` (``acomplete`` for
the async driver); every embedder has ``name``, ``provider``, ``dimensions``, ``embed`` and
``embed_many`` (``aembed``, ``aembed_many``). All values here are JSON-friendly dataclasses,
so an agent's transcript can live in a snapshot.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from ..runs.usage import ZERO, Usage

ROLES = ("system", "user", "assistant", "tool")


@dataclass(frozen=True)
class ToolCall:
    """The model asks for ``name(**arguments)``; ``id`` pairs it with the tool message."""

    id: str
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "arguments": self.arguments}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ToolCall:
        return cls(id=data["id"], name=data["name"], arguments=dict(data.get("arguments") or {}))


@dataclass(frozen=True)
class Message:
    """One chat message. ``tool`` messages carry ``tool_call_id``; assistant messages that
    call tools carry ``tool_calls``."""

    role: str
    content: str = ""
    tool_call_id: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    name: str | None = None

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"message role must be one of {', '.join(ROLES)}, got {self.role!r}")

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.tool_call_id is not None:
            data["tool_call_id"] = self.tool_call_id
        if self.tool_calls:
            data["tool_calls"] = [call.to_dict() for call in self.tool_calls]
        if self.name is not None:
            data["name"] = self.name
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Message:
        return cls(
            role=data["role"],
            content=data.get("content") or "",
            tool_call_id=data.get("tool_call_id"),
            tool_calls=tuple(ToolCall.from_dict(c) for c in data.get("tool_calls") or ()),
            name=data.get("name"),
        )


@dataclass(frozen=True)
class ModelResponse:
    """One model reply: text, or tool calls (``finish_reason == "tool_calls"``).

    ``refusal`` is the model's refusal text when it declined to answer (OpenAI's
    ``message.refusal``); ``cached`` says where a reply served by the semantic cache came from
    (``{"tier": "exact" | "vector", "score", "key"}``), None for a real model call.
    """

    content: str = ""
    finish_reason: str = "stop"
    usage: Usage = ZERO
    tool_calls: tuple[ToolCall, ...] = ()
    model: str | None = None
    raw: Any = field(default=None, compare=False, repr=False)
    refusal: str | None = None
    cached: dict[str, Any] | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Embedding:
    vector: list[float]
    dimensions: int
    usage: Usage = ZERO


@dataclass(frozen=True)
class Embeddings:
    vectors: list[list[float]]
    dimensions: int
    usage: Usage = ZERO


@dataclass(frozen=True)
class Price:
    """US dollars per million tokens."""

    input: float
    output: float
    cached_input: float | None = None

    def cost(self, usage: Usage) -> float:
        """Cached input tokens are billed at ``cached_input`` (else at ``input``)."""
        cached = min(usage.cached_tokens, usage.input)
        cached_rate = self.input if self.cached_input is None else self.cached_input
        dollars = (
            (usage.input - cached) * self.input + cached * cached_rate + usage.output * self.output
        )
        return dollars / 1_000_000


@runtime_checkable
class Model(Protocol):
    """What agents call. Options an implementation must accept (and may ignore):
    ``tools`` (list of ``{"name", "description", "parameters"}`` with a JSON Schema),
    ``response_format`` (a JSON Schema the reply's text must satisfy, or None),
    ``temperature``, ``max_tokens``, ``cancel`` (a ``CancelToken``)."""

    name: str
    provider: str

    def complete(self, messages: Sequence[Message], **options: Any) -> ModelResponse: ...


@runtime_checkable
class Embedder(Protocol):
    name: str
    provider: str
    dimensions: int

    def embed(self, text: str) -> Embedding: ...

    def embed_many(self, texts: Sequence[str]) -> Embeddings: ...
