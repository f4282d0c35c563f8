"""Agents (SPEC 1.4, reference 8): the trip loop, tools, structured output, cancellation,
errors in the result, names and signatures, execute/aexecute parity, and workflow steps."""

import asyncio
import json
import threading

import pytest

import warlock_ai as ai
from warlock_ai.core.agents.agent import AgentResult, agent
from warlock_ai.core.agents.messages import Message, ModelResponse
from warlock_ai.core.agents.middleware import Middleware
from warlock_ai.core.agents.tools import tool
from warlock_ai.core.errors import ModelCallError
from warlock_ai.core.runs.signature import signature_of
from warlock_ai.testing import FakeModel, scripted_agent

TIME_KEYS = {"duration_ms", "cancelled_at"}


def strip_times(value):
    if isinstance(value, dict):
        return {k: strip_times(v) for k, v in value.items() if k not in TIME_KEYS}
    if isinstance(value, list):
        return [strip_times(v) for v in value]
    return value


def add_tool(calls=None):
    def add(args):
        if calls is not None:
            calls.append(args)
        return {"sum": args["a"] + args["b"]}

    return tool(
        "add",
        add,
        description="Add two numbers",
        parameters={
            "type": "object",
            "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
            "required": ["a", "b"],
        },
    )


def call(name, call_id="c1", **arguments):
    return {"id": call_id, "name": name, "arguments": arguments}


# --- text replies, prompts, history --------------------------------------------------------------


def test_text_reply_with_usage_and_report():
    writer = scripted_agent(["hello world"])
    result = writer.execute("greet")
    assert isinstance(result, AgentResult) and result.type == "agent"
    assert result.ok and result.error is None
    assert result.text == "hello world" and result.data is None
    assert result.usage == ai.Usage(input=10, output=3, total=13)
    report = result.report
    assert report.name == "scripted" and report.status == "completed"
    assert report.model == {"name": "fake-model", "provider": "fake"}
    assert [(t.index, t.finish_reason, t.tool_calls) for t in report.trips] == [(0, "stop", ())]
    assert report.trips[0].usage == result.usage
    assert result.messages == [Message("user", "greet"), Message("assistant", "hello world")]


def test_system_prompt_and_placeholders_reach_the_model():
    writer = scripted_agent(
        ["ok"], system_prompt="You write for {audience}.", model_options={"temperature": 0.2}
    )
    writer.execute(
        'Describe {item}; answer like {"json": true} and keep {unknown}',
        placeholders={"audience": "children", "item": "a kite"},
        max_tokens=50,
    )
    messages, options = writer.model.call_history[0]
    assert messages == [
        Message("system", "You write for children."),
        Message("user", 'Describe a kite; answer like {"json": true} and keep {unknown}'),
    ]
    assert options == {"temperature": 0.2, "max_tokens": 50}


def test_history_goes_between_the_system_prompt_and_the_prompt():
    writer = scripted_agent(["fine"], system_prompt="Be brief.")
    history = [{"role": "user", "content": "hi"}, Message("assistant", "hello")]
    result = writer.execute("how are you?", history=history)
    messages, _ = writer.model.call_history[0]
    assert [(m.role, m.content) for m in messages] == [
        ("system", "Be brief."),
        ("user", "hi"),
        ("assistant", "hello"),
        ("user", "how are you?"),
    ]
    assert result.messages[-1] == Message("assistant", "fine")


# --- the tool loop -------------------------------------------------------------------------------


def test_one_tool_round_then_the_answer():
    calls = []
    calc = scripted_agent(
        [{"tool_calls": [call("add", a=2, b=3)]}, "2 + 3 = 5"], tools=[add_tool(calls)]
    )
    result = calc.execute("what is 2 + 3?")
    assert result.text == "2 + 3 = 5" and result.error is None
    assert calls == [{"a": 2, "b": 3}]
    assert [(m.role, m.content, m.tool_call_id) for m in result.messages] == [
        ("user", "what is 2 + 3?", None),
        ("assistant", "", None),
        ("tool", '{"sum": 5}', "c1"),
        ("assistant", "2 + 3 = 5", None),
    ]
    assert result.messages[1].tool_calls[0].name == "add"
    trips = result.report.trips
    assert [(t.finish_reason, t.tool_calls) for t in trips] == [
        ("tool_calls", ("add",)),
        ("stop", ()),
    ]
    assert result.usage == trips[0].usage + trips[1].usage
    assert result.usage.total == 10 + (10 + 3)
    _, options = calc.model.call_history[0]
    assert options["tools"] == [
        {
            "name": "add",
            "description": "Add two numbers",
            "parameters": add_tool().parameters,
        }
    ]
    second_messages, _ = calc.model.call_history[1]
    assert [m.role for m in second_messages] == ["user", "assistant", "tool"]


