"""``ai.middleware.semantic_cache`` (reference 6.2 and what we add to it) on every cache driver
with similarity search: memory, LRU, and the ORM driver on SQLite, PostgreSQL 16 + pgvector and
PostgreSQL 15 without it. The model is a scripted ``FakeModel``: a call that reaches it shows
in ``call_count``."""

from __future__ import annotations

import time
from typing import Any

import pytest

import warlock_ai as ai
from tests.embedders import TopicEmbedder
from tests.stores.conftest import run_async
from warlock_ai.core.errors import CacheConfigurationError, CacheUnsupportedError
from warlock_ai.testing import FakeModel


def cached_agent(
    store: Any,
    embedder: Any,
    responses: list[Any] | None = None,
    *,
    model_name: str = "fake",
    system_prompt: str | None = "You answer support questions.",
    tools: Any = (),
    output: Any = None,
    **options: Any,
) -> tuple[Any, FakeModel]:
    model = FakeModel(responses or ["answer 1", "answer 2", "answer 3"], name=model_name)
    options.setdefault("threshold", 0.9)
    cache = ai.middleware.semantic_cache(embedder=embedder, store=store, **options)
    agent = ai.agent(
        name="support",
        model=model,
        system_prompt=system_prompt,
        middleware=[cache],
        tools=tools,
        output=output,
    )
    return agent, model


def tier(result: Any) -> str | None:
    cached = result.report.trips[0].cached
    return cached["tier"] if cached else None


def test_exact_tier_answers_the_same_messages_without_calling_the_model(store, embedder) -> None:
    agent, model = cached_agent(store, embedder)
    first = agent.execute("How do I get a refund?", session_id="s1")
    second = agent.execute("How do I get a refund?", session_id="s1")
    assert (first.text, second.text) == ("answer 1", "answer 1")
    assert model.call_count == 1
    assert tier(first) is None and tier(second) == "exact"
    assert second.usage.total == 0 and second.report.trips[0].cached["usage"]["total"] > 0


def test_vector_tier_answers_a_paraphrase_and_not_another_topic(store, embedder) -> None:
    agent, model = cached_agent(store, embedder)
    agent.execute("How do I get a refund?", session_id="s1")
    paraphrase = agent.execute("Can I have my money back as a refund, please?", session_id="s1")
    other = agent.execute("I forgot my password", session_id="s1")
    assert paraphrase.text == "answer 1" and tier(paraphrase) == "vector"
    assert paraphrase.report.trips[0].cached["score"] >= 0.9
    assert other.text == "answer 2" and tier(other) is None
    assert model.call_count == 2


def test_a_session_never_reads_another_sessions_entries(store, embedder) -> None:
    agent, model = cached_agent(store, embedder)
    agent.execute("How do I get a refund?", session_id="alice")
    bob = agent.execute("How do I get a refund?", session_id="bob")
    bob_paraphrase = agent.execute("refund money please", session_id="bob")
    unscoped = agent.execute("How do I get a refund?")
    assert bob.text == "answer 2" and tier(bob) is None
    assert tier(bob_paraphrase) == "vector" and bob_paraphrase.text == "answer 2"
    assert unscoped.text == "answer 3" and tier(unscoped) is None
    assert model.call_count == 3
    # The driver itself refuses other scopes: alice's entry is invisible to bob's query.
    vector = embedder.vector("How do I get a refund?")
    found = store.similar(vector, namespace="ai.cache", top_k=10, threshold=0.5, scope="x")
    assert found == []
    scopes = {hit.scope for hit in _all_hits(store, embedder)}
    assert scopes == {"session:alice", "session:bob", None}


def _all_hits(store: Any, embedder: Any) -> list[Any]:
    """Every entry of the default namespace with its scope (rows, or the memory driver's)."""
    if hasattr(store, "using"):
        from warlock_ai.models import CacheEntry

        rows = CacheEntry.objects.using(store.using).filter(namespace="ai.cache")
        return [ai.cache.CacheHit(r.key, r.value, 1.0, r.scope) for r in rows]
    scopes = {entry.scope for (ns, _), entry in store._entries.items() if ns == "ai.cache"}
    vector = embedder.vector("refund")
    hits: list[Any] = []
    for scope in scopes:
        hits += store.similar(vector, namespace="ai.cache", top_k=100, scope=scope)
    return hits


