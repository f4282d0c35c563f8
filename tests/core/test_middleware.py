"""The middleware onion (reference 6.1): order, short-circuit, on_error, after, levels, state,
under both drivers, and inside a real agent's execute / trip / tool levels."""

import asyncio
from types import SimpleNamespace

import pytest

from warlock_ai.core.agents.messages import ModelResponse
from warlock_ai.core.agents.middleware import (
    Hooks,
    Middleware,
    PipelineContext,
    arun_pipeline,
    run_pipeline,
)
from warlock_ai.core.agents.tools import tool
from warlock_ai.core.errors import ModelCallError
from warlock_ai.core.runs.effects import CallEither
from warlock_ai.testing import scripted_agent

MODES = ["sync", "async"]


def drive(mode, middlewares, level, ctx, inner):
    if mode == "sync":
        return run_pipeline(middlewares, level, ctx, inner)
    return asyncio.run(arun_pipeline(middlewares, level, ctx, inner))


def new_ctx():
    return SimpleNamespace(state={})


def layer(name, log, *, before=None, after=None, on_error=None, level="execute"):
    """A middleware logging each hook it runs; the given functions decide what they return."""

    def run_before(ctx):
        log.append(f"{name}.before")
        return before(ctx) if before else None

    def run_after(ctx, result):
        log.append(f"{name}.after({result})")
        return after(ctx, result) if after else None

    def run_on_error(ctx, err):
        log.append(f"{name}.on_error({err})")
        return on_error(ctx, err) if on_error else None

    return Middleware(name, **{level: Hooks(run_before, run_after, run_on_error)})


def inner_returning(log, value="inner"):
    def inner():
        log.append("inner")
        return value

    return inner


def failing_inner(log, error):
    def inner():
        log.append("inner")
        raise error

    return inner


# --- the rules, sync and async ---------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_before_runs_top_down_and_after_bottom_up(mode):
    log = []
    stack = [layer("a", log), layer("b", log), layer("c", log)]
    result = drive(mode, stack, "execute", new_ctx(), inner_returning(log))
    assert result == "inner"
    assert log == [
        "a.before",
        "b.before",
        "c.before",
        "inner",
        "c.after(inner)",
        "b.after(inner)",
        "a.after(inner)",
    ]


@pytest.mark.parametrize("mode", MODES)
def test_short_circuit_skips_inner_deeper_layers_and_own_after_but_outer_after_runs(mode):
    log = []
    stack = [
        layer("a", log, after=lambda ctx, r: f"{r}+a"),
        layer("b", log, before=lambda ctx: "cached"),
        layer("c", log),
    ]
    result = drive(mode, stack, "execute", new_ctx(), inner_returning(log))
    assert result == "cached+a"
    assert log == ["a.before", "b.before", "a.after(cached)"]


@pytest.mark.parametrize("mode", MODES)
def test_on_error_runs_bottom_up_and_the_first_value_recovers(mode):
    log = []
    stack = [
        layer("a", log),
        layer("b", log, on_error=lambda ctx, err: "recovered"),
        layer("c", log),
    ]
    result = drive(mode, stack, "execute", new_ctx(), failing_inner(log, ValueError("boom")))
    assert result == "recovered"
    assert log == [
        "a.before",
        "b.before",
        "c.before",
        "inner",
        "c.on_error(boom)",
        "b.on_error(boom)",
        # c re-raised, so only the recovering layer and the outer ones run after
        "b.after(recovered)",
        "a.after(recovered)",
    ]


@pytest.mark.parametrize("mode", MODES)
def test_on_error_returning_none_everywhere_rethrows_the_original_error(mode):
    log = []
    error = ValueError("boom")
    stack = [layer("a", log), layer("b", log)]
    with pytest.raises(ValueError) as raised:
        drive(mode, stack, "execute", new_ctx(), failing_inner(log, error))
    assert raised.value is error
    assert log == ["a.before", "b.before", "inner", "b.on_error(boom)", "a.on_error(boom)"]


@pytest.mark.parametrize("mode", MODES)
def test_after_returning_a_value_replaces_the_result_and_none_keeps_it(mode):
    log = []
    stack = [
        layer("a", log),
        layer("b", log, after=lambda ctx, r: None),
        layer("c", log, after=lambda ctx, r: r.upper()),
    ]
    result = drive(mode, stack, "execute", new_ctx(), inner_returning(log))
    assert result == "INNER"
    assert log[-3:] == ["c.after(inner)", "b.after(INNER)", "a.after(INNER)"]


@pytest.mark.parametrize("mode", MODES)
def test_middlewares_without_hooks_for_the_level_are_skipped(mode):
    log = []
    stack = [layer("a", log), layer("t", log, level="trip"), Middleware("empty")]
    assert drive(mode, stack, "execute", new_ctx(), inner_returning(log)) == "inner"
    assert log == ["a.before", "inner", "a.after(inner)"]
    log.clear()
    assert drive(mode, stack, "trip", new_ctx(), inner_returning(log)) == "inner"
    assert log == ["t.before", "inner", "t.after(inner)"]