def test_two_tool_rounds_with_calls_run_in_order():
    order = []

    def record(name):
        return tool(name, lambda args: order.append((name, args["n"])) or name)

    model_script = [
        {"tool_calls": [call("first", "a", n=1), call("second", "b", n=2)]},
        {"tool_calls": [call("first", "c", n=3)]},
        "done",
    ]
    runner = scripted_agent(model_script, tools=[record("first"), record("second")])
    result = runner.execute("go")
    assert result.text == "done"
    assert order == [("first", 1), ("second", 2), ("first", 3)]
    tool_messages = [
        (m.tool_call_id, m.name, m.content) for m in result.messages if m.role == "tool"
    ]
    assert tool_messages == [
        ("a", "first", '"first"'),
        ("b", "second", '"second"'),
        ("c", "first", '"first"'),
    ]
    assert len(result.report.trips) == 3 and runner.model.call_count == 3


async def test_async_tools_run_under_execute_and_aexecute():
    async def lookup(args):
        await asyncio.sleep(0)
        return {"sku": args["sku"], "stock": 4}

    script = [{"tool_calls": [call("lookup", sku="a-1")]}, "4 in stock"]
    sync_agent = scripted_agent(script, tools=[tool("lookup", lookup)])
    result = await asyncio.to_thread(sync_agent.execute, "stock?")
    assert result.messages[2].content == '{"sku": "a-1", "stock": 4}'
    async_agent = scripted_agent(script, tools=[tool("lookup", lookup)])
    result = await async_agent.aexecute("stock?")
    assert result.text == "4 in stock"
    assert result.messages[2].content == '{"sku": "a-1", "stock": 4}'


def test_a_failing_tool_becomes_an_error_message_and_the_loop_continues():
    def broken(args):
        raise RuntimeError("database is down")

    helper = scripted_agent(
        [{"tool_calls": [call("fetch")]}, "sorry, the data is unavailable"],
        tools=[tool("fetch", broken)],
    )
    result = helper.execute("fetch it")
    assert result.error is None and result.text == "sorry, the data is unavailable"
    tool_message = result.messages[2]
    assert tool_message.role == "tool" and "database is down" in tool_message.content
    [error] = result.report.trips[0].errors
    assert isinstance(error, ai.ToolExecutionError)
    assert (error.tool_name, error.trip_index) == ("fetch", 0)
    assert isinstance(error.cause, RuntimeError)


def test_invalid_tool_arguments_never_reach_the_tool_and_the_model_may_retry():
    calls = []
    calc = scripted_agent(
        [
            {"tool_calls": [call("add", a="two", b=3)]},
            {"tool_calls": [call("add", "c2", a=2, b=3)]},
            "2 + 3 = 5",
        ],
        tools=[add_tool(calls)],
    )
    result = calc.execute("what is 2 + 3?")
    assert result.error is None and result.text == "2 + 3 = 5"
    assert calls == [{"a": 2, "b": 3}]  # the invalid call never ran
    refused = result.messages[2].content
    assert "invalid arguments" in refused and "$.a: expected number, got str" in refused
    [error] = result.report.trips[0].errors
    assert isinstance(error, ai.ToolExecutionError) and error.tool_name == "add"


def test_an_unknown_tool_gets_an_error_message_and_the_loop_continues():
    helper = scripted_agent([{"tool_calls": [call("delete_all")]}, "ok"], tools=[add_tool()])
    result = helper.execute("clean up")
    assert result.error is None and result.text == "ok"
    assert "unknown tool 'delete_all'" in result.messages[2].content
    assert "add" in result.messages[2].content
    assert result.report.trips[0].errors[0].tool_name == "delete_all"


