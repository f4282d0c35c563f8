"""The semantic cache: answer a model call from an earlier answer to the same question.

``semantic_cache(embedder=, store=, threshold=, ...)`` is a middleware (reference 6.2) with two
tiers, tried on an execution's first model call only (a tool loop's follow-up calls are never
served from the cache):

1. **exact**: the same messages, byte for byte, answered before in the same partition;
2. **vector**: the latest user message embedded, and the nearest stored prompt whose cosine
   score reaches ``threshold`` (optionally vetted by a ``guard``, see :mod:`.guard`).

A miss lets the model answer; the answer that ends the execution (after any tool calls) is
stored under the first call's prompt, when the whole execution succeeded. Tool-call replies,
refusals, truncated or empty answers, and executions that failed (a model, tool, schema or
middleware error) are never stored.

What an entry may answer is narrower than in the original, so that a cache never serves an
answer its question was not asked under:

- **scope**: the caller's scope (``"session"``: ``session:<session_id>``; ``"shared"``: the
  unscoped pool; or a callable of the trip context) is the entry's ``scope``, matched exactly
  *in the driver's query*, so one session never reads another's entries;
- **partition**: a digest of the model (provider and name), the agent's signature (tools,
  output schema, version), this middleware's ``version=``, the system prompt and, with
  ``match="conversation"`` (the default), every message before the latest user message. It is
  part of the exact tier's key and stored with the entry; a vector hit of another partition is
  passed over. So a new model, agent or prompt release never serves old answers, and "yes, do
  it" in one conversation is not answered from another. ``match="prompt"`` compares only the
  latest user message (the original's vector tier).

The vector tier asks the driver for the nearest entry first and looks further (``top_k=8``)
only when that one cannot be served (another partition, stale, refused by the guard), so a
lookup is one search and a hit counts one entry's ``hits``. The partition is not a column: the
HNSW index (pgvector 0.6 has no filtered index scans) then serves the whole shared pool of a
namespace, and entries of an older model or prompt are only passed over until they expire.

The cache fails open: a driver or embedder error is logged on ``warlock_ai.cache`` and the model
is called, except a ``CacheConfigurationError`` (a misconfigured cache would otherwise stay
silently useless), which fails the execution.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..agents.messages import Message, ModelResponse
from ..agents.middleware import Hooks, Middleware, PipelineContext
from ..errors import CacheConfigurationError
from ..runs.effects import CallEither, Engine
from ..runs.usage import ZERO, Usage
from .base import CacheDriver, check_ttl
from .guard import Guard, resolve_guard
from .vector_store import check_dimensions, similarity_store

logger = logging.getLogger("warlock_ai.cache")

DEFAULT_NAMESPACE = "ai.cache"
#: Finish reasons of a complete answer; anything else (length, content_filter, ...) is not kept.
COMPLETE = frozenset({"stop", "end_turn", "stop_sequence", "eos"})
MATCHES = ("conversation", "prompt")
#: How far the vector tier looks when the nearest entry cannot be served.
WIDER_TOP_K = 8


def semantic_cache(
    *,
    embedder: Any,
    store: CacheDriver | None = None,
    threshold: float = 0.95,
    ttl: float | None = None,
    namespace: str = DEFAULT_NAMESPACE,
    scope: str | Callable[[PipelineContext], Any] = "session",
    guard: bool | Guard | None = None,
    version: Any = None,
    match: str = "conversation",
    name: str = "semantic-cache",
) -> Middleware:
    """A middleware serving repeated questions from ``store`` (default: ``ai.config``'s
    ``default_store``, in Django ``WARLOCK_AI["CACHE"]``). Put it first in ``middleware=``.

    ``threshold`` is the cosine score a vector hit needs (0 < t <= 1); ``ttl`` the seconds an
    entry serves (None: until removed); ``scope`` ``"session"``, ``"shared"`` or a callable
    ``(ctx) -> str | None``; ``guard`` True for :func:`.guard.negation_guard` or a callable
    ``(query, cached_prompt) -> bool``; ``version`` anything JSON whose change retires every
    entry (a prompt release); ``match`` ``"conversation"`` or ``"prompt"`` (see the module).
    """
    cache = SemanticCache(
        embedder=embedder,
        store=store,
        threshold=threshold,
        ttl=ttl,
        namespace=namespace,
        scope=scope,
        guard=guard,
        version=version,
        match=match,
        name=name,
    )
    return Middleware(
        name,
        execute=Hooks(after=cache.execute_after),
        trip=Hooks(before=cache.trip_before, after=cache.trip_after),
    )


class SemanticCache:
    """The options, checked, and the hooks (each returns a generator of effects)."""

    def __init__(
        self,
        *,
        embedder: Any,
        store: CacheDriver | None,
        threshold: float,
        ttl: float | None,
        namespace: str,
        scope: str | Callable[[PipelineContext], Any],
        guard: bool | Guard | None,
        version: Any,
        match: str,
        name: str,
    ) -> None:
        where = "semantic_cache()"
        self.store = similarity_store(where, "the semantic cache", store)
        if not callable(getattr(embedder, "embed", None)):
            raise TypeError(
                f"{where}: embedder must have embed(text) (an embedder), got {embedder!r}"
            )
        check_dimensions(where, "the semantic cache", embedder, self.store)
        self.embedder = embedder
        if isinstance(threshold, bool) or not isinstance(threshold, int | float):
            raise TypeError(f"{where}: threshold must be a number, got {threshold!r}")
        if not 0 < threshold <= 1:
            raise ValueError(f"{where}: threshold must be above 0 and at most 1, got {threshold}")
        self.threshold = float(threshold)
        self.ttl = check_ttl(ttl)
        if not isinstance(namespace, str) or not namespace or len(namespace) > 200:
            raise ValueError(f"{where}: namespace must be a string of 1 to 200 characters")
        self.namespace = namespace
        if not (scope in ("session", "shared") or callable(scope)):
            raise ValueError(
                f'{where}: scope must be "session", "shared" or a callable (ctx) -> scope, '
                f"got {scope!r}"
            )
        self.scope = scope
        self.guard: Guard | None = resolve_guard(guard)
        if match not in MATCHES:
            raise ValueError(f"{where}: match must be one of {', '.join(MATCHES)}, got {match!r}")
        self.match = match
        self.version = json.dumps(version, sort_keys=True, default=str)
        if not isinstance(name, str) or not name:
            raise ValueError(f"{where}: name must be a non-empty string")
        self.pending_key = f"{name}.pending"

    # --- hooks ----------------------------------------------------------------------------

    def trip_before(self, ctx: PipelineContext) -> Engine:
        if ctx.trip_index != 0:
            return None
        messages = [as_message(m) for m in ctx.messages or ()]
        prompt = latest_user_text(messages)
        if not prompt:
            return None
        scope = self.caller_scope(ctx)
        partition = self.partition(ctx, messages)
        key = entry_key(scope, partition, messages)
        where = {"namespace": self.namespace, "scope": scope}
        store = self.store
        try:
            found = yield CallEither(store.get, store.aget, (key,), where)
        except CacheConfigurationError:
            raise
        except Exception as exc:
            logger.warning("semantic cache: reading %r failed, calling the model: %s", key, exc)
            return None
        if self.servable(found, partition):
            return served(found, {"tier": "exact", "score": 1.0, "key": key})
        vector = yield from self.embed(prompt)
        if vector is not None:
            for top_k in (1, WIDER_TOP_K):
                search = {**where, "top_k": top_k, "threshold": self.threshold}
                try:
                    hits = yield CallEither(store.similar, store.asimilar, (vector,), search)
                except CacheConfigurationError:
                    raise
                except Exception as exc:
                    logger.warning("semantic cache: searching failed, calling the model: %s", exc)
                    break
                for hit in hits:
                    if self.servable(hit.value, partition, prompt):
                        cached = {"tier": "vector", "score": hit.score, "key": hit.key}
                        return served(hit.value, cached)
                if len(hits) < top_k:
                    break  # nothing further to look at
        ctx.state[self.pending_key] = {
            "key": key,
            "scope": scope,
            "partition": partition,
            "prompt": prompt,
            "vector": vector,
        }
        return None

    def trip_after(self, ctx: PipelineContext, reply: Any) -> Engine:
        """Note the reply that ends the tool loop; it is stored once the execution succeeds."""
        pending = ctx.state.get(self.pending_key)
        if pending is None or not isinstance(reply, ModelResponse | str):
            return None
        if isinstance(reply, ModelResponse) and (
            reply.tool_calls or reply.finish_reason == "tool_calls"
        ):
            return None  # keep waiting: the final answer goes under the first call's prompt
        pending["reply"] = reply if isinstance(reply, ModelResponse) else ModelResponse(reply)
        return None
        yield  # a generator, like every hook of this middleware

    def execute_after(self, ctx: PipelineContext, result: Any) -> Engine:
        pending = ctx.state.pop(self.pending_key, None)
        if pending is None or "reply" not in pending:
            return None
        if getattr(result, "error", None) is not None:
            return None
        reply: ModelResponse = pending["reply"]
        if not complete(reply):
            return None
        value = {
            "response": {
                "content": reply.content,
                "finish_reason": reply.finish_reason,
                "model": reply.model,
                "usage": reply.usage.to_dict(),
            },
            "prompt": pending["prompt"],
            "partition": pending["partition"],
            "stored_at": time.time(),
        }
        options = {
            "namespace": self.namespace,
            "vector": pending["vector"],
            "ttl": self.ttl,
            "scope": pending["scope"],
        }
        store = self.store
        try:
            yield CallEither(store.set, store.aset, (pending["key"], value), options)
        except CacheConfigurationError:
            raise
        except Exception as exc:  # the answer is good; only its reuse is lost
            logger.warning("semantic cache: storing %r failed: %s", pending["key"], exc)
        return None

    # --- parts ----------------------------------------------------------------------------

    def embed(self, text: str) -> Engine:
        embedder = self.embedder
        try:
            embedding = yield CallEither(embedder.embed, getattr(embedder, "aembed", None), (text,))
        except Exception as exc:
            logger.warning("semantic cache: embedding failed, exact tier only: %s", exc)
            return None
        vector = getattr(embedding, "vector", embedding)
        if not vector or not any(vector):
            return None
        return list(vector)

    def servable(self, value: Any, partition: str, prompt: str | None = None) -> bool:
        """A stored answer of this partition, still fresh, and (for a vector hit of
        ``prompt``) accepted by the guard."""
        if not isinstance(value, Mapping) or not isinstance(value.get("response"), Mapping):
            return False
        if value.get("partition") != partition:
            return False
        if self.ttl is not None:
            stored_at = value.get("stored_at")
            if not isinstance(stored_at, int | float) or time.time() - stored_at > self.ttl:
                return False
        if prompt is not None and self.guard is not None:
            return self.guard(prompt, str(value.get("prompt") or ""))
        return True

    def caller_scope(self, ctx: PipelineContext) -> str | None:
        if self.scope == "shared":
            return None
        if self.scope == "session":
            session = (ctx.options or {}).get("session_id")
            return f"session:{session}" if session else None
        assert callable(self.scope)
        found = self.scope(ctx)
        return str(found) if found else None

    def partition(self, ctx: PipelineContext, messages: Sequence[Message]) -> str:
        """``<provider>/<model>:<digest>``: the digest covers everything an answer depends on
        besides the question (see the module); the model is written out for people."""
        model = ctx.model or {}
        model_label = f"{model.get('provider', '')}/{model.get('name', '')}"
        agent = ctx.agent or {}
        context = messages[:-1] if self.match == "conversation" else system_of(messages)
        digest = _digest(
            [model_label, agent.get("signature"), self.version, [m.to_dict() for m in context]]
        )
        return f"{model_label}:{digest}"


def served(value: Mapping[str, Any], cached: dict[str, Any]) -> ModelResponse:
    """The stored answer as a reply that cost nothing."""
    response = value["response"]
    return ModelResponse(
        content=str(response.get("content") or ""),
        finish_reason=str(response.get("finish_reason") or "stop"),
        usage=ZERO,
        model=response.get("model"),
        cached={**cached, "usage": Usage.coerce(response.get("usage") or {}).to_dict()},
    )


def complete(reply: ModelResponse) -> bool:
    """A whole answer worth serving again: not a refusal, not cut short, not empty."""
    return (
        reply.finish_reason in COMPLETE
        and not reply.refusal
        and not reply.tool_calls
        and bool(reply.content.strip())
        and reply.cached is None
    )


def as_message(item: Any) -> Message:
    if isinstance(item, Message):
        return item
    if isinstance(item, Mapping):
        return Message.from_dict(dict(item))
    raise TypeError(f"semantic cache: a message must be a Message or a dict, got {item!r}")


def latest_user_text(messages: Sequence[Message]) -> str:
    for message in reversed(messages):
        if message.role == "user":
            return message.content.strip()
    return ""


def system_of(messages: Sequence[Message]) -> list[Message]:
    return [m for m in messages if m.role == "system"]


def entry_key(scope: str | None, partition: str, messages: Sequence[Message]) -> str:
    """The exact tier's key: a 128-bit digest of the scope, the partition and every message
    (a 32-bit hash, as in the original, collides within a few tens of thousands of entries)."""
    return _digest([scope, partition, [m.to_dict() for m in messages]])


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()