def test_shared_and_callable_scopes(store, embedder) -> None:
    agent, model = cached_agent(store, embedder, scope="shared")
    agent.execute("How do I get a refund?", session_id="alice")
    assert agent.execute("How do I get a refund?", session_id="bob").text == "answer 1"
    tenant = ai.middleware.semantic_cache(
        embedder=embedder,
        store=store,
        threshold=0.9,
        scope=lambda ctx: ctx.options["context"]["tenant"],
        namespace="tenants",
    )
    model = FakeModel(["acme answer", "globex answer"])
    agent = ai.agent(name="support", model=model, middleware=[tenant])
    agent.execute("refund?", context={"tenant": "acme"}, session_id="1")
    assert agent.execute("refund?", context={"tenant": "acme"}, session_id="2").text == (
        "acme answer"
    )
    assert agent.execute("refund?", context={"tenant": "globex"}).text == "globex answer"


def test_a_tool_loops_final_answer_is_stored_under_the_first_prompt(store, embedder) -> None:
    runs: list[Any] = []
    lookup = ai.tool(
        name="lookup",
        description="look an order up",
        parameters={"type": "object", "properties": {"id": {"type": "string"}}},
        run=lambda args: runs.append(args) or {"status": "shipped"},
    )
    responses = [
        {"tool_calls": [{"name": "lookup", "arguments": {"id": "7"}}]},
        "Order 7 has shipped.",
        "should not be called",
    ]
    agent, model = cached_agent(store, embedder, responses, tools=[lookup])
    first = agent.execute("Where is my parcel, order 7?", session_id="s")
    second = agent.execute("Where is my parcel, order 7?", session_id="s")
    assert first.text == second.text == "Order 7 has shipped."
    assert model.call_count == 2 and len(runs) == 1  # trip 0 was answered: no tool ran again
    assert tier(second) == "exact" and len(second.report.trips) == 1


def test_only_the_first_trip_is_answered_from_the_cache(store, embedder) -> None:
    """A follow-up trip of a tool loop is never short-circuited, even when its messages
    would match an entry."""
    echo = ai.tool(name="echo", description="d", parameters={"type": "object"}, run=lambda a: 1)
    agent, model = cached_agent(
        store,
        embedder,
        [{"tool_calls": [{"name": "echo", "arguments": {}}]}, "final"],
        tools=[echo],
        scope="shared",
    )
    agent.execute("refund question", session_id="s")
    assert model.call_count == 2
    model2 = FakeModel([{"tool_calls": [{"name": "echo", "arguments": {}}]}, "fresh final"])
    agent2 = ai.agent(
        name="support",
        model=model2,
        tools=[echo],
        system_prompt="You answer support questions.",
        middleware=agent.middleware,
    )
    result = agent2.execute("a password question", session_id="s")
    assert result.text == "fresh final" and model2.call_count == 2
    assert all(trip.cached is None for trip in result.report.trips)


@pytest.mark.parametrize(
    "reply",
    [
        {"content": "", "refusal": "I can't help with that."},
        {"content": "I cannot", "finish_reason": "content_filter"},
        {"content": "cut sho", "finish_reason": "length"},
        {"content": "   "},
    ],
    ids=["refusal", "content-filter", "truncated", "empty"],
)
def test_refusals_and_incomplete_answers_are_never_stored(store, embedder, reply) -> None:
    agent, model = cached_agent(store, embedder, [reply, "a real answer"])
    agent.execute("How do I get a refund?", session_id="s")
    again = agent.execute("How do I get a refund?", session_id="s")
    assert again.text == "a real answer" and tier(again) is None and model.call_count == 2