def test_more_than_max_trips_fails_with_agent_max_trips_error():
    looping = scripted_agent(
        [{"tool_calls": [call("add", a=1, b=1)]}], tools=[add_tool()], max_trips=3
    )
    result = looping.execute("loop")
    assert isinstance(result.error, ai.AgentMaxTripsError)
    assert result.error.max_trips == 3 and result.error.code == "AGENT_MAX_TRIPS"
    assert looping.model.call_count == 3
    assert len(result.report.trips) == 3 and result.report.status == "failed"
    assert result.usage.input == 30


# --- structured output ---------------------------------------------------------------------------

PRODUCT = {
    "type": "object",
    "properties": {"title": {"type": "string"}, "price": {"type": "number"}},
    "required": ["title", "price"],
    "additionalProperties": False,
}


def test_structured_output_is_parsed_validated_and_the_schema_sent():
    extractor = scripted_agent(['{"title": "Kite", "price": 9.5}'], output=PRODUCT)
    result = extractor.execute("extract")
    assert result.error is None
    assert result.data == {"title": "Kite", "price": 9.5}
    assert result.text == '{"title": "Kite", "price": 9.5}'
    _, options = extractor.model.call_history[0]
    assert options["response_format"] == PRODUCT


def test_output_given_per_call_and_a_code_fence_is_tolerated():
    plain = scripted_agent(['```json\n{"title": "Kite", "price": 2}\n```'])
    result = plain.execute("extract", output=PRODUCT)
    assert result.data == {"title": "Kite", "price": 2}
    assert plain.model.call_history[0][1]["response_format"] == PRODUCT


@pytest.mark.parametrize(
    ("reply", "issue"),
    [
        ("not json at all", "not JSON"),
        ('{"title": "Kite"}', "missing required 'price'"),
        ('{"title": "Kite", "price": "cheap"}', "$.price: expected number"),
        ('{"title": "Kite", "price": 1, "colour": "red"}', "unexpected property 'colour'"),
    ],
)
def test_invalid_structured_output_is_a_schema_validation_error_never_raised(reply, issue):
    result = scripted_agent([reply], output=PRODUCT).execute("extract")
    assert isinstance(result.error, ai.SchemaValidationError)
    assert any(issue in str(i) for i in result.error.issues), result.error.issues
    assert result.data is None and result.text == reply
    assert result.report.status == "failed"


def test_callable_output_schemas_go_through_validate_schema():
    def positive(value):
        if value["n"] <= 0:
            raise ValueError("n must be positive")
        return {"n": value["n"] * 10}

    assert scripted_agent(['{"n": 2}'], output=positive).execute("x").data == {"n": 20}
    failed = scripted_agent(['{"n": -1}'], output=positive).execute("x")
    assert isinstance(failed.error, ai.SchemaValidationError)
    assert "n must be positive" in failed.error.message


# --- options, cancellation, errors ---------------------------------------------------------------


def test_session_id_and_cancel_reach_every_model_call():
    token = ai.CancelToken()
    calc = scripted_agent([{"tool_calls": [call("add", a=1, b=2)]}, "3"], tools=[add_tool()])
    calc.execute("1 + 2", session_id="s-7", cancel=token)
    assert calc.model.call_count == 2
    for _, options in calc.model.call_history:
        assert options["session_id"] == "s-7" and options["cancel"] is token


def test_a_cancelled_token_stops_before_the_first_trip():
    token = ai.CancelToken()
    token.cancel("user left")
    writer = scripted_agent(["never"])
    result = writer.execute("write", cancel=token)
    assert isinstance(result.error, ai.AgentCancelledError)
    assert result.error.reason == "user left" and result.error.cancelled_at
    assert result.report.status == "cancelled"
    assert writer.model.call_count == 0


def test_cancelling_during_a_tool_stops_before_the_next_trip():
    token = ai.CancelToken()
    stopper = tool("stop", lambda args: token.cancel("enough") or "stopping")
    runner = scripted_agent([{"tool_calls": [call("stop")]}, "never"], tools=[stopper])
    result = runner.execute("go", cancel=token)
    assert isinstance(result.error, ai.AgentCancelledError)
    assert runner.model.call_count == 1 and len(result.report.trips) == 1


