"""OpenAIModel and OpenAIEmbedder against a real local server speaking the OpenAI API."""

from __future__ import annotations

import json
import socket
import threading
import time

import httpx
import pytest

from tests.providers.conftest import API_KEY
from tests.providers.server import EMBEDDINGS, usage
from warlock_ai.core.agents.messages import Embedder, Message, Model, Price, ToolCall
from warlock_ai.core.errors import AgentCancelledError, ModelCallError
from warlock_ai.core.runs.cancel import CancelToken
from warlock_ai.core.runs.usage import Usage
from warlock_ai.providers import price_for
from warlock_ai.providers.openai import OpenAIModel
from warlock_ai.providers.pricing import PRICES

WEATHER_TOOL = {
    "name": "weather",
    "description": "Current weather in a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


# --- chat ---------------------------------------------------------------------------------


def test_text_reply_with_usage_and_cost_from_price_table(openai_server, make_model):
    openai_server.text(
        "Hello!",
        usage=usage(prompt=1000, completion=200, cached=400, reasoning=50),
        model="gpt-4o-mini-2024-07-18",
    )
    model = make_model("gpt-4o-mini")

    reply = model.complete([Message("system", "Be brief."), Message("user", "Hi")])

    assert isinstance(model, Model) and model.provider == "openai"
    assert reply.content == "Hello!"
    assert reply.finish_reason == "stop"
    assert reply.model == "gpt-4o-mini-2024-07-18"
    assert reply.tool_calls == ()
    # 600 fresh input tokens at $0.15/M, 400 cached at $0.075/M, 200 output at $0.60/M.
    expected_cost = (600 * 0.15 + 400 * 0.075 + 200 * 0.60) / 1_000_000
    assert reply.usage == Usage(
        input=1000,
        output=200,
        total=1200,
        cached_tokens=400,
        reasoning_tokens=50,
        cost=pytest.approx(expected_cost),
    )
    (request,) = openai_server.requests
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert request.body == {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
        ],
    }


def test_unpriced_model_costs_nothing_and_price_overrides(openai_server, make_model):
    openai_server.text("a", usage=usage(prompt=10, completion=10))
    openai_server.text("b", usage=usage(prompt=1_000_000, completion=0))

    assert make_model("my-local-llama").complete([Message("user", "x")]).usage.cost == 0.0
    priced = make_model("my-local-llama", price=Price(input=2.0, output=1.0))
    assert priced.complete([Message("user", "x")]).usage.cost == pytest.approx(2.0)


def test_tool_call_round_trip_wire_format(openai_server, make_model):
    openai_server.tool_calls(("call_1", "weather", {"city": "Paris"}), usage=usage(50, 10))
    openai_server.text("It is sunny in Paris.", usage=usage(80, 8))
    model = make_model()
    messages = [Message("user", "Weather in Paris?")]

    first = model.complete(messages, tools=[WEATHER_TOOL])
    assert first.finish_reason == "tool_calls"
    assert first.tool_calls == (ToolCall("call_1", "weather", {"city": "Paris"}),)

    messages += [
        Message("assistant", "", tool_calls=first.tool_calls),
        Message("tool", '{"sky": "sunny"}', tool_call_id="call_1", name="weather"),
    ]
    final = model.complete(messages, tools=[WEATHER_TOOL])
    assert final.content == "It is sunny in Paris."

    sent = openai_server.bodies()
    assert sent[0]["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "weather",
                "description": "Current weather in a city.",
                "parameters": WEATHER_TOOL["parameters"],
            },
        }
    ]
    assert sent[1]["messages"][1:] == [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "content": '{"sky": "sunny"}', "tool_call_id": "call_1"},
    ]


