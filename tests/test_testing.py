"""The public fakes (reference 8): FakeModel's script, usage, delays, errors and thread-safe
call records; FakeEmbedder's determinism; scripted_agent."""

import asyncio
import math
import threading
import time

import pytest

import warlock_ai as ai
from warlock_ai.core.agents.agent import Agent
from warlock_ai.core.agents.messages import Message, ModelResponse, Price
from warlock_ai.core.agents.tools import tool
from warlock_ai.core.errors import ModelCallError
from warlock_ai.testing import FakeEmbedder, FakeModel, scripted_agent

USER = [Message("user", "hi")]


def test_responses_are_served_in_order_and_the_last_repeats():
    model = FakeModel(["one", "two"])
    replies = [model.complete(USER).content for _ in range(4)]
    assert replies == ["one", "two", "two", "two"]
    assert model.call_count == 4


def test_without_responses_it_replies_ok():
    model = FakeModel()
    reply = model.complete(USER)
    assert (reply.content, reply.finish_reason, reply.model) == ("ok", "stop", "fake-model")
    assert (model.name, model.provider) == ("fake-model", "fake")


def test_default_usage_is_ten_in_and_a_quarter_of_the_text_out():
    reply = FakeModel(["abcdefghi"]).complete(USER)  # 9 characters -> ceil(9 / 4) = 3
    assert reply.usage == ai.Usage(input=10, output=3, total=13)
    assert FakeModel([""]).complete(USER).usage == ai.Usage(input=10, output=0, total=10)


def test_given_usage_fills_defaults_and_recomputes_total():
    model = FakeModel(
        [
            {"content": "abcd", "usage": {"input": 100, "total": 999, "cached_tokens": 40}},
            {"content": "abcdefgh", "usage": {"output": 7}},
            {"content": "x", "usage": ai.Usage(input=5, output=6, total=0, reasoning_tokens=2)},
        ]
    )
    first, second, third = (model.complete(USER).usage for _ in range(3))
    assert first == ai.Usage(input=100, output=1, total=101, cached_tokens=40)
    assert second == ai.Usage(input=10, output=7, total=17)
    assert third == ai.Usage(input=5, output=6, total=11, reasoning_tokens=2)


def test_price_gives_each_reply_its_cost():
    model = FakeModel(["abcd"], price=Price(input=2.0, output=8.0))
    usage = model.complete(USER).usage  # 10 in, 1 out
    assert usage.cost == pytest.approx((10 * 2.0 + 1 * 8.0) / 1_000_000)


def test_tool_calls_default_the_finish_reason_and_get_ids():
    model = FakeModel(
        [
            {
                "tool_calls": [
                    {"name": "add", "arguments": {"a": 1}},
                    {"id": "mine", "name": "sub"},
                ]
            },
            {"content": "cut", "finish_reason": "length"},
        ]
    )
    calls = model.complete(USER)
    assert calls.finish_reason == "tool_calls"
    assert [(c.id, c.name, c.arguments) for c in calls.tool_calls] == [
        ("call_0_0", "add", {"a": 1}),
        ("mine", "sub", {}),
    ]
    assert model.complete(USER).finish_reason == "length"


def test_a_model_response_is_served_as_is():
    given = ModelResponse(content="exact", usage=ai.Usage(input=1, output=1, total=2))
    assert FakeModel([given]).complete(USER) is given


def test_errors_are_raised_a_string_as_model_call_error():
    model = FakeModel([{"error": "rate limited"}, {"error": TimeoutError("slow")}, "recovered"])
    with pytest.raises(ModelCallError) as raised:
        model.complete(USER)
    assert raised.value.message == "rate limited"
    assert (raised.value.provider, raised.value.model) == ("fake", "fake-model")
    with pytest.raises(TimeoutError):
        model.complete(USER)
    assert model.complete(USER).content == "recovered"
    assert model.call_count == 3


def test_unknown_response_keys_are_refused():
    with pytest.raises(ValueError, match="unknown keys"):
        FakeModel([{"text": "typo for content"}])