def test_a_model_error_goes_to_result_error():
    failing = scripted_agent([{"error": "HTTP 503 from provider"}])
    result = failing.execute("hi")
    assert isinstance(result.error, ModelCallError)
    assert result.error.message == "HTTP 503 from provider"
    assert result.report.status == "failed" and result.text is None
    assert result.usage == ai.Usage()


def test_a_plain_exception_from_the_model_is_wrapped_with_its_cause():
    boom = ConnectionResetError("peer reset")
    result = scripted_agent([{"error": boom}]).execute("hi")
    assert isinstance(result.error, ModelCallError)
    assert result.error.cause is boom
    assert (result.error.provider, result.error.model) == ("fake", "fake-model")
    assert "peer reset" in result.error.message


def test_to_dict_is_json_safe_even_for_a_failure():
    result = scripted_agent([{"tool_calls": [call("nope")]}, {"error": "down"}]).execute("x")
    data = json.loads(json.dumps(result.to_dict()))
    assert data["error"]["code"] == "MODEL_CALL_FAILED"
    assert data["report"]["status"] == "failed"
    assert data["report"]["trips"][0]["errors"][0]["code"] == "TOOL_EXEC_FAILED"
    assert data["usage"]["total"] == 10


def test_events_are_emitted_and_a_failing_handler_is_swallowed():
    seen = []

    def broken(payload):
        raise RuntimeError("handler bug")

    calc = scripted_agent([{"tool_calls": [call("add", a=1, b=1)]}, "2"], tools=[add_tool()])
    result = calc.execute(
        "1 + 1",
        session_id="s-1",
        on={
            "agent.trip": [lambda p: seen.append(("trip", p["trip"].index)), broken],
            "agent.tool": lambda p: seen.append(("tool", p["tool"], p["result"])),
            "agent.completed": lambda p: seen.append(("completed", p["result"].text)),
        },
    )
    assert result.error is None
    assert seen == [("tool", "add", {"sum": 2}), ("trip", 0), ("trip", 1), ("completed", "2")]
    with pytest.raises(ValueError, match="unknown event"):
        calc.execute("x", on={"agent.finished": print})


# --- names and signatures ------------------------------------------------------------------------


def test_anonymous_agents_get_a_stable_sanitised_name():
    model = FakeModel(name="gpt 4/o", provider="open ai")
    plain = agent(model=model)
    assert plain.is_anonymous and plain.name == "anon_open-ai_gpt-4-o"
    assert plain.fingerprint["n"] is None
    tools = [tool("search", print), tool("add", print)]
    assert agent(model=model, tools=tools).name == "anon_open-ai_gpt-4-o_add-search"
    named = agent(model=model, name="writer")
    assert not named.is_anonymous and named.fingerprint["n"] == "writer"


def test_fingerprint_has_the_reference_shape():
    writer = scripted_agent(name="writer", tools=[add_tool()], version="2")
    assert writer.fingerprint == {
        "n": "writer",
        "p": "fake",
        "m": "fake-model",
        "t": ["add"],
        "x": 10,
        "o": 0,
        "v": "2",
    }
    expected = '{"n":"writer","p":"fake","m":"fake-model","t":["add"],"x":10,"o":0,"v":"2"}'
    assert writer.signature == signature_of(json.loads(expected))
    assert len(writer.signature) == 8


def build(**overrides):
    options = {
        "model": FakeModel(),
        "name": "writer",
        "tools": [tool("a", print), tool("b", print)],
    }
    options.update(overrides)
    return agent(**options)


@pytest.mark.parametrize(
    "change",
    [
        {"name": "editor"},
        {"name": None},
        {"model": FakeModel(provider="openai")},
        {"model": FakeModel(name="other-model")},
        {"tools": [tool("a", print)]},
        {"tools": [tool("a", print), tool("c", print)]},
        {"max_trips": 3},
        {"output": {"type": "object"}},
        {"version": "2"},
    ],
)
def test_the_signature_changes_with_structure(change):
    assert build(**change).signature != build().signature


@pytest.mark.parametrize(
    "change",
    [
        {"description": "writes things"},
        {"system_prompt": "You are a careful writer."},
        {"tools": [tool("b", print), tool("a", print)]},
        {"model_options": {"temperature": 0}},
        {"middleware": [Middleware("audit")]},
    ],
)
def test_the_signature_ignores_wording_order_and_tuning(change):
    assert build(**change).signature == build().signature


