"""Fakes for tests: a scripted model, a deterministic embedder, and an agent built on them.

They are real implementations of the model and embedder contracts (no mocking), so a test
exercises the actual agent loop, middleware and workflow engine::

    from warlock_ai.testing import FakeModel, scripted_agent

    writer = scripted_agent(["first draft", {"content": "final", "usage": {"output": 3}}])
    assert writer.execute("write").text == "first draft"
    assert writer.model.call_count == 1

Importing this module does not import Django.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .core.agents.agent import Agent, agent
from .core.agents.messages import Embedding, Embeddings, Message, ModelResponse, Price, ToolCall
from .core.agents.tools import Tool
from .core.errors import ModelCallError
from .core.runs.usage import Usage

__all__ = ["FakeEmbedder", "FakeModel", "scripted_agent"]

_RESPONSE_KEYS = frozenset(
    {"content", "finish_reason", "usage", "tool_calls", "delay", "error", "refusal"}
)


@dataclass(frozen=True)
class _Scripted:
    """One prepared response: the reply, how long to wait first, what to raise instead."""

    reply: ModelResponse
    delay: float = 0.0
    error: BaseException | None = None


class FakeModel:
    """A model that replies from a script, in order, repeating the last reply once exhausted.

    Each response is a string (the reply text), a ``ModelResponse`` (served as-is) or a dict
    with ``content``, ``finish_reason`` (``"stop"``, or ``"tool_calls"`` when ``tool_calls``
    are given), ``refusal`` (the model declined: its text), ``usage`` (a dict or ``Usage``;
    ``total`` is recomputed as input + output, input defaults to 10 and output to
    ``ceil(len(content) / 4)``), ``tool_calls`` (dicts ``{id?, name, arguments}``),
    ``delay`` (seconds to wait first) and ``error`` (an exception to raise, or a message
    raised as ``ModelCallError``). With no responses it replies "ok".

    ``call_count`` and ``call_history`` (``(messages, options)`` pairs) are safe to read
    while other threads call the model. With ``price``, each reply's usage carries its cost.
    """

    def __init__(
        self,
        responses: Sequence[str | Mapping[str, Any] | ModelResponse] | None = None,
        *,
        name: str = "fake-model",
        provider: str = "fake",
        price: Price | None = None,
    ) -> None:
        self.name = name
        self.provider = provider
        self.price = price
        script = list(responses) if responses else ["ok"]
        self._script = [self._prepare(item, index) for index, item in enumerate(script)]
        self._lock = threading.Lock()
        self._calls: list[tuple[list[Message], dict[str, Any]]] = []

    @property
    def call_count(self) -> int:
        with self._lock:
            return len(self._calls)

    @property
    def call_history(self) -> list[tuple[list[Message], dict[str, Any]]]:
        """A copy of every call's ``(messages, options)``, oldest first."""
        with self._lock:
            return list(self._calls)

    def complete(self, messages: Sequence[Message], **options: Any) -> ModelResponse:
        scripted = self._next(messages, options)
        if scripted.delay:
            time.sleep(scripted.delay)
        return self._settle(scripted)

    async def acomplete(self, messages: Sequence[Message], **options: Any) -> ModelResponse:
        scripted = self._next(messages, options)
        if scripted.delay:
            await asyncio.sleep(scripted.delay)
        return self._settle(scripted)

    def _next(self, messages: Sequence[Message], options: dict[str, Any]) -> _Scripted:
        with self._lock:
            index = min(len(self._calls), len(self._script) - 1)
            self._calls.append((list(messages), dict(options)))
        return self._script[index]

    @staticmethod
    def _settle(scripted: _Scripted) -> ModelResponse:
        if scripted.error is not None:
            raise scripted.error
        return scripted.reply

    def _prepare(self, item: Any, index: int) -> _Scripted:
        if isinstance(item, ModelResponse):
            return _Scripted(item)
        if isinstance(item, str):
            item = {"content": item}
        if not isinstance(item, Mapping):
            raise TypeError(f"FakeModel response {index} must be a str, dict or ModelResponse")
        unknown = sorted(set(item) - _RESPONSE_KEYS)
        if unknown:
            raise ValueError(f"FakeModel response {index}: unknown keys {unknown}")
        return _Scripted(self._reply(item, index), item.get("delay") or 0.0, self._error(item))

    def _reply(self, item: Mapping[str, Any], index: int) -> ModelResponse:
        content = item.get("content") or ""
        calls = tuple(
            ToolCall(
                id=call.get("id") or f"call_{index}_{n}",
                name=call["name"],
                arguments=dict(call.get("arguments") or {}),
            )
            for n, call in enumerate(item.get("tool_calls") or ())
        )
        finish = item.get("finish_reason") or ("tool_calls" if calls else "stop")
        usage = self._usage(item.get("usage"), content)
        refusal = item.get("refusal")
        return ModelResponse(content, finish, usage, calls, model=self.name, refusal=refusal)

    def _usage(self, given: Usage | Mapping[str, Any] | None, content: str) -> Usage:
        """Defaults filled in, ``total`` recomputed, cost from ``price`` when there is one."""
        explicit = given.to_dict() if isinstance(given, Usage) else dict(given or {})
        data = Usage.from_dict(explicit).to_dict()
        data["input"] = explicit.get("input", 10)
        data["output"] = explicit.get("output", math.ceil(len(content) / 4))
        data["total"] = data["input"] + data["output"]
        usage = Usage.from_dict(data)
        if self.price is not None:
            usage = Usage.from_dict({**usage.to_dict(), "cost": self.price.cost(usage)})
        return usage

    def _error(self, item: Mapping[str, Any]) -> BaseException | None:
        error = item.get("error")
        if error is None or isinstance(error, BaseException):
            return error
        return ModelCallError(str(error), provider=self.provider, model=self.name)

    def __repr__(self) -> str:
        return f"<FakeModel {self.provider}/{self.name} responses={len(self._script)}>"


