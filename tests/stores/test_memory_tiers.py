"""``ai.memory(...)`` (reference 7): the four tiers, scopes, caps and the recall / remember /
clear contract; the vector tiers on every driver with similarity search (memory, LRU, and the
ORM driver on SQLite, PostgreSQL 16 + pgvector and PostgreSQL 15); the orchestrator's memory
hooks using it."""

from __future__ import annotations

from typing import Any

import pytest

import warlock_ai as ai
from tests.embedders import TopicEmbedder
from tests.stores.conftest import run_async
from warlock_ai import END
from warlock_ai.core.errors import CacheConfigurationError, CacheUnsupportedError


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def texts(items: list[ai.MemoryItem]) -> list[str]:
    return [item.text for item in items]


def one_tier(tier: str, store: Any, embedder: Any, options: Any = True, **more: Any) -> Any:
    """A memory with only ``tier`` enabled (the working tier off), on ``store``."""
    return ai.memory(
        working=False, store=store, embedder=embedder, default_tier=tier, **{tier: options}, **more
    )


# --- construction --------------------------------------------------------------------------


def test_construction_errors(store, embedder) -> None:
    ai.reset_config()
    with pytest.raises(ValueError, match="enable at least one tier"):
        ai.memory(working=False)
    with pytest.raises(CacheConfigurationError, match="semantic tier has no store"):
        ai.memory(semantic=True, embedder=embedder)
    with pytest.raises(ValueError, match="default_tier 'semantic' is not enabled"):
        ai.memory(default_tier="semantic")
    for bad in (0, -1, 1.5, True, "10"):
        with pytest.raises(ValueError, match="`max_items` must be an integer >= 1"):
            ai.memory(working={"max_items": bad})
    with pytest.raises(TypeError, match="need embedder"):
        ai.memory(semantic=True, store=store)
    with pytest.raises(CacheUnsupportedError, match="needs similarity search"):
        ai.memory(semantic={"store": ai.cache.file("/tmp/warlock-memory-test")}, embedder=embedder)
    with pytest.raises(CacheConfigurationError, match="dimension"):
        ai.memory(semantic=True, store=store, embedder=TopicEmbedder(store.dimensions + 1))
    with pytest.raises(ValueError, match="unknown keys"):
        ai.memory(episodic={"store": store, "halflife": 3}, embedder=embedder)
    ai.config(default_store=store)
    try:
        assert ai.memory(semantic=True, embedder=embedder).enabled == ("working", "semantic")
    finally:
        ai.reset_config()


def test_bad_items_and_recalls_are_refused_with_one_line() -> None:
    memory = ai.memory()
    for bad, message in [
        ({"text": ""}, "non-empty 'text'"),
        ({"text": "x", "colour": 1}, "unknown item keys"),
        ({"text": "x", "tier": "semantic"}, "tier 'semantic' is not enabled"),
        ({"text": "x", "tier": "dreams"}, "unknown tier"),
        (42, "a string or a dict"),
    ]:
        with pytest.raises((TypeError, ValueError), match=message):
            memory.remember(bad)
    with pytest.raises(ValueError, match="k must be an integer"):
        memory.recall("q", k=-1)
    with pytest.raises(ValueError, match="not enabled"):
        memory.recall("q", tier="episodic")


# --- working tier --------------------------------------------------------------------------


def test_working_tier_is_newest_first_scoped_and_ignores_the_query() -> None:
    memory = ai.memory(k=10)
    memory.remember(["first", "second", {"text": "alice's", "scope": "user:alice"}, "third"])
    found = memory.recall("anything at all")
    assert texts(found) == ["third", "second", "first"]
    assert [round(i.score, 3) for i in found] == [1.0, 0.667, 0.333]
    assert texts(memory.recall("q", scope="user:alice")) == ["alice's"]
    assert memory.recall("q", scope="user:alice")[0].score == 1.0
    assert texts(memory.recall("q", k=2)) == ["third", "second"]
    assert memory.recall("q", k=0) == []


def test_working_tier_cap_is_global_fifo_and_an_update_keeps_its_slot() -> None:
    memory = ai.memory(working={"max_items": 3}, k=10)
    memory.remember([{"text": "a", "id": "a"}, {"text": "b", "id": "b", "scope": "s"}])
    memory.remember({"text": "c", "id": "c"})
    memory.remember({"text": "a again", "id": "a"})  # in place: "a" stays the oldest
    memory.remember({"text": "d", "id": "d"})  # evicts the oldest inserted: "a"
    assert texts(memory.recall("q")) == ["d", "c"]
    assert texts(memory.recall("q", scope="s")) == ["b"]
    memory.clear()
    assert memory.recall("q") == [] and memory.recall("q", scope="s") == []


# --- vector tiers -------------------------------------------------------------------------