def test_response_format_and_options_sent_unknown_options_ignored(openai_server, make_model):
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}}
    openai_server.text('{"answer": "42"}')
    model = make_model(extra_body={"seed": 7, "temperature": 1.5})

    reply = model.complete(
        [Message("user", "?")],
        response_format=schema,
        temperature=0.2,
        max_tokens=64,
        session_id="s-1",
        cancel=CancelToken(),
    )

    assert json.loads(reply.content) == {"answer": "42"}
    (body,) = openai_server.bodies()
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": schema, "strict": False},
    }
    assert (body["temperature"], body["max_tokens"], body["seed"]) == (0.2, 64, 7)
    assert "session_id" not in body and "cancel" not in body


def test_malformed_tool_arguments_fail_naming_the_tool(openai_server, make_model):
    openai_server.tool_calls(("call_9", "weather", '{"city": "Par'))

    with pytest.raises(ModelCallError) as caught:
        make_model().complete([Message("user", "?")], tools=[WEATHER_TOOL])

    assert caught.value.retryable is False
    assert "'weather'" in str(caught.value) and "not JSON" in str(caught.value)
    assert len(openai_server.requests) == 1


# --- retries ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header", [{"Retry-After": "0.3"}, {"retry-after-ms": "300"}], ids=["seconds", "ms"]
)
def test_retries_429_honouring_retry_after(openai_server, make_model, header):
    openai_server.error(429, "Rate limit reached", headers=header)
    openai_server.text("ok")

    reply = make_model(backoff=0.001).complete([Message("user", "?")])

    assert reply.content == "ok"
    first, second = openai_server.requests
    assert second.at - first.at >= 0.29


def test_503_then_success_counts_attempts(openai_server, make_model):
    openai_server.error(503, "overloaded", times=2)
    openai_server.text("finally")

    assert make_model(max_retries=3).complete([Message("user", "?")]).content == "finally"
    assert len(openai_server.requests) == 3


def test_gives_up_after_max_retries_as_retryable(openai_server, make_model):
    openai_server.error(500, "The server had an error", times=10)

    with pytest.raises(ModelCallError) as caught:
        make_model(max_retries=2).complete([Message("user", "?")])

    error = caught.value
    assert (error.retryable, error.status, error.provider, error.model) == (
        True,
        500,
        "openai",
        "gpt-4o-mini",
    )
    assert "HTTP 500: The server had an error" in error.message
    assert "3 attempts" in error.message
    assert len(openai_server.requests) == 3


@pytest.mark.parametrize(
    ("status", "api_message"),
    [
        (400, "Invalid value for 'temperature': must be at most 2."),
        (404, "The model `gpt-4o-mini` does not exist or you do not have access to it."),
        (422, "Unprocessable entity"),
    ],
)
def test_client_errors_are_not_retried(openai_server, make_model, status, api_message):
    openai_server.error(status, api_message, times=3)

    with pytest.raises(ModelCallError) as caught:
        make_model().complete([Message("user", "?")])

    error = caught.value
    assert (error.retryable, error.status) == (False, status)
    assert f"HTTP {status}: {api_message}" in error.message
    assert "'gpt-4o-mini'" in error.message and "\n" not in error.message
    assert len(openai_server.requests) == 1


def test_401_says_check_the_key_and_never_prints_it(openai_server, make_model):
    secret = "sk-wrong-secret-987654321"  # the server echoes it back in full

    with pytest.raises(ModelCallError) as caught:
        make_model(api_key=secret).complete([Message("user", "?")])

    error = caught.value
    assert (error.retryable, error.status) == (False, 401)
    assert "HTTP 401: Incorrect API key provided" in error.message
    assert "check the API key" in error.message
    for text in (str(error), repr(error), json.dumps(error.to_dict())):
        assert secret not in text
    assert len(openai_server.requests) == 1


def test_exhausted_quota_429_is_not_retried(openai_server, make_model):
    openai_server.error(429, "You exceeded your current quota.", code="insufficient_quota")

    with pytest.raises(ModelCallError) as caught:
        make_model().complete([Message("user", "?")])

    assert (caught.value.retryable, caught.value.status) == (False, 429)
    assert "You exceeded your current quota." in caught.value.message
    assert len(openai_server.requests) == 1