class FakeEmbedder:
    """Deterministic vectors: character codes summed into ``index % dimensions`` buckets, then
    L2-normalised (the empty string gives the zero vector). Equal texts embed equally and
    texts sharing most characters in place land close together."""

    def __init__(self, dimensions: int = 4, *, name: str = "fake-embedder") -> None:
        if not isinstance(dimensions, int) or dimensions < 1:
            raise ValueError(f"FakeEmbedder dimensions must be an integer >= 1, got {dimensions}")
        self.dimensions = dimensions
        self.name = name
        self.provider = "fake"

    def vector(self, text: str) -> list[float]:
        buckets = [0.0] * self.dimensions
        for index, char in enumerate(text):
            buckets[index % self.dimensions] += ord(char)
        norm = math.sqrt(sum(v * v for v in buckets))
        return [v / norm for v in buckets] if norm else buckets

    def embed(self, text: str) -> Embedding:
        return Embedding(self.vector(text), self.dimensions, _embed_usage([text]))

    def embed_many(self, texts: Sequence[str]) -> Embeddings:
        vectors = [self.vector(text) for text in texts]
        return Embeddings(vectors, self.dimensions, _embed_usage(texts))

    async def aembed(self, text: str) -> Embedding:
        return self.embed(text)

    async def aembed_many(self, texts: Sequence[str]) -> Embeddings:
        return self.embed_many(texts)

    def __repr__(self) -> str:
        return f"<FakeEmbedder {self.name} dimensions={self.dimensions}>"


def _embed_usage(texts: Sequence[str]) -> Usage:
    tokens = sum(math.ceil(len(text) / 4) for text in texts)
    return Usage(input=tokens, total=tokens)


def scripted_agent(
    responses: Sequence[str | Mapping[str, Any] | ModelResponse] | None = None,
    *,
    name: str | None = "scripted",
    tools: Sequence[Tool] = (),
    model_name: str = "fake-model",
    **agent_options: Any,
) -> Agent:
    """A real agent on a ``FakeModel`` (``agent.model``); other options go to ``ai.agent``."""
    model = FakeModel(responses, name=model_name)
    return agent(model=model, name=name, tools=tools, **agent_options)