def test_delay_is_slept_in_complete_and_acomplete():
    model = FakeModel([{"content": "late", "delay": 0.05}])
    started = time.perf_counter()
    assert model.complete(USER).content == "late"
    assert time.perf_counter() - started >= 0.05

    async def concurrently():
        return await asyncio.gather(*(model.acomplete(USER) for _ in range(5)))

    started = time.perf_counter()
    replies = asyncio.run(concurrently())
    elapsed = time.perf_counter() - started
    assert [r.content for r in replies] == ["late"] * 5
    assert 0.05 <= elapsed < 0.2  # awaited with asyncio.sleep, so the five overlap


def test_call_history_records_messages_and_options():
    model = FakeModel()
    model.complete(USER, temperature=0, session_id="s-1")
    asyncio.run(model.acomplete([Message("user", "again")]))
    assert model.call_history == [
        (USER, {"temperature": 0, "session_id": "s-1"}),
        ([Message("user", "again")], {}),
    ]
    history = model.call_history
    history.clear()
    assert len(model.call_history) == 2  # a copy is handed out


def test_call_count_is_exact_under_threads():
    model = FakeModel([f"r{i}" for i in range(50)])
    barrier = threading.Barrier(8)
    replies = []
    lock = threading.Lock()

    def worker():
        barrier.wait()
        for _ in range(25):
            content = model.complete(USER).content
            with lock:
                replies.append(content)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert model.call_count == 200 and len(model.call_history) == 200
    # each scripted reply was served exactly once before the last one started repeating
    assert sorted(r for r in replies if r != "r49") == sorted(f"r{i}" for i in range(49))
    assert replies.count("r49") == 200 - 49


# --- FakeEmbedder --------------------------------------------------------------------------------


def test_embedder_is_deterministic_and_unit_norm():
    embedder = FakeEmbedder()
    first = embedder.embed("hello world")
    assert first.vector == FakeEmbedder().embed("hello world").vector
    assert first.dimensions == 4 and len(first.vector) == 4
    assert math.isclose(math.sqrt(sum(v * v for v in first.vector)), 1.0)
    assert embedder.embed("hello world").vector != embedder.embed("goodbye").vector
    assert first.usage == ai.Usage(input=3, total=3)


def test_embedder_buckets_characters_by_index():
    vector = FakeEmbedder(dimensions=2).vector("ab")  # bucket 0: ord("a"), bucket 1: ord("b")
    norm = math.hypot(97, 98)
    assert vector == pytest.approx([97 / norm, 98 / norm])
    assert FakeEmbedder(dimensions=3).vector("") == [0.0, 0.0, 0.0]


def test_embed_many_and_the_async_twins():
    embedder = FakeEmbedder(dimensions=8, name="tiny")
    many = embedder.embed_many(["a", "bb"])
    assert many.dimensions == 8 and many.vectors[1] == embedder.embed("bb").vector
    assert many.usage.input == 2
    assert asyncio.run(embedder.aembed("a")).vector == many.vectors[0]
    assert asyncio.run(embedder.aembed_many(["a", "bb"])).vectors == many.vectors
    assert (embedder.name, embedder.provider) == ("tiny", "fake")
    with pytest.raises(ValueError):
        FakeEmbedder(dimensions=0)


# --- scripted_agent ------------------------------------------------------------------------------


def test_scripted_agent_is_a_real_agent_on_a_fake_model():
    double = tool("double", lambda args: args["n"] * 2)
    helper = scripted_agent(
        [{"tool_calls": [{"name": "double", "arguments": {"n": 21}}]}, "42"],
        tools=[double],
        model_name="tiny-model",
        max_trips=2,
        system_prompt="Be exact.",
    )
    assert isinstance(helper, Agent) and isinstance(helper.model, FakeModel)
    assert (helper.name, helper.model.name, helper.max_trips) == ("scripted", "tiny-model", 2)
    result = helper.execute("double 21")
    assert result.text == "42" and result.messages[3].content == "42"
    assert helper.model.call_count == 2
    assert scripted_agent(name=None).is_anonymous
