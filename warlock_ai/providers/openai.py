"""OpenAI-compatible chat and embeddings over httpx (OpenAI, vLLM, Ollama, LM Studio, gateways).

Every failure is a ``ModelCallError`` with ``provider``, ``model``, ``status`` and ``retryable``;
a cancelled ``CancelToken`` raises ``AgentCancelledError`` instead.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

try:
    import httpx
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "warlock_ai.providers.openai needs httpx: pip install 'warlock-ai[openai]'"
    ) from exc

from warlock_ai.core.agents.messages import (
    Embedding,
    Embeddings,
    Message,
    ModelResponse,
    Price,
    ToolCall,
)
from warlock_ai.core.runs.usage import Usage

from ._http import Endpoint

__all__ = ["OpenAIEmbedder", "OpenAIModel"]


KNOWN_DIMENSIONS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}


class OpenAIModel(Endpoint):
    """A chat model behind ``POST {base_url}/chat/completions``.

    Options: ``tools``, ``response_format`` (a JSON Schema), ``temperature``, ``max_tokens``,
    ``cancel``; other options (``session_id``, ...) are ignored. ``extra_body`` is merged into
    every request, under the per-call options.
    """

    def __init__(
        self,
        name: str,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 3,
        backoff: float = 0.5,
        price: Price | None = None,
        client: httpx.Client | None = None,
        async_client: httpx.AsyncClient | None = None,
        extra_body: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(
            name,
            api_key=api_key,
            base_url=base_url,
            timeout=timeout,
            max_retries=max_retries,
            backoff=backoff,
            price=price,
            client=client,
            async_client=async_client,
        )
        self.extra_body = dict(extra_body or {})

    def complete(self, messages: Sequence[Message], **options: Any) -> ModelResponse:
        """Send the conversation and return the reply (text or tool calls)."""
        body = self._body(messages, options)
        return self._response(self._post("/chat/completions", body, options.get("cancel")))

    async def acomplete(self, messages: Sequence[Message], **options: Any) -> ModelResponse:
        """Async twin of :meth:`complete`."""
        body = self._body(messages, options)
        return self._response(await self._apost("/chat/completions", body, options.get("cancel")))

    def _body(self, messages: Sequence[Message], options: dict[str, Any]) -> dict[str, Any]:
        body: dict[str, Any] = {
            **self.extra_body,
            "model": self.name,
            "messages": [_wire_message(m) for m in messages],
        }
        if options.get("tools"):
            body["tools"] = [_wire_tool(tool) for tool in options["tools"]]
        if options.get("response_format") is not None:
            body["response_format"] = _wire_response_format(options["response_format"])
        for key in ("temperature", "max_tokens"):
            if options.get(key) is not None:
                body[key] = options[key]
        return body

    def _response(self, data: dict[str, Any]) -> ModelResponse:
        try:
            choice = data["choices"][0]
            message = choice["message"]
        except (KeyError, IndexError, TypeError):
            raise self._malformed("no choices[0].message") from None
        tool_calls = tuple(self._tool_call(raw) for raw in message.get("tool_calls") or ())
        finish_reason = choice.get("finish_reason") or "stop"
        if tool_calls and finish_reason == "stop":  # some compatible servers say "stop"
            finish_reason = "tool_calls"
        return ModelResponse(
            content=message.get("content") or "",
            finish_reason=finish_reason,
            usage=self._priced(_chat_usage(data.get("usage"))),
            tool_calls=tool_calls,
            model=data.get("model") or self.name,
            raw=data,
            refusal=message.get("refusal") or None,
        )

    def _tool_call(self, raw: dict[str, Any]) -> ToolCall:
        function = raw.get("function") or {}
        name = function.get("name") or ""
        text = function.get("arguments") or "{}"
        try:
            arguments = json.loads(text) if isinstance(text, str) else text
        except ValueError as exc:
            raise self._malformed(f"tool {name!r} arguments are not JSON ({exc})") from None
        if not isinstance(arguments, dict):
            raise self._malformed(f"tool {name!r} arguments are not a JSON object")
        return ToolCall(id=raw.get("id") or "", name=name, arguments=arguments)


class OpenAIEmbedder(Endpoint):
    """An embedding model behind ``POST {base_url}/embeddings``.

    ``dimensions`` is sent when given (text-embedding-3 models shorten their vectors);
    otherwise it is the model's known size, corrected by the first reply.
    """

    def __init__(
        self,
        name: str = "text-embedding-3-small",
        *,
        dimensions: int | None = None,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 3,
        backoff: float = 0.5,
        price: Price | None = None,
        client: httpx.Client | None = None,
        async_client: httpx.AsyncClient | None = None,
    ) -> None:
        super().__init__(
            name,
            api_key=api_key,
            base_url=base_url,
            timeout=timeout,
            max_retries=max_retries,
            backoff=backoff,
            price=price,
            client=client,
            async_client=async_client,
        )
        self._requested_dimensions = dimensions
        self.dimensions: int = dimensions or KNOWN_DIMENSIONS.get(name, 0)

    def embed(self, text: str) -> Embedding:
        """Embed one text."""
        return _single(self.embed_many([text]))

    def embed_many(self, texts: Sequence[str]) -> Embeddings:
        """Embed many texts in one request (OpenAI accepts up to 2,048); order is kept."""
        texts = list(texts)
        if not texts:
            return Embeddings(vectors=[], dimensions=self.dimensions)
        return self._embeddings(self._post("/embeddings", self._body(texts), None), len(texts))

    async def aembed(self, text: str) -> Embedding:
        """Async twin of :meth:`embed`."""
        return _single(await self.aembed_many([text]))

    async def aembed_many(self, texts: Sequence[str]) -> Embeddings:
        """Async twin of :meth:`embed_many`."""
        texts = list(texts)
        if not texts:
            return Embeddings(vectors=[], dimensions=self.dimensions)
        data = await self._apost("/embeddings", self._body(texts), None)
        return self._embeddings(data, len(texts))

    def _body(self, texts: list[str]) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.name, "input": texts}
        if self._requested_dimensions:
            body["dimensions"] = self._requested_dimensions
        return body

    def _embeddings(self, data: dict[str, Any], expected: int) -> Embeddings:
        try:
            rows = sorted(data["data"], key=lambda row: row["index"])
            vectors = [list(row["embedding"]) for row in rows]
        except (KeyError, TypeError) as exc:
            raise self._malformed(f"embeddings without {exc}") from None
        if len(vectors) != expected:
            raise self._malformed(f"{len(vectors)} embeddings for {expected} inputs")
        if not self._requested_dimensions:
            self.dimensions = len(vectors[0])
        raw_usage = data.get("usage") or {}
        tokens = raw_usage.get("prompt_tokens") or 0
        usage = Usage(input=tokens, total=raw_usage.get("total_tokens") or tokens)
        return Embeddings(vectors=vectors, dimensions=self.dimensions, usage=self._priced(usage))


# --- wire format ------------------------------------------------------------------------------


def _wire_message(message: Message | dict[str, Any]) -> dict[str, Any]:
    if isinstance(message, dict):
        message = Message.from_dict(message)
    wire: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        wire["content"] = message.content or None
        wire["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
            }
            for call in message.tool_calls
        ]
    if message.tool_call_id is not None:
        wire["tool_call_id"] = message.tool_call_id
    if message.name is not None and message.role != "tool":
        wire["name"] = message.name
    return wire


def _wire_tool(tool: dict[str, Any]) -> dict[str, Any]:
    if tool.get("type") == "function":  # already in OpenAI's shape
        return tool
    function = {
        "name": tool["name"],
        "parameters": tool.get("parameters") or {"type": "object", "properties": {}},
    }
    if tool.get("description"):
        function["description"] = tool["description"]
    return {"type": "function", "function": function}


def _wire_response_format(schema: dict[str, Any]) -> dict[str, Any]:
    # A JSON Schema's "type" is never one of these, so OpenAI's own shapes pass through.
    if schema.get("type") in ("json_schema", "json_object", "text"):
        return schema
    return {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": schema, "strict": False},
    }


def _chat_usage(raw: dict[str, Any] | None) -> Usage:
    if not raw:
        return Usage()
    prompt = raw.get("prompt_tokens_details") or {}
    completion = raw.get("completion_tokens_details") or {}
    return Usage(
        input=raw.get("prompt_tokens") or 0,
        output=raw.get("completion_tokens") or 0,
        total=raw.get("total_tokens") or 0,
        cached_tokens=prompt.get("cached_tokens") or 0,
        reasoning_tokens=completion.get("reasoning_tokens") or 0,
    )


def _single(embeddings: Embeddings) -> Embedding:
    return Embedding(embeddings.vectors[0], embeddings.dimensions, embeddings.usage)