@pytest.mark.parametrize("mode", MODES)
def test_a_hook_that_raises_aborts_without_on_error(mode):
    log = []

    def refuse(ctx):
        raise PermissionError("guardrail")

    stack = [layer("a", log), layer("b", log, before=refuse)]
    with pytest.raises(PermissionError):
        drive(mode, stack, "execute", new_ctx(), inner_returning(log))
    assert log == ["a.before", "b.before"]


@pytest.mark.parametrize("mode", MODES)
def test_supervisor_level_takes_any_ctx_with_state(mode):
    """The supervisor runs its own context object through the same pipeline."""
    seen = []

    def count(ctx):
        ctx.state["runs"] = ctx.state.get("runs", 0) + 1

    middleware = Middleware(
        "count",
        supervisor=Hooks(before=count, after=lambda ctx, r: seen.append((ctx.name, r))),
    )
    ctx = SimpleNamespace(name="router", state={})
    assert drive(mode, [middleware], "supervisor", ctx, lambda: "done") == "done"
    assert seen == [("router", "done")]
    assert ctx.state == {"runs": 1}


@pytest.mark.parametrize("mode", MODES)
def test_any_non_none_value_short_circuits_even_falsy_ones(mode):
    log = []
    stack = [layer("a", log, before=lambda ctx: 0)]
    assert drive(mode, stack, "execute", new_ctx(), inner_returning(log)) == 0
    assert log == ["a.before"]


@pytest.mark.parametrize("mode", MODES)
def test_a_hook_may_return_a_generator_of_effects_which_the_pipeline_drives(mode):
    """Built-in middleware is written once for both drivers: a hook returning a generator of
    effects (``CallEither``) gets the sync function under ``execute`` and the async one under
    ``aexecute``, and its return value is the hook's."""
    called = []

    def lookup_sync(key):
        called.append(("sync", key))
        return None

    async def lookup_async(key):
        called.append(("async", key))
        return "from cache"

    def before(ctx):
        found = yield CallEither(lookup_sync, lookup_async, ("k",))
        return found

    def after(ctx, result):
        yield CallEither(lambda: None, None)
        return f"{result}."

    middleware = Middleware("m", execute=Hooks(before=before, after=after))
    result = drive(mode, [middleware], "execute", new_ctx(), inner_returning([], "inner"))
    assert called == [(mode, "k")]
    assert result == ("inner." if mode == "sync" else "from cache")


def test_async_hooks_and_async_inner_are_awaited():
    async def before(ctx):
        await asyncio.sleep(0)
        ctx.state["before"] = True

    async def after(ctx, result):
        await asyncio.sleep(0)
        return f"{result}!"

    async def inner():
        await asyncio.sleep(0)
        return "async"

    middleware = Middleware("m", execute=Hooks(before=before, after=after))
    ctx = new_ctx()
    assert asyncio.run(arun_pipeline([middleware], "execute", ctx, inner)) == "async!"
    # the sync driver resolves coroutines too
    assert run_pipeline([middleware], "execute", new_ctx(), inner) == "async!"
    assert ctx.state == {"before": True}


def test_hooks_accept_a_dict_and_refuse_unknown_keys_or_non_callables():
    middleware = Middleware("d", trip={"after": lambda ctx, r: r * 2})
    assert isinstance(middleware.trip, Hooks)
    assert run_pipeline([middleware], "trip", new_ctx(), lambda: 21) == 42
    with pytest.raises(ValueError, match="unknown hooks"):
        Middleware("d", trip={"afterwards": print})
    with pytest.raises(TypeError, match="callable"):
        Hooks(before="not a function")
    with pytest.raises(ValueError, match="unknown middleware level"):
        run_pipeline([middleware], "turn", new_ctx(), lambda: None)


# --- inside an agent -----------------------------------------------------------------------


def adder():
    return tool("add", lambda args: args["a"] + args["b"])


TOOL_THEN_TEXT = [
    {"tool_calls": [{"id": "c1", "name": "add", "arguments": {"a": 1, "b": 2}}]},
    "three",
]


def recorder(seen):
    """Records what each level's ctx holds, and counts in ctx.state across the levels."""

    def before(ctx):
        ctx.state["hooks"] = ctx.state.get("hooks", 0) + 1
        seen.append(
            {
                "level": ctx.level,
                "trip_index": ctx.trip_index,
                "roles": [m.role for m in ctx.messages] if ctx.messages is not None else None,
                "tool_name": ctx.tool_name,
                "arguments": ctx.arguments,
                "state_id": id(ctx.state),
                "hooks": ctx.state["hooks"],
                "session_id": ctx.options["session_id"],
                "agent": ctx.agent,
                "model": ctx.model,
            }
        )

    hooks = Hooks(before=before)
    return Middleware("recorder", execute=hooks, trip=hooks, tool=hooks)