def test_the_factory_refuses_bad_definitions():
    with pytest.raises(TypeError, match="complete"):
        agent(model=object())
    with pytest.raises(ValueError, match="two tools"):
        agent(model=FakeModel(), tools=[tool("a", print), tool("a", print)])
    with pytest.raises(ValueError, match="max_trips"):
        agent(model=FakeModel(), max_trips=0)
    with pytest.raises(TypeError, match="output"):
        agent(model=FakeModel(), output=42)
    with pytest.raises(ValueError, match="tool name"):
        tool("has spaces", print)


# --- parity and concurrency ----------------------------------------------------------------------

PARITY_SCRIPT = [
    {"tool_calls": [call("add", "x", a=1, b=2), call("missing", "y")]},
    {"tool_calls": [call("add", "z", a=3, b=4)], "usage": {"input": 20, "cached_tokens": 5}},
    '{"title": "Sum", "price": 10}',
]


def parity_view(result):
    return strip_times(result.to_dict())


async def test_aexecute_matches_execute_on_the_same_script():
    sync_agent = scripted_agent(PARITY_SCRIPT, tools=[add_tool()], output=PRODUCT)
    async_agent = scripted_agent(PARITY_SCRIPT, tools=[add_tool()], output=PRODUCT)
    sync_result = await asyncio.to_thread(sync_agent.execute, "sum", session_id="s")
    async_result = await async_agent.aexecute("sum", session_id="s")
    assert async_result.data == {"title": "Sum", "price": 10}
    assert parity_view(async_result) == parity_view(sync_result)
    assert async_result.usage.cached_tokens == 5
    assert sync_agent.model.call_history == async_agent.model.call_history


async def test_aexecute_runs_a_sync_only_model_in_a_thread():
    class SyncModel:
        name, provider = "sync-only", "local"

        def __init__(self):
            self.threads = []

        def complete(self, messages, **options):
            self.threads.append(threading.get_ident())
            return ModelResponse(content="from a thread")

    model = SyncModel()
    result = await agent(model=model, name="s").aexecute("hi")
    assert result.text == "from a thread"
    assert model.threads and model.threads[0] != threading.get_ident()


def test_one_agent_serves_concurrent_executions():
    echo = scripted_agent(["same"])
    results = [None] * 8

    def run(i):
        results[i] = echo.execute(f"prompt {i}")

    threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert echo.model.call_count == 8
    assert sorted(r.messages[0].content for r in results) == [f"prompt {i}" for i in range(8)]


# --- as a workflow agent step --------------------------------------------------------------------


def step_workflow(writer):
    return ai.workflow(
        name="catalog",
        steps=[
            ai.step(
                "describe",
                agent=writer,
                input=lambda ctx: {"prompt": f"describe {ctx.input['sku']}", "temperature": 0},
                output=lambda ctx: ctx.agent_result.text,
            )
        ],
    )


def test_an_agent_is_a_workflow_agent_step_and_gives_the_step_its_usage():
    writer = scripted_agent(["A red kite."], name="writer")
    result = step_workflow(writer).execute({"sku": "k-1"}, session_id="s-3")
    assert result.error is None
    step = result.report.steps["describe"]
    assert step.output == "A red kite."
    assert step.usage == ai.Usage(input=10, output=3, total=13)
    assert result.usage == step.usage
    messages, options = writer.model.call_history[0]
    assert messages[-1].content == "describe k-1"
    assert options["temperature"] == 0 and options["session_id"] == "s-3"
    assert isinstance(options["cancel"], ai.CancelToken)


async def test_an_agent_step_under_aexecute_and_a_failing_agent_fails_the_step():
    writer = scripted_agent(["A blue kite."], name="writer")
    result = await step_workflow(writer).aexecute({"sku": "k-2"})
    assert result.report.steps["describe"].output == "A blue kite."

    broken = scripted_agent([{"error": "model overloaded"}], name="writer")
    failed = step_workflow(broken).execute({"sku": "k-3"})
    assert isinstance(failed.error, ai.StepFailedError)
    assert isinstance(failed.error.cause, ModelCallError)