def test_failed_executions_are_never_stored(store, embedder) -> None:
    agent, model = cached_agent(store, embedder, [{"error": "HTTP 503"}, "recovered"])
    failed = agent.execute("How do I get a refund?", session_id="s")
    assert failed.error is not None
    assert agent.execute("How do I get a refund?", session_id="s").text == "recovered"
    schema = {"type": "object", "required": ["ok"], "properties": {"ok": {"type": "boolean"}}}
    agent, model = cached_agent(store, embedder, ["not json", '{"ok": true}'], output=schema)
    assert agent.execute("refund?", session_id="t").error is not None
    result = agent.execute("refund?", session_id="t")
    assert result.data == {"ok": True} and model.call_count == 2
    tools_forever = ai.tool(name="t", description="d", parameters={"type": "object"}, run=len)
    model = FakeModel([{"tool_calls": [{"name": "t", "arguments": {}}]}])
    cache = ai.middleware.semantic_cache(embedder=embedder, store=store, threshold=0.9)
    looping = ai.agent(
        name="l", model=model, tools=[tools_forever], max_trips=2, middleware=[cache]
    )
    assert looping.execute("refund loop", session_id="u").error is not None
    assert looping.execute("refund loop", session_id="u").report.trips[0].cached is None


def test_a_new_model_prompt_agent_or_version_never_serves_old_answers(store, embedder) -> None:
    agent, _ = cached_agent(store, embedder, ["v1 answer"])
    agent.execute("How do I get a refund?", session_id="s")

    def fresh(**changes: Any) -> Any:
        other, model = cached_agent(store, embedder, ["new answer"], **changes)
        exact = other.execute("How do I get a refund?", session_id="s")
        vector = other.execute("refund refund money", session_id="s")
        return exact.text, vector.text, model.call_count

    assert fresh() == ("v1 answer", "v1 answer", 0)  # the same setup is served
    assert fresh(model_name="bigger") == ("new answer", "new answer", 1)
    assert fresh(system_prompt="You answer in French.") == ("new answer", "new answer", 1)
    assert fresh(version="prompt-2") == ("new answer", "new answer", 1)
    echo = ai.tool(name="echo", description="d", parameters={"type": "object"}, run=len)
    assert fresh(tools=[echo]) == ("new answer", "new answer", 1)


def test_match_conversation_needs_the_same_history(store, embedder) -> None:
    history_a = [
        {"role": "user", "content": "my parcel is late"},
        {"role": "assistant", "content": "sorry"},
    ]
    history_b = [
        {"role": "user", "content": "my password fails"},
        {"role": "assistant", "content": "ok"},
    ]
    agent, model = cached_agent(store, embedder, ["A", "B", "C"])
    agent.execute("refund me", history=history_a, session_id="s")
    assert agent.execute("refund me please", history=history_a, session_id="s").text == "A"
    assert agent.execute("refund me", history=history_b, session_id="s").text == "B"
    assert model.call_count == 2
    loose, _ = cached_agent(store, embedder, ["X"], match="prompt", namespace="loose")
    loose.execute("refund me", history=history_a, session_id="s")
    assert loose.execute("refund me please", history=history_b, session_id="s").text == "X"


def test_ttl_expires_entries(store, embedder) -> None:
    agent, model = cached_agent(store, embedder, ttl=0.3)
    agent.execute("How do I get a refund?", session_id="s")
    assert agent.execute("How do I get a refund?", session_id="s").text == "answer 1"
    time.sleep(0.4)
    assert agent.execute("How do I get a refund?", session_id="s").text == "answer 2"
    assert model.call_count == 2


def test_the_negation_guard_rejects_opposite_polarity(store, embedder) -> None:
    """The topic embedder puts "refund my order" and "do not refund my order" on the same
    vector, as real embedders nearly do: only the guard tells them apart."""
    plain, _ = cached_agent(store, embedder, ["refunded", "kept"], namespace="plain")
    plain.execute("Please refund my order", session_id="s")
    assert plain.execute("Please do not refund my order", session_id="s").text == "refunded"
    guarded, model = cached_agent(
        store, embedder, ["refunded", "kept"], guard=True, namespace="guarded"
    )
    guarded.execute("Please refund my order", session_id="s")
    negated = guarded.execute("Please do not refund my order", session_id="s")
    assert negated.text == "kept" and tier(negated) is None
    same_polarity = guarded.execute("Refund my order, please", session_id="s")
    assert same_polarity.text == "refunded" and tier(same_polarity) == "vector"
    custom, _ = cached_agent(
        store, embedder, ["one", "two"], guard=lambda q, c: False, namespace="custom"
    )
    custom.execute("refund", session_id="s")
    assert custom.execute("refund please", session_id="s").text == "two"
    assert model.call_count == 2