def test_timeout_is_retryable_after_retries(openai_server, make_model):
    openai_server.slow(2.0, times=3)

    started = time.monotonic()
    with pytest.raises(ModelCallError) as caught:
        make_model(timeout=0.1, max_retries=2).complete([Message("user", "?")])

    assert caught.value.retryable is True and caught.value.status is None
    assert "timeout=0.1s" in caught.value.message
    assert isinstance(caught.value.cause, httpx.TimeoutException)
    assert len(openai_server.requests) == 3
    assert time.monotonic() - started < 1.5


def test_dropped_connection_is_retried(openai_server, make_model):
    openai_server.drop()
    openai_server.text("after reconnect")

    assert make_model().complete([Message("user", "?")]).content == "after reconnect"
    assert len(openai_server.requests) == 2


def test_unreachable_server_is_a_retryable_error():
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    model = OpenAIModel("gpt-4o-mini", base_url=f"http://127.0.0.1:{port}/v1", backoff=0.001)

    with pytest.raises(ModelCallError) as caught:
        model.complete([Message("user", "?")])

    assert caught.value.retryable is True
    assert f"cannot reach http://127.0.0.1:{port}/v1" in caught.value.message
    model.close()


# --- cancellation -------------------------------------------------------------------------


def test_cancel_during_backoff_stops_promptly(openai_server, make_model):
    openai_server.error(503, "overloaded", headers={"Retry-After": "30"}, times=5)
    token = CancelToken()

    def cancel_after_first_request() -> None:
        openai_server.wait_for_requests(1)
        token.cancel("user pressed stop")

    threading.Thread(target=cancel_after_first_request, daemon=True).start()
    started = time.monotonic()
    with pytest.raises(AgentCancelledError) as caught:
        make_model().complete([Message("user", "?")], cancel=token)

    assert time.monotonic() - started < 2.0
    assert caught.value.reason == "user pressed stop"
    assert "user pressed stop" in caught.value.message
    assert len(openai_server.requests) == 1


def test_cancelled_token_sends_nothing(openai_server, make_model):
    token = CancelToken()
    token.cancel("too late")

    with pytest.raises(AgentCancelledError):
        make_model().complete([Message("user", "?")], cancel=token)

    assert openai_server.requests == []


# --- embeddings ---------------------------------------------------------------------------


def test_embed_single_infers_dimensions_and_costs(openai_server, make_embedder):
    openai_server.embeddings()
    embedder = make_embedder("local-embed", price=Price(input=1.0, output=0.0))
    assert isinstance(embedder, Embedder) and embedder.dimensions == 0

    embedding = embedder.embed("three little words")

    assert embedding.vector == [18.0, 0.0, 1.0, 0.0]
    assert embedding.dimensions == embedder.dimensions == 4
    assert embedding.usage.input == 3 and embedding.usage.cost == pytest.approx(3e-6)
    assert openai_server.bodies(EMBEDDINGS) == [
        {"model": "local-embed", "input": ["three little words"]}
    ]


def test_embed_many_keeps_input_order_by_index(openai_server, make_embedder):
    openai_server.embeddings()
    texts = ["a", "bb", "ccc", "dddd"]
    embedder = make_embedder()
    assert embedder.dimensions == 1536

    result = embedder.embed_many(texts)

    assert [vector[:2] for vector in result.vectors] == [
        [1.0, 0.0],
        [2.0, 1.0],
        [3.0, 2.0],
        [4.0, 3.0],
    ]
    assert len(openai_server.requests) == 1
    assert result.usage.cost == pytest.approx(4 * PRICES["text-embedding-3-small"].input / 1e6)
    assert embedder.embed_many([]).vectors == []


def test_dimensions_are_sent_when_given(openai_server, make_embedder):
    openai_server.embeddings()
    embedder = make_embedder("text-embedding-3-large", dimensions=8)

    result = embedder.embed_many(["x"])

    assert openai_server.bodies(EMBEDDINGS)[0]["dimensions"] == 8
    assert result.dimensions == 8 and len(result.vectors[0]) == 8


