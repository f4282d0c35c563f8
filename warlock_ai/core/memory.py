"""Scoped agent memory: ``ai.memory(...)`` with working, semantic, episodic and procedural
tiers (reference section 7).

- **working**: the latest items, in this process only (never persisted), newest first; capped at
  ``max_items`` across all scopes, the oldest inserted evicted first. It ignores the query.
- **semantic**: facts, recalled by meaning (cosine score).
- **episodic**: events, recalled by meaning and recency: ``(1-w)·sim + w·0.5^(age/half_life)``.
- **procedural**: how-tos, recalled by meaning and use: each ``remember`` of the same id counts
  one more use; ``(1-w)·sim + w·uses/(uses+1)``.

The three vector tiers keep their items in a cache driver (``ai.cache.db()`` in production),
each in its own namespace. A **scope** (``"session:42"``, ``"user:7"``) is matched exactly in the
driver's query: a recall without a scope reads only unscoped items, never every scope's.
A recall embeds the query once for every vector tier, asks each tier for its best items,
merges them by score and keeps ``k``.

``recall``, ``remember`` and ``clear`` are written once as effects; ``arecall``,
``aremember`` and ``aclear`` are their async twins (the driver's and embedder's async methods,
where they have them).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .cache.base import CacheDriver
from .cache.vector_store import check_dimensions, similarity_store
from .errors import CacheConfigurationError
from .runs.effects import CallEither, Engine, run_async, run_sync

TIERS = ("working", "semantic", "episodic", "procedural")
VECTOR_TIERS = ("semantic", "episodic", "procedural")
DEFAULT_MAX_ITEMS = 1000
DEFAULT_HALF_LIFE = 7 * 24 * 3600.0
DEFAULT_WEIGHT = 0.3
_ITEM_KEYS = frozenset({"text", "id", "tier", "scope", "metadata"})
_TIER_KEYS = {
    "working": frozenset({"max_items"}),
    "semantic": frozenset({"store", "namespace"}),
    "episodic": frozenset({"store", "namespace", "half_life", "recency_weight"}),
    "procedural": frozenset({"store", "namespace", "usage_weight"}),
}


@dataclass(frozen=True)
class MemoryItem:
    """One recalled item: its text, tier, scope, metadata and score (higher is better)."""

    id: str
    text: str
    tier: str
    score: float
    scope: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "text": self.text,
            "tier": self.tier,
            "score": self.score,
            "scope": self.scope,
            "metadata": dict(self.metadata),
        }


def memory_id(text: str) -> str:
    """An item's id when none is given: a 64-bit digest of its text (the same text is one
    item, remembered again in place)."""
    return hashlib.blake2b(text.encode("utf-8"), digest_size=8).hexdigest()


def scoped_key(scope: str | None, item_id: str) -> str:
    """A driver key unique per scope (keys are unique per namespace, across scopes)."""
    if scope is None:
        return item_id
    digest = hashlib.blake2b(scope.encode("utf-8"), digest_size=8).hexdigest()
    return f"{digest}.{item_id}"


class WorkingTier:
    """Process memory, FIFO-capped across scopes; re-remembering an id keeps its slot."""

    def __init__(self, max_items: int) -> None:
        self.max_items = max_items
        self.items: OrderedDict[tuple[str | None, str], dict[str, Any]] = OrderedDict()
        self.lock = threading.Lock()

    def remember(self, item: dict[str, Any]) -> None:
        with self.lock:
            self.items[(item["scope"], item["id"])] = item
            while len(self.items) > self.max_items:
                self.items.popitem(last=False)

    def recall(self, k: int, scope: str | None) -> list[MemoryItem]:
        with self.lock:
            found = [v for (s, _), v in reversed(self.items.items()) if s == scope][:k]
        n = len(found)
        return [
            MemoryItem(
                v["id"],
                v["text"],
                "working",
                1.0 if n <= 1 else 1 - index / n,
                scope,
                dict(v["metadata"]),
            )
            for index, v in enumerate(found)
        ]

    def clear(self) -> None:
        with self.lock:
            self.items.clear()


@dataclass(frozen=True)
class VectorTier:
    tier: str
    store: CacheDriver
    namespace: str
    weight: float = 0.0
    half_life: float = DEFAULT_HALF_LIFE

    def fetch(self, k: int) -> int:
        """How many candidates to ask for: re-scored tiers look further than ``k``."""
        return k if self.tier == "semantic" else 5 * k

    def score(self, similarity: float, value: Mapping[str, Any], now: float) -> float:
        if self.tier == "episodic":
            age = max(0.0, now - float(value.get("ts") or now))
            recency: float = 0.5 ** (age / self.half_life)
            return (1 - self.weight) * similarity + self.weight * recency
        if self.tier == "procedural":
            uses = max(0, int(value.get("uses") or 0))
            return (1 - self.weight) * similarity + self.weight * uses / (uses + 1)
        return similarity


class Memory:
    """Build with :func:`memory`. Safe to share between threads and executions."""

    def __init__(
        self,
        *,
        name: str = "memory",
        working: bool | Mapping[str, Any] = True,
        semantic: bool | Mapping[str, Any] = False,
        episodic: bool | Mapping[str, Any] = False,
        procedural: bool | Mapping[str, Any] = False,
        embedder: Any = None,
        store: CacheDriver | None = None,
        k: int = 5,
        threshold: float = 0.7,
        default_tier: str = "working",
        now: Callable[[], float] | None = None,
    ) -> None:
        where = f"ai.memory({name!r})"
        self.name = name
        self.k = _check_k(where, k)
        self.threshold = _check_threshold(where, threshold)
        self.now = now or time.time
        configs = {
            "working": working,
            "semantic": semantic,
            "episodic": episodic,
            "procedural": procedural,
        }
        for tier, value in configs.items():
            if not isinstance(value, bool | Mapping):
                raise TypeError(f"{where}: {tier} must be True, False or a dict, got {value!r}")
            if isinstance(value, Mapping):
                unknown = sorted(set(value) - _TIER_KEYS[tier])
                if unknown:
                    raise ValueError(
                        f"{where}: {tier} has unknown keys {unknown}; known: "
                        f"{sorted(_TIER_KEYS[tier])}"
                    )
        enabled = [tier for tier, value in configs.items() if value is not False]
        if not enabled:
            raise ValueError(f"{where}: enable at least one tier (working, semantic, ...)")
        if default_tier not in enabled:
            raise ValueError(
                f"{where}: default_tier {default_tier!r} is not enabled; enabled: {enabled}"
            )
        self.default_tier = default_tier
        self.working: WorkingTier | None = None
        if working is not False:
            options = working if isinstance(working, Mapping) else {}
            max_items = options.get("max_items", DEFAULT_MAX_ITEMS)
            if isinstance(max_items, bool) or not isinstance(max_items, int) or max_items < 1:
                raise ValueError(
                    f"{where}: working `max_items` must be an integer >= 1, got {max_items!r}"
                )
            self.working = WorkingTier(max_items)
        self.vector_tiers: dict[str, VectorTier] = {}
        for tier in VECTOR_TIERS:
            value = configs[tier]
            if value is not False:
                options = value if isinstance(value, Mapping) else {}
                self.vector_tiers[tier] = _vector_tier(where, tier, options, store)
        self.embedder = embedder
        if self.vector_tiers:
            _check_embedder(where, embedder, self.vector_tiers.values())
        self.enabled = tuple(enabled)

    # --- public API -----------------------------------------------------------------------

    def remember(self, items: Any) -> list[str]:
        """Store one item or a list: a string, or ``{"text", "id"?, "tier"?, "scope"?,
        "metadata"?}``. Returns the ids."""
        ids: list[str] = run_sync(self._remember(items))
        return ids

    async def aremember(self, items: Any) -> list[str]:
        ids: list[str] = await run_async(self._remember(items))
        return ids

    def recall(
        self,
        query: str,
        *,
        k: int | None = None,
        threshold: float | None = None,
        tier: str | None = None,
        scope: str | None = None,
    ) -> list[MemoryItem]:
        """The ``k`` best items of ``scope`` (None: the unscoped pool) across the enabled tiers,
        or of one ``tier``, by score descending."""
        found: list[MemoryItem] = run_sync(self._recall(query, k, threshold, tier, scope))
        return found

    async def arecall(
        self,
        query: str,
        *,
        k: int | None = None,
        threshold: float | None = None,
        tier: str | None = None,
        scope: str | None = None,
    ) -> list[MemoryItem]:
        found: list[MemoryItem] = await run_async(self._recall(query, k, threshold, tier, scope))
        return found

    def clear(self, tier: str | None = None) -> None:
        """Forget every item of ``tier`` (all tiers when None), in every scope."""
        run_sync(self._clear(tier))

    async def aclear(self, tier: str | None = None) -> None:
        await run_async(self._clear(tier))

    def __repr__(self) -> str:
        return f"<Memory {self.name} tiers={list(self.enabled)}>"

    # --- engines ---------------------------------------------------------------------------

    def _remember(self, items: Any) -> Engine:
        batch = [self._item(raw) for raw in (items if isinstance(items, list) else [items])]
        vectors: list[Any] = [None] * len(batch)
        to_embed = [i for i, item in enumerate(batch) if item["tier"] in self.vector_tiers]
        if to_embed:
            texts = [batch[i]["text"] for i in to_embed]
            embedded = yield from self._embed_many(texts)
            for i, vector in zip(to_embed, embedded, strict=True):
                vectors[i] = vector
        for item, vector in zip(batch, vectors, strict=True):
            if item["tier"] == "working":
                assert self.working is not None
                self.working.remember(item)
            else:
                yield from self._store(self.vector_tiers[item["tier"]], item, vector)
        return [item["id"] for item in batch]

    def _store(self, tier: VectorTier, item: dict[str, Any], vector: list[float]) -> Engine:
        store, key = tier.store, scoped_key(item["scope"], item["id"])
        value: dict[str, Any] = {"id": item["id"], "text": item["text"], "scope": item["scope"]}
        value["metadata"] = item["metadata"]
        if tier.tier == "episodic":
            value["ts"] = self.now()
        elif tier.tier == "procedural":
            where = {"namespace": tier.namespace, "scope": item["scope"]}
            old = yield CallEither(store.get, store.aget, (key,), where)
            old = old if isinstance(old, Mapping) else {}
            value["uses"] = int(old.get("uses") or 0) + 1
            if not item["metadata"] and old.get("metadata"):
                value["metadata"] = old["metadata"]
        options = {"namespace": tier.namespace, "vector": vector, "scope": item["scope"]}
        yield CallEither(store.set, store.aset, (key, value), options)

    def _recall(
        self,
        query: str,
        k: int | None,
        threshold: float | None,
        tier: str | None,
        scope: str | None,
    ) -> Engine:
        where = f"ai.memory({self.name!r}).recall()"
        if not isinstance(query, str):
            raise TypeError(f"{where}: query must be a string, got {query!r}")
        k = self.k if k is None else _check_k(where, k)
        threshold = self.threshold if threshold is None else _check_threshold(where, threshold)
        scope = _check_scope(where, scope)
        tiers = self.enabled if tier is None else (self._check_tier(where, tier),)
        if k == 0:
            return []
        found: list[MemoryItem] = []
        if "working" in tiers and self.working is not None:
            found.extend(self.working.recall(k, scope))
        searched = [self.vector_tiers[t] for t in tiers if t in self.vector_tiers]
        if searched and query.strip():
            (vector,) = yield from self._embed_many([query])
            now = self.now()
            for vector_tier in searched:
                store = vector_tier.store
                options = {
                    "namespace": vector_tier.namespace,
                    "top_k": vector_tier.fetch(k),
                    "threshold": threshold,
                    "scope": scope,
                }
                hits = yield CallEither(store.similar, store.asimilar, (vector,), options)
                scored = []
                for hit in hits:
                    value = hit.value if isinstance(hit.value, Mapping) else {}
                    scored.append(
                        MemoryItem(
                            str(value.get("id") or hit.key),
                            str(value.get("text") or ""),
                            vector_tier.tier,
                            vector_tier.score(hit.score, value, now),
                            scope,
                            dict(value.get("metadata") or {}),
                        )
                    )
                scored.sort(key=lambda item: -item.score)
                found.extend(scored[:k])
        found.sort(key=lambda item: -item.score)
        return found[:k]

    def _clear(self, tier: str | None) -> Engine:
        where = f"ai.memory({self.name!r}).clear()"
        tiers = self.enabled if tier is None else (self._check_tier(where, tier),)
        for name in tiers:
            if name == "working":
                assert self.working is not None
                self.working.clear()
            else:
                vector_tier = self.vector_tiers[name]
                store = vector_tier.store
                yield CallEither(
                    store.remove_namespace, store.aremove_namespace, (vector_tier.namespace,)
                )

    def _embed_many(self, texts: list[str]) -> Engine:
        embedder = self.embedder
        many = getattr(embedder, "embed_many", None)
        if callable(many):
            result: Any = yield CallEither(many, getattr(embedder, "aembed_many", None), (texts,))
            vectors: list[Any] = list(getattr(result, "vectors", result))
        else:
            vectors = []
            for text in texts:
                one: Any = yield CallEither(
                    embedder.embed, getattr(embedder, "aembed", None), (text,)
                )
                vectors.append(list(getattr(one, "vector", one)))
        if len(vectors) != len(texts):
            raise CacheConfigurationError(
                f"ai.memory({self.name!r}): the embedder returned {len(vectors)} vectors for "
                f"{len(texts)} texts"
            )
        return [list(v or ()) for v in vectors]

    def _item(self, raw: Any) -> dict[str, Any]:
        where = f"ai.memory({self.name!r}).remember()"
        if isinstance(raw, str):
            raw = {"text": raw}
        if not isinstance(raw, Mapping):
            raise TypeError(f"{where}: an item is a string or a dict with 'text', got {raw!r}")
        unknown = sorted(set(raw) - _ITEM_KEYS)
        if unknown:
            raise ValueError(f"{where}: unknown item keys {unknown}; known: {sorted(_ITEM_KEYS)}")
        text = raw.get("text")
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"{where}: an item needs a non-empty 'text' string, got {text!r}")
        item_id = raw.get("id")
        if item_id is None:
            item_id = memory_id(text)
        elif not isinstance(item_id, str) or not item_id or len(item_id) > 200:
            raise ValueError(f"{where}: 'id' must be a string of 1 to 200 characters")
        tier = raw.get("tier") or self.default_tier
        tier = self._check_tier(where, tier)
        metadata = raw.get("metadata") or {}
        if not isinstance(metadata, Mapping):
            raise TypeError(f"{where}: 'metadata' must be a dict, got {metadata!r}")
        return {
            "id": item_id,
            "text": text,
            "tier": tier,
            "scope": _check_scope(where, raw.get("scope")),
            "metadata": dict(metadata),
        }

    def _check_tier(self, where: str, tier: str) -> str:
        if tier not in TIERS:
            raise ValueError(f"{where}: unknown tier {tier!r}; tiers: {', '.join(TIERS)}")
        if tier not in self.enabled:
            raise ValueError(
                f"{where}: tier {tier!r} is not enabled in this memory; enabled: "
                f"{', '.join(self.enabled)}"
            )
        return tier


def memory(
    *,
    name: str = "memory",
    working: bool | Mapping[str, Any] = True,
    semantic: bool | Mapping[str, Any] = False,
    episodic: bool | Mapping[str, Any] = False,
    procedural: bool | Mapping[str, Any] = False,
    embedder: Any = None,
    store: CacheDriver | None = None,
    k: int = 5,
    threshold: float = 0.7,
    default_tier: str = "working",
    now: Callable[[], float] | None = None,
) -> Memory:
    """A scoped memory. Each tier is ``True``, ``False`` or a dict of its options:
    ``working={"max_items": 1000}``, ``semantic={"store", "namespace"}``,
    ``episodic={"store", "namespace", "half_life" (seconds, 7 days), "recency_weight" (0.3)}``,
    ``procedural={"store", "namespace", "usage_weight" (0.3)}``. A vector tier's store defaults
    to ``store=``, then to ``ai.config(default_store=)`` (in Django ``WARLOCK_AI["CACHE"]``);
    the vector tiers need an ``embedder``. ``now`` (seconds) is for tests of recency.
    """
    return Memory(
        name=name,
        working=working,
        semantic=semantic,
        episodic=episodic,
        procedural=procedural,
        embedder=embedder,
        store=store,
        k=k,
        threshold=threshold,
        default_tier=default_tier,
        now=now,
    )


def _vector_tier(
    where: str, tier: str, options: Mapping[str, Any], store: CacheDriver | None
) -> VectorTier:
    own = options.get("store")
    found = similarity_store(where, f"the {tier} tier", own if own is not None else store)
    namespace = options.get("namespace", f"ai.memory.{tier}")
    if not isinstance(namespace, str) or not namespace or len(namespace) > 200:
        raise ValueError(f"{where}: the {tier} namespace must be a string of 1 to 200 characters")
    weight_key = {"episodic": "recency_weight", "procedural": "usage_weight"}.get(tier)
    weight = options.get(weight_key, DEFAULT_WEIGHT) if weight_key else 0.0
    if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0 <= weight <= 1:
        raise ValueError(f"{where}: {tier} {weight_key} must be a number from 0 to 1")
    half_life = options.get("half_life", DEFAULT_HALF_LIFE)
    if isinstance(half_life, bool) or not isinstance(half_life, int | float) or half_life <= 0:
        raise ValueError(f"{where}: episodic half_life must be a positive number of seconds")
    return VectorTier(tier, found, namespace, float(weight), float(half_life))


def _check_embedder(where: str, embedder: Any, tiers: Any) -> None:
    if embedder is None or not callable(getattr(embedder, "embed", None)):
        raise TypeError(
            f"{where}: the vector tiers need embedder= (an object with embed(text)), "
            f"got {embedder!r}"
        )
    for tier in tiers:
        check_dimensions(where, f"the {tier.tier} tier", embedder, tier.store)


def _check_k(where: str, k: Any) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise ValueError(f"{where}: k must be an integer >= 0, got {k!r}")
    return k


def _check_threshold(where: str, threshold: Any) -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, int | float):
        raise TypeError(f"{where}: threshold must be a number, got {threshold!r}")
    if not -1 <= threshold <= 1:
        raise ValueError(f"{where}: threshold must be a cosine score from -1 to 1")
    return float(threshold)


def _check_scope(where: str, scope: Any) -> str | None:
    if scope is None:
        return None
    if not isinstance(scope, str) or not scope or len(scope) > 255:
        raise ValueError(f"{where}: scope must be None or a string of 1 to 255 characters")
    return scope