def test_semantic_tier_recalls_by_meaning_within_the_scope(store, embedder) -> None:
    memory = one_tier("semantic", store, embedder, threshold=0.5)
    ids = memory.remember(
        [
            {"text": "refunds take five days", "scope": "user:1", "metadata": {"source": "faq"}},
            {"text": "password resets go by email", "scope": "user:1"},
            {"text": "refunds need a receipt", "scope": "user:2"},
            "refund policy for everyone",
        ]
    )
    assert len(ids) == 4 and len(set(ids)) == 4
    found = memory.recall("how long does a refund take?", scope="user:1")
    assert texts(found) == ["refunds take five days"]
    assert found[0].tier == "semantic" and found[0].scope == "user:1"
    assert found[0].metadata == {"source": "faq"} and 0.5 <= found[0].score <= 1.0
    assert texts(memory.recall("refund", scope="user:2")) == ["refunds need a receipt"]
    assert texts(memory.recall("refund")) == ["refund policy for everyone"]  # no wildcard
    assert memory.recall("refund", scope="user:3") == []
    memory.remember({"text": "refunds take five days", "scope": "user:1"})  # same id: in place
    assert len(memory.recall("refund", scope="user:1", threshold=0.0, k=10)) == 2


def test_episodic_tier_prefers_recent_events(store, embedder) -> None:
    clock = Clock()
    memory = one_tier("episodic", store, embedder, {"half_life": 3600}, threshold=0.0, now=clock)
    memory.remember({"text": "asked about a refund", "id": "old"})
    clock.now += 7200  # two half-lives later
    memory.remember({"text": "asked about a refund again", "id": "new"})
    found = memory.recall("refund")
    assert [item.id for item in found] == ["new", "old"]
    assert found[0].score - found[1].score == pytest.approx(0.3 * (1 - 0.25), abs=0.02)


def test_procedural_tier_counts_uses_and_keeps_metadata(store, embedder) -> None:
    memory = one_tier("procedural", store, embedder, threshold=0.0)
    how = {"text": "to refund: open the order, press refund", "id": "refund-howto"}
    memory.remember({**how, "metadata": {"owner": "ops"}})
    memory.remember(how)
    memory.remember(how)
    memory.remember({"text": "to refund a parcel: call the courier", "id": "rare"})
    found = memory.recall("refund")
    assert found[0].id == "refund-howto" and found[0].metadata == {"owner": "ops"}
    value = store.get("refund-howto", namespace="ai.memory.procedural")
    assert value["uses"] == 3


def test_recall_merges_tiers_by_score_and_clear_empties_a_tier(store, embedder) -> None:
    memory = ai.memory(
        semantic=True, episodic=True, store=store, embedder=embedder, threshold=0.5, k=3
    )
    memory.remember(
        [
            {"text": "refund facts", "tier": "semantic", "scope": "s"},
            {"text": "refund event", "tier": "episodic", "scope": "s"},
            {"text": "scratch note", "scope": "s"},
        ]
    )
    found = memory.recall("refund", scope="s")
    assert {i.tier for i in found} == {"semantic", "episodic", "working"}
    assert [i.score for i in found] == sorted((i.score for i in found), reverse=True)
    assert texts(memory.recall("refund", scope="s", tier="semantic")) == ["refund facts"]
    memory.clear("semantic")
    assert {i.tier for i in memory.recall("refund", scope="s")} == {"episodic", "working"}
    memory.clear()
    assert memory.recall("refund", scope="s") == []


def test_async_twins(store, embedder) -> None:
    memory = one_tier("semantic", store, embedder, threshold=0.5)

    async def scenario() -> list[str]:
        await memory.aremember({"text": "refunds take five days", "scope": "a"})
        found = await memory.arecall("refund", scope="a")
        await memory.aclear("semantic")
        return texts(found) + texts(await memory.arecall("refund", scope="a"))

    assert run_async(scenario()) == ["refunds take five days"]


# --- the orchestrator ----------------------------------------------------------------------


def test_the_orchestrator_remembers_turns_and_recalls_them_per_session(store, embedder) -> None:
    memory = one_tier("semantic", store, embedder, threshold=0.5)
    seen: list[Any] = []

    def answer(ctx: Any) -> dict[str, Any]:
        seen.append([m["text"] for m in ctx.context.get("memories", [])])
        return {"answer": "noted"}

    orch = ai.orchestrator(
        name="mem-desk",
        intents={"answer": ai.intent(answer, description="d", next=lambda c: END)},
        route=lambda ctx: "answer",
        checkpoint_store=ai.checkpoint.memory(),
        memory=memory,
    )
    orch.execute("my refund is late", session_id="alice")
    orch.execute("my refund again", session_id="bob")
    orch.execute("what about my refund?", session_id="alice")
    assert seen[0] == [] and seen[1] == []
    assert len(seen[2]) == 1 and seen[2][0].startswith("my refund is late")
    stored = memory.recall("refund", scope="session:alice", threshold=0.0, k=10)
    assert len(stored) == 2 and all(item.scope == "session:alice" for item in stored)