def test_embeddings_retry_like_chat(openai_server, make_embedder):
    openai_server.error(429, "slow down", path=EMBEDDINGS)
    openai_server.embeddings()

    assert make_embedder().embed("x").vector[0] == 1.0
    assert len(openai_server.requests) == 2


# --- async twins --------------------------------------------------------------------------


async def test_acomplete_retries_then_replies(openai_server, make_model):
    openai_server.error(502, "bad gateway")
    openai_server.tool_calls(("c1", "weather", {"city": "Oslo"}), usage=usage(5, 5))
    model = make_model()

    reply = await model.acomplete([Message("user", "Oslo?")], tools=[WEATHER_TOOL])

    assert reply.tool_calls == (ToolCall("c1", "weather", {"city": "Oslo"}),)
    assert reply.usage.total == 10
    assert len(openai_server.requests) == 2
    await model.aclose()


async def test_acomplete_cancel_during_backoff(openai_server, make_model):
    openai_server.error(429, "rate limited", headers={"Retry-After": "30"}, times=5)
    token = CancelToken()
    model = make_model()
    threading.Thread(
        target=lambda: openai_server.wait_for_requests(1) and token.cancel("shutdown"),
        daemon=True,
    ).start()

    started = time.monotonic()
    with pytest.raises(AgentCancelledError):
        await model.acomplete([Message("user", "?")], cancel=token)

    assert time.monotonic() - started < 2.0
    await model.aclose()


async def test_aembed_and_aembed_many(openai_server, make_embedder):
    openai_server.embeddings(times=2)
    embedder = make_embedder()

    many = await embedder.aembed_many(["one", "two words"])
    single = await embedder.aembed("solo")

    assert [vector[0] for vector in many.vectors] == [3.0, 9.0]
    assert single.vector[0] == 4.0 and single.dimensions == 4
    await embedder.aclose()


# --- configuration ------------------------------------------------------------------------


def test_environment_supplies_key_and_base_url(openai_server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", openai_server.base_url + "/")
    openai_server.text("from env")
    model = OpenAIModel("gpt-4o-mini")

    assert model.base_url == openai_server.base_url
    assert model.complete([Message("user", "?")]).content == "from env"
    model.close()


def test_given_client_is_used_and_left_open(openai_server):
    openai_server.text("via my client")
    client = httpx.Client(headers={"X-Tenant": "acme"})
    model = OpenAIModel(
        "gpt-4o-mini", api_key=API_KEY, base_url=openai_server.base_url, client=client
    )

    assert model.complete([Message("user", "?")]).content == "via my client"
    model.close()

    assert not client.is_closed
    assert openai_server.requests[0].headers["x-tenant"] == "acme"
    client.close()


def test_threads_share_one_lazily_created_client(openai_server, make_model):
    model = make_model()
    for _ in range(8):
        openai_server.text("hi")
    clients, replies = set(), []

    def call() -> None:
        replies.append(model.complete([Message("user", "?")]).content)
        clients.add(id(model._client))

    threads = [threading.Thread(target=call) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert replies == ["hi"] * 8 and len(clients) == 1


# --- prices -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "family"),
    [
        ("gpt-4o-mini", "gpt-4o-mini"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("gpt-4.1-2025-04-14", "gpt-4.1"),
        ("GPT-4.1-mini", "gpt-4.1-mini"),
        ("text-embedding-3-large", "text-embedding-3-large"),
    ],
)
def test_price_for_matches_exact_and_dated_names(name, family):
    assert price_for(name) is PRICES[family]


def test_price_for_unknown_or_lookalike_names_is_none():
    assert price_for("gpt-4o-audio-preview") is None
    assert price_for("llama3.1:8b") is None
    assert price_for("gpt-4o-2024-05-13") == Price(input=5.0, output=15.0)