@pytest.mark.parametrize("mode", MODES)
def test_agent_levels_see_their_context_and_share_one_state_per_execute(mode):
    seen = []
    agent = scripted_agent(TOOL_THEN_TEXT, tools=[adder()], middleware=[recorder(seen)])
    if mode == "sync":
        result = agent.execute("add", session_id="s-1")
    else:
        result = asyncio.run(agent.aexecute("add", session_id="s-1"))
    assert result.text == "three" and result.error is None
    assert [(s["level"], s["trip_index"], s["tool_name"]) for s in seen] == [
        ("execute", None, None),
        ("trip", 0, None),
        ("tool", 0, "add"),
        ("trip", 1, None),
    ]
    assert seen[1]["roles"] == ["user"]
    assert seen[2]["roles"] == ["user", "assistant"]
    assert seen[2]["arguments"] == {"a": 1, "b": 2}
    assert seen[3]["roles"] == ["user", "assistant", "tool"]
    assert len({s["state_id"] for s in seen}) == 1
    assert [s["hooks"] for s in seen] == [1, 2, 3, 4]
    assert all(s["session_id"] == "s-1" for s in seen)
    assert seen[0]["agent"] == {
        "name": "scripted",
        "is_anonymous": False,
        "signature": agent.signature,
        "version": None,
    }
    assert seen[0]["model"] == {"name": "fake-model", "provider": "fake"}


def test_each_execute_gets_a_fresh_state():
    states = []
    middleware = Middleware("s", execute=Hooks(before=lambda ctx: states.append(ctx.state)))
    agent = scripted_agent(["a"], middleware=[middleware])
    agent.execute("one")
    agent.execute("two")
    assert states == [{}, {}] and states[0] is not states[1]


def test_a_trip_before_short_circuit_skips_the_model_call():
    cached = ModelResponse(content="from cache")
    cache = Middleware("cache", trip=Hooks(before=lambda ctx: cached))
    agent = scripted_agent(["from model"], middleware=[cache])
    result = agent.execute("hi")
    assert result.text == "from cache"
    assert agent.model.call_count == 0


def test_a_trip_on_error_recovers_a_failed_model_call():
    fallback = Middleware(
        "fallback",
        trip=Hooks(
            on_error=lambda ctx, err: (
                ModelResponse(content="fallback") if isinstance(err, ModelCallError) else None
            )
        ),
    )
    agent = scripted_agent([{"error": "overloaded"}], middleware=[fallback])
    result = agent.execute("hi")
    assert result.error is None and result.text == "fallback"


def test_a_trip_before_may_rewrite_the_messages_sent_to_the_model():
    def redact(ctx):
        ctx.messages = [
            m.__class__(m.role, m.content.replace("secret", "***")) for m in ctx.messages
        ]

    agent = scripted_agent(["ok"], middleware=[Middleware("redact", trip=Hooks(before=redact))])
    agent.execute("the secret is 42")
    messages, _ = agent.model.call_history[0]
    assert messages[-1].content == "the *** is 42"


def test_tool_level_on_error_recovers_and_before_short_circuits():
    def explode(args):
        raise RuntimeError("disk full")

    recover = Middleware("recover", tool=Hooks(on_error=lambda ctx, err: {"saved": ctx.tool_name}))
    agent = scripted_agent(
        [{"tool_calls": [{"id": "c1", "name": "save", "arguments": {}}]}, "done"],
        tools=[tool("save", explode)],
        middleware=[recover],
    )
    result = agent.execute("save it")
    assert result.error is None
    assert result.messages[2].content == '{"saved": "save"}'
    assert result.report.trips[0].errors == ()

    stub = Middleware("stub", tool=Hooks(before=lambda ctx: "stubbed"))
    agent = scripted_agent(
        [{"tool_calls": [{"id": "c1", "name": "save", "arguments": {}}]}, "done"],
        tools=[tool("save", explode)],
        middleware=[stub],
    )
    assert agent.execute("save it").messages[2].content == '"stubbed"'


def test_execute_level_short_circuit_and_after_replacement():
    skip = Middleware("skip", execute=Hooks(before=lambda ctx: "canned answer"))
    agent = scripted_agent(["model answer"], middleware=[skip])
    result = agent.execute("hi")
    assert result.text == "canned answer" and agent.model.call_count == 0

    shout = Middleware("shout", execute=Hooks(after=lambda ctx, result: result.text.upper()))
    assert scripted_agent(["quiet"], middleware=[shout]).execute("hi").text == "QUIET"


def test_execute_level_on_error_sees_the_agent_failure_and_may_recover():
    errors = []

    def on_error(ctx, err):
        errors.append(err)
        return "sorry, try later"

    guard = Middleware("guard", execute=Hooks(on_error=on_error))
    agent = scripted_agent([{"error": "overloaded"}], middleware=[guard])
    result = agent.execute("hi")
    assert isinstance(errors[0], ModelCallError)
    assert result.error is None and result.text == "sorry, try later"


def test_pipeline_context_needs_only_a_level():
    ctx = PipelineContext(level="supervisor", agent={"name": "router"}, input="x")
    assert ctx.state == {} and ctx.model == {} and ctx.options == {}
    assert ctx.trip_index is None and ctx.messages is None and ctx.tool_name is None
    assert run_pipeline([], "supervisor", ctx, lambda: "done") == "done"