def test_async_execution_shares_the_cache(store, embedder) -> None:
    agent, model = cached_agent(store, embedder)
    first = run_async(agent.aexecute("How do I get a refund?", session_id="s"))
    second = agent.execute("refund money", session_id="s")
    third = run_async(agent.aexecute("How do I get a refund?", session_id="s"))
    assert first.text == second.text == third.text == "answer 1"
    assert (tier(second), tier(third)) == ("vector", "exact") and model.call_count == 1


def test_an_embedder_failure_falls_back_to_the_exact_tier_and_the_model(store) -> None:
    class DownEmbedder(TopicEmbedder):
        def embed(self, text: str) -> Any:
            raise ConnectionError("embedding service unreachable")

    agent, model = cached_agent(store, DownEmbedder(store.dimensions))
    assert agent.execute("refund?", session_id="s").text == "answer 1"
    assert agent.execute("refund?", session_id="s").text == "answer 1"  # exact tier
    assert agent.execute("refund money?", session_id="s").text == "answer 2"
    assert model.call_count == 2


def test_construction_refuses_bad_options(store, embedder) -> None:
    make = ai.middleware.semantic_cache
    ai.reset_config()
    with pytest.raises(CacheConfigurationError, match="no cache store"):
        make(embedder=embedder)
    with pytest.raises(CacheUnsupportedError, match="no similarity search"):
        make(embedder=embedder, store=ai.cache.file("/tmp/warlock-semantic-test"))
    with pytest.raises(ValueError, match="threshold must be above 0"):
        make(embedder=embedder, store=store, threshold=1.5)
    with pytest.raises(ValueError, match="scope must be"):
        make(embedder=embedder, store=store, scope="everyone")
    with pytest.raises(CacheConfigurationError, match="must be True, False, None or a callable"):
        make(embedder=embedder, store=store, guard="yes")
    with pytest.raises(ValueError, match="match must be"):
        make(embedder=embedder, store=store, match="fuzzy")
    with pytest.raises(TypeError, match="embedder must have embed"):
        make(embedder=object(), store=store)
    with pytest.raises(CacheConfigurationError, match="dimension"):
        make(embedder=TopicEmbedder(store.dimensions + 1), store=store)
    ai.config(default_store=store)
    try:
        assert make(embedder=embedder).name == "semantic-cache"
    finally:
        ai.reset_config()


@pytest.mark.django_db(databases=["pg"], transaction=True)
@pytest.mark.services
def test_hits_are_counted_on_the_entry() -> None:
    from warlock_ai.models import CacheEntry

    store = ai.cache.db(using="pg")
    agent, _ = cached_agent(store, TopicEmbedder(store.dimensions))
    agent.execute("How do I get a refund?", session_id="s")
    agent.execute("How do I get a refund?", session_id="s")
    agent.execute("refund money", session_id="s")
    entry = CacheEntry.objects.using("pg").get(namespace="ai.cache")
    assert entry.hits == 2
    assert entry.scope == "session:s" and entry.value["partition"].startswith("fake/fake:")
    assert entry.value["prompt"] == "How do I get a refund?"
    assert entry.value["response"]["content"] == "answer 1"


def test_a_nearer_entry_of_another_model_is_passed_over_for_this_models(store, embedder) -> None:
    old, _ = cached_agent(store, embedder, ["old model's answer"], model_name="old")
    old.execute("refund money please", session_id="s")
    new, model = cached_agent(store, embedder, ["new model's answer", "unused"], model_name="new")
    new.execute("refund please", session_id="s")
    # The old model's entry is the nearest (the same text); the search looks further.
    again = new.execute("refund money please", session_id="s")
    assert again.text == "new model's answer" and tier(again) == "vector"
    assert model.call_count == 1
