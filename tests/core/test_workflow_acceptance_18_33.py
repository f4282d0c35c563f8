"""Workflow acceptance cases 18-33 (reference section 12, engine sections 1.6-1.17, 0.4).

Each test names its case number in the docstring. Real engine objects only; spies are lists.
"""

import json
import subprocess
import sys
import time
from datetime import datetime

import pytest

import warlock_ai as ai
from warlock_ai.core.runs.signature import compact_json, fnv_hex, fnv_short, signature_of
from warlock_ai.core.workflow.retry import MAX_BACKOFF, resolve_backoff
from warlock_ai.stores.base import SnapshotStore

# --- helpers --------------------------------------------------------------------------------


def setter(**values):
    def run(ctx):
        ctx.state.update(values)

    return run


def boom(message="boom"):
    def run(ctx):
        raise ValueError(message)

    return run


def recorder(calls, name, fn=None):
    def run(ctx):
        calls.append(name)
        if fn is not None:
            return fn(ctx)
        return None

    return run


class Agent:
    """A tiny fake agent: the engine needs only ``name`` and ``execute``."""

    def __init__(self, name):
        self.name = name

    def execute(self, prompt, **options):  # pragma: no cover - never run in signature tests
        raise AssertionError("not called")


# --- case 18 --------------------------------------------------------------------------------


def test_case_18_parallel_children_reachable_nested_and_flat():
    """Case 18: children of a successful group are at steps.group.steps.a and steps.a."""
    seen = {}

    def downstream(ctx):
        seen["nested"] = ctx.steps["group"].steps["a"].status
        seen["flat"] = ctx.steps["a"].status
        seen["flat_b"] = ctx.steps["b"].status

    store = ai.snapshot.memory()
    wf = ai.workflow(
        name="wf18",
        steps=[
            ai.parallel("group", [ai.step("a", setter(x=1)), ai.step("b", setter(y=2))]),
            ai.step("after", downstream),
        ],
        snapshot_store=store,
    )
    result = wf.execute(run_id="r18")
    assert result.error is None and result.status == "completed"
    steps = result.report.steps
    assert steps["group"].status == "completed"
    assert steps["group"].steps["a"].status == "completed"
    assert steps["group"].steps["b"].status == "completed"
    assert steps["a"].status == "completed" and steps["b"].status == "completed"
    assert steps["group"].steps["a"] == steps["a"]
    assert seen == {"nested": "completed", "flat": "completed", "flat_b": "completed"}
    assert result.report.state == {"x": 1, "y": 2}
    # The stored snapshot keeps both paths too.
    snap = store.load("r18")
    assert snap.steps["group"].steps["a"].status == "completed"
    assert snap.steps["a"].status == "completed"
    assert set(snap.steps["group"].steps) == {"a", "b"}


# --- case 19 --------------------------------------------------------------------------------


def test_case_19_started_at_is_a_datetime_kept_across_resume():
    """Case 19: ctx.started_at is a (tz-aware) datetime; a resumed step sees the original one."""
    store = ai.snapshot.memory()
    seen = []
    fail = {"b": True}

    def a(ctx):
        seen.append(("a", ctx.started_at))

    def b(ctx):
        seen.append(("b", ctx.started_at))
        if fail["b"]:
            raise RuntimeError("b broke")
        ctx.state["b"] = "done"

    def build():
        return ai.workflow(
            name="wf19", steps=[ai.step("a", a), ai.step("b", b)], snapshot_store=store
        )

    first = build().execute(run_id="r19")
    assert first.status == "failed"
    original = first.report.started_at
    assert isinstance(original, datetime) and original.tzinfo is not None
    assert all(isinstance(ts, datetime) and ts.tzinfo is not None for _, ts in seen)
    assert {ts for _, ts in seen} == {original}

    time.sleep(0.02)  # a resume that re-stamped "now" would be visibly later
    fail["b"] = False
    seen.clear()
    resumed = build().resume("r19")
    assert resumed.error is None and resumed.status == "completed"
    assert seen == [("b", original)]
    assert seen[0][1].timestamp() == original.timestamp()
    assert resumed.report.started_at == original
    assert store.load("r19").started_at == original


# --- case 20 --------------------------------------------------------------------------------


def test_case_20_flaky_step_attempt_history():
    """Case 20: throws twice, retry(3, none) -> attempts 3, history [failed, failed, success]."""
    calls = []

    def flaky(ctx):
        calls.append(1)
        if len(calls) < 3:
            raise RuntimeError(f"flake {len(calls)}")
        ctx.state["ok"] = True

    wf = ai.workflow(
        name="wf20",
        steps=[ai.step("flaky", flaky, retry=ai.Retry(attempts=3, backoff="none"))],
    )
    result = wf.execute()
    assert result.error is None and result.status == "completed"
    record = result.report.steps["flaky"]
    assert record.status == "completed"
    assert record.attempts == 3
    assert len(record.attempt_history) == 3
    assert [a.status for a in record.attempt_history] == ["failed", "failed", "success"]
    assert [a.index for a in record.attempt_history] == [1, 2, 3]
    assert record.attempt_history[0].status == "failed"
    assert record.attempt_history[2].status == "success"
    assert "flake 1" in record.attempt_history[0].error.message
    assert record.attempt_history[2].error is None
    assert len(calls) == 3
    assert result.report.state == {"ok": True}


# --- case 21 --------------------------------------------------------------------------------


def test_case_21_retry_false_overrides_default_retry():
    """Case 21: default_retry(5) and retry=False -> the step runs exactly once, error returned."""
    calls = []

    def always_fails(ctx):
        calls.append(1)
        raise RuntimeError("nope")

    wf = ai.workflow(
        name="wf21",
        steps=[ai.step("once", always_fails, retry=False)],
        default_retry=ai.Retry(attempts=5, backoff="none"),
    )
    result = wf.execute()
    assert len(calls) == 1
    assert result.status == "failed"
    assert isinstance(result.error, ai.StepFailedError)
    assert result.error.attempts == 1
    assert result.report.steps["once"].attempts == 1


def test_case_21_control_default_retry_applies_without_retry_false():
    """Case 21 (control): the same default_retry does retry a step without its own retry."""
    calls = []

    def always_fails(ctx):
        calls.append(1)
        raise RuntimeError("nope")

    wf = ai.workflow(
        name="wf21b",
        steps=[ai.step("many", always_fails)],
        default_retry=ai.Retry(attempts=5, backoff="none"),
    )
    result = wf.execute()
    assert len(calls) == 5
    assert isinstance(result.error, ai.StepFailedError) and result.error.attempts == 5


# --- case 22 --------------------------------------------------------------------------------


def test_case_22_backoff_none_is_zero():
    """Case 22: "none" gives 0 whatever the attempt."""
    assert [resolve_backoff(k, "none") for k in (1, 2, 3, 10)] == [0, 0, 0, 0]


def test_case_22_backoff_linear():
    """Case 22: linear(1..3) gives 0.5, 1.0, 1.5 seconds (500, 1000, 1500 ms)."""
    assert [resolve_backoff(k, "linear") for k in (1, 2, 3)] == pytest.approx([0.5, 1.0, 1.5])


def test_case_22_backoff_exponential():
    """Case 22: exponential(1..4) gives 0.5, 1, 2, 4 seconds."""
    assert [resolve_backoff(k, "exponential") for k in (1, 2, 3, 4)] == pytest.approx(
        [0.5, 1.0, 2.0, 4.0]
    )


def test_case_22_backoff_none_value_behaves_as_exponential():
    """Case 22: an undefined backoff (None) behaves as exponential."""
    for k in (1, 2, 3, 4, 8):
        assert resolve_backoff(k, None) == resolve_backoff(k, "exponential")
    assert ai.Retry().backoff == "exponential"  # the Retry default is exponential too


def test_case_22_backoff_custom_callable():
    """Case 22: a custom `lambda a: a*0.123` at attempt 2 gives 0.246 and receives exactly [2]."""
    received = []

    def custom(attempt):
        received.append(attempt)
        return attempt * 0.123

    assert resolve_backoff(2, custom) == pytest.approx(0.246)
    assert received == [2]


def test_case_22_backoff_cap_is_thirty_seconds():
    """Case 22: the cap is 30 s: exponential(8), linear(100), custom 9_999_999."""
    assert MAX_BACKOFF == 30.0
    assert resolve_backoff(8, "exponential") == 30.0  # 0.5 * 2**7 = 64
    assert resolve_backoff(100, "linear") == 30.0  # 50
    assert resolve_backoff(1, lambda a: 9_999_999) == 30.0
    assert resolve_backoff(7, "exponential") == 30.0  # 32 -> capped
    assert resolve_backoff(6, "exponential") == 16.0  # just below the cap


def test_case_22_backoff_negative_custom_is_zero():
    """Case 22: a negative custom value becomes 0."""
    assert resolve_backoff(3, lambda a: -5) == 0
    assert resolve_backoff(1, lambda a: -0.001) == 0


def test_case_22_engine_uses_the_backoff_policy():
    """Case 22 (engine): a step with a custom backoff is called with each failed attempt."""
    received = []

    def backoff(attempt):
        received.append(attempt)
        return 0

    def fails(ctx):
        raise RuntimeError("x")

    wf = ai.workflow(
        name="wf22", steps=[ai.step("s", fails, retry=ai.Retry(attempts=3, backoff=backoff))]
    )
    result = wf.execute()
    assert result.error.attempts == 3
    assert received == [1, 2]


# --- case 23 --------------------------------------------------------------------------------


def test_case_23_retry_on_false_stops_retrying():
    """Case 23: retry_on returning False -> no further attempts."""
    calls, asked, retried = [], [], []

    def fails(ctx):
        calls.append(1)
        raise RuntimeError("fatal")

    def retry_on(err, attempt):
        asked.append((type(err).__name__, str(err), attempt))
        return False

    wf = ai.workflow(
        name="wf23a",
        steps=[
            ai.step(
                "s",
                fails,
                retry=ai.Retry(
                    attempts=4,
                    backoff="none",
                    retry_on=retry_on,
                    on_retry=lambda n, e: retried.append(n),
                ),
            )
        ],
    )
    events = []
    result = wf.execute(on={"workflow.step.retrying": events.append})
    assert len(calls) == 1
    assert asked == [("RuntimeError", "fatal", 1)]
    assert retried == [] and events == []
    assert isinstance(result.error, ai.StepFailedError) and result.error.attempts == 1
    assert result.report.steps["s"].attempts == 1


def test_case_23_retry_on_false_later_stops_at_that_attempt():
    """Case 23: retry_on gets (err, k); returning False at k=2 stops after attempt 2."""
    calls, asked = [], []

    def fails(ctx):
        calls.append(1)
        raise RuntimeError(f"fail {len(calls)}")

    def retry_on(err, attempt):
        asked.append(attempt)
        return attempt < 2

    wf = ai.workflow(
        name="wf23b",
        steps=[ai.step("s", fails, retry=ai.Retry(attempts=5, backoff="none", retry_on=retry_on))],
    )
    result = wf.execute()
    assert len(calls) == 2
    assert asked == [1, 2]
    assert result.error.attempts == 2


def test_case_23_retry_on_only_false_stops():
    """Case 23 / 1.7: only an explicit False stops retrying; None or 0 keep retrying."""
    for answer in (None, 0, ""):
        calls = []

        def fails(ctx, calls=calls):
            calls.append(1)
            raise RuntimeError("x")

        retry = ai.Retry(attempts=3, backoff="none", retry_on=lambda e, k, a=answer: a)
        result = ai.workflow(name="wf23d", steps=[ai.step("s", fails, retry=retry)]).execute()
        assert len(calls) == 3, answer
        assert result.error.attempts == 3


def test_case_23_on_retry_and_retrying_event_carry_next_attempt():
    """Case 23: on_retry(next_attempt, err) and workflow.step.retrying carry attempt = k+1."""
    on_retry_calls, events, local = [], [], []

    def fails(ctx):
        raise RuntimeError("again")

    wf = ai.workflow(
        name="wf23c",
        steps=[
            ai.step(
                "s",
                fails,
                retry=ai.Retry(
                    attempts=3,
                    backoff="none",
                    on_retry=lambda n, e: on_retry_calls.append((n, str(e))),
                ),
                on={"retrying": local.append},
            )
        ],
    )
    result = wf.execute(on={"workflow.step.retrying": events.append})
    assert result.error.attempts == 3
    assert on_retry_calls == [(2, "again"), (3, "again")]
    assert [e["attempt"] for e in events] == [2, 3]
    assert all(e["step"] == "s" and e["total_attempts"] == 3 for e in events)
    assert all(isinstance(e["last_error"], ai.AIError) for e in events)
    assert "again" in events[0]["last_error"].message
    assert [e["attempt"] for e in local] == [2, 3]


# --- case 24 --------------------------------------------------------------------------------


def test_case_24_three_tiers_in_order():
    """Case 24: factory, instance and execute handlers of workflow.completed run in that order."""
    order = []
    wf = ai.workflow(
        name="wf24",
        steps=[ai.step("a", setter(a=1))],
        on={"workflow.completed": lambda p: order.append("factory")},
    )
    wf.on("workflow.completed", lambda p: order.append("instance"))
    result = wf.execute(on={"workflow.completed": lambda p: order.append("execute")})
    assert result.error is None
    assert order == ["factory", "instance", "execute"]


def test_case_24_payload_and_unsubscribe():
    """Case 24: the payload carries result/run identity; on() returns an unsubscribe function."""
    payloads, order = [], []
    wf = ai.workflow(name="wf24b", steps=[ai.step("a", setter(a=1))])

    def instance(p):
        order.append("instance")

    unsubscribe = wf.on("workflow.completed", instance)
    result = wf.execute(run_id="r24", on={"workflow.completed": payloads.append})
    assert order == ["instance"]
    payload = payloads[0]
    assert payload["event"] == "workflow.completed"
    assert payload["run_id"] == payload["root_run_id"] == "r24"
    assert payload["result"].status == result.status == "completed"
    unsubscribe()
    wf.execute()
    assert order == ["instance"]


# --- case 25 --------------------------------------------------------------------------------


def test_case_25_cancel_inside_step():
    """Case 25: step a cancels the token -> cancelled, WorkflowCancelledError, b never runs."""
    store = ai.snapshot.memory()
    token = ai.CancelToken()
    calls, cancelled_events = [], []

    def a(ctx):
        calls.append("a")
        ctx.state["a"] = 1
        token.cancel("user")

    wf = ai.workflow(
        name="wf25",
        steps=[ai.step("a", a), ai.step("b", recorder(calls, "b"))],
        snapshot_store=store,
    )
    result = wf.execute(
        run_id="r25", cancel=token, on={"workflow.cancelled": cancelled_events.append}
    )
    assert result.status == "cancelled" == result.report.status
    assert isinstance(result.error, ai.WorkflowCancelledError)
    assert result.error.reason == "user"
    assert result.error.message == "workflow cancelled: user"
    assert result.report.cancelled_at is not None
    assert "b" not in result.report.steps
    assert result.report.steps["a"].status == "completed"  # finished before the abort was seen
    assert calls == ["a"]
    snap = store.load("r25")
    assert snap.status == "cancelled"
    assert snap.next == "b"  # deliberate deviation: keeps the step that would have run
    assert snap.state == {"a": 1}
    assert len(cancelled_events) == 1 and cancelled_events[0]["reason"] == "user"


# --- case 26 --------------------------------------------------------------------------------


def test_case_26_self_goto_exceeds_max_steps():
    """Case 26: a step that gotos itself with max_steps=5 -> MaxStepsExceededError."""
    calls = []
    wf = ai.workflow(
        name="wf26",
        steps=[ai.step("a", recorder(calls, "a"), next_step=lambda ctx: {"goto": "a"})],
        max_steps=5,
        loop_warn_after=100,
    )
    result = wf.execute()
    assert result.status == "failed"
    assert isinstance(result.error, ai.MaxStepsExceededError)
    assert result.error.max_steps == 5
    assert result.error.code == "WORKFLOW_MAX_STEPS"
    assert len(calls) == 5


# --- case 27 --------------------------------------------------------------------------------


def test_case_27_loop_warning_without_error():
    """Case 27: loop_warn_after=3, a loop that ends at count 5 -> a loop warning, no error."""
    warnings = []

    def count(ctx):
        ctx.state["n"] = ctx.state.get("n", 0) + 1

    def again(ctx):
        return {"end": True} if ctx.state["n"] >= 5 else {"goto": "loop"}

    wf = ai.workflow(
        name="wf27",
        steps=[ai.step("loop", count, next_step=again)],
        loop_warn_after=3,
    )
    result = wf.execute(on={"workflow.loop.warning": warnings.append})
    assert result.error is None and result.status == "completed"
    assert result.report.state == {"n": 5}
    assert len(warnings) >= 1
    assert len(warnings) == 1  # fires once per step name, on exactly the Nth entry
    assert warnings[0]["step"] == "loop"
    assert warnings[0]["entered_count"] == 3
    assert warnings[0]["last_goto"] == "loop"


# --- case 28 --------------------------------------------------------------------------------


def test_case_28_goto_unknown_step_is_routing_error():
    """Case 28: a goto to an unknown step -> RoutingError."""
    wf = ai.workflow(
        name="wf28a",
        steps=[ai.step("a", setter(a=1), next_step=lambda ctx: {"goto": "nowhere"})],
    )
    result = wf.execute()
    assert result.status == "failed"
    assert isinstance(result.error, ai.RoutingError)
    assert result.error.code == "WORKFLOW_INVALID_GOTO"
    assert result.error.target_name == "nowhere"
    assert result.error.step_name == "a"


def test_case_28_next_step_that_raises_is_routing_error():
    """Case 28: a next_step that raises -> RoutingError (not retried)."""
    calls = []

    def router(ctx):
        raise KeyError("bad router")

    wf = ai.workflow(
        name="wf28b",
        steps=[
            ai.step(
                "a",
                recorder(calls, "a"),
                next_step=router,
                retry=ai.Retry(attempts=3, backoff="none"),
            ),
            ai.step("b", recorder(calls, "b")),
        ],
    )
    result = wf.execute()
    assert result.status == "failed"
    assert isinstance(result.error, ai.RoutingError)
    assert result.error.code == "WORKFLOW_INVALID_GOTO"
    assert result.error.step_name == "a"
    assert isinstance(result.error.__cause__, KeyError)
    assert calls == ["a"]


def test_case_28_goto_to_a_parallel_child_is_routing_error():
    """Case 28 (1.9): parallel children are never goto targets."""
    wf = ai.workflow(
        name="wf28c",
        steps=[
            ai.parallel("group", [ai.step("child", setter(c=1))]),
            ai.step("a", setter(a=1), next_step=lambda ctx: {"goto": "child"}),
        ],
    )
    result = wf.execute()
    assert isinstance(result.error, ai.RoutingError)
    assert result.error.target_name == "child"


# --- case 29 --------------------------------------------------------------------------------


class BrokenStore(SnapshotStore):
    """A store whose save always raises."""

    write_retry_seconds = 0.0  # a failure that lasts: no retries to wait for

    def __init__(self):
        self.saves = 0

    def load(self, run_id):
        return None

    def save(self, snapshot):
        self.saves += 1
        raise ConnectionError("database is down")

    def delete(self, run_id):
        return False

    def list(self, prefix=""):
        return []


def test_case_29_failing_save_never_aborts_the_run():
    """Case 29: save always raises -> status still completed, workflow.error emitted."""
    store = BrokenStore()
    errors = []
    calls = []
    wf = ai.workflow(
        name="wf29",
        steps=[ai.step("a", recorder(calls, "a")), ai.step("b", recorder(calls, "b"))],
        snapshot_store=store,
    )
    result = wf.execute(on={"workflow.error": errors.append})
    assert result.status == "completed"
    assert result.error is None
    assert calls == ["a", "b"]
    assert store.saves >= 1
    assert len(errors) >= 1
    assert all(isinstance(e["error"], ai.AIError) for e in errors)
    assert all(e["phase"] == "persist" for e in errors)
    assert "database is down" in errors[0]["error"].message


async def test_case_29_failing_save_never_aborts_the_run_async():
    """Case 29 (async twin): asave raises -> status still completed, workflow.error emitted."""
    store = BrokenStore()
    errors = []
    wf = ai.workflow(name="wf29b", steps=[ai.step("a", setter(a=1))], snapshot_store=store)
    result = await wf.aexecute(on={"workflow.error": errors.append})
    assert result.status == "completed" and result.error is None
    assert result.report.state == {"a": 1}
    assert len(errors) >= 1


# --- case 30 --------------------------------------------------------------------------------


def test_case_30_duplicate_top_level_name():
    """Case 30: a duplicate top-level step name -> WorkflowError."""
    with pytest.raises(ai.WorkflowError):
        ai.workflow(name="w", steps=[ai.step("a", setter()), ai.step("a", setter())])


def test_case_30_duplicate_with_parallel_child():
    """Case 30: a parallel child shares the namespace with top-level steps and siblings."""
    with pytest.raises(ai.WorkflowError):
        ai.workflow(
            name="w",
            steps=[ai.step("a", setter()), ai.parallel("g", [ai.step("a", setter())])],
        )
    with pytest.raises(ai.WorkflowError):
        ai.workflow(
            name="w",
            steps=[
                ai.parallel("g1", [ai.step("x", setter())]),
                ai.parallel("g2", [ai.step("x", setter())]),
            ],
        )
    with pytest.raises(ai.WorkflowError):
        ai.workflow(name="w", steps=[ai.parallel("g", [ai.step("g", setter())])])


def test_case_30_step_without_name():
    """Case 30: step() without a name -> WorkflowError."""
    with pytest.raises(ai.WorkflowError):
        ai.step(None, setter())
    with pytest.raises(ai.WorkflowError):
        ai.step("", setter())


def test_case_30_step_with_two_modes():
    """Case 30: step() with two modes -> WorkflowError."""
    with pytest.raises(ai.WorkflowError):
        ai.step("s", setter(), agent=Agent("writer"), input=lambda ctx: {"prompt": "p"})
    with pytest.raises(ai.WorkflowError):
        ai.step("s", setter(), parallel=[ai.step("c", setter())])


def test_case_30_step_with_no_mode():
    """Case 30: step() with no mode -> WorkflowError."""
    with pytest.raises(ai.WorkflowError):
        ai.step("s")


def test_case_30_agent_step_without_input():
    """Case 30: step() with an agent but no input function -> WorkflowError."""
    with pytest.raises(ai.WorkflowError):
        ai.step("s", agent=Agent("writer"))
    with pytest.raises(ai.WorkflowError):
        ai.step("s", agent=Agent("writer"), input={"prompt": "not a function"})


def test_case_30_workflow_name_and_steps_are_required():
    """Case 30 (1.1): a missing name or an empty step list -> WorkflowError."""
    with pytest.raises(ai.WorkflowError):
        ai.workflow(name=None, steps=[ai.step("a", setter())])
    with pytest.raises(ai.WorkflowError):
        ai.workflow(name="w", steps=[])
    with pytest.raises(ai.WorkflowError):
        ai.workflow(name="w", steps=None)


# --- case 31 --------------------------------------------------------------------------------


def run_step(name):
    return ai.step(name, setter())


def sig(steps, name="wf", version=None, **kwargs):
    return ai.workflow(name=name, version=version, steps=steps, **kwargs).signature


def test_case_31_signature_is_8_lowercase_hex_and_deterministic():
    """Case 31: 8 lowercase hex characters; deterministic for identical definitions."""
    s1 = sig([run_step("a"), run_step("b")])
    s2 = sig([run_step("a"), run_step("b")])
    assert len(s1) == 8 and all(c in "0123456789abcdef" for c in s1)
    assert s1 == s2


def test_case_31_signature_is_stable_across_processes():
    """Case 31: deterministic across interpreter restarts (no hash randomisation)."""
    code = (
        "import warlock_ai as ai\n"
        "wf = ai.workflow(name='wf', steps=[ai.step('a', lambda c: None),"
        " ai.step('b', lambda c: None)])\n"
        "print(wf.signature)\n"
    )
    outs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": seed},
        ).stdout.strip()
        for seed in ("1", "2")
    }
    assert outs == {"61ec7463"}


def test_case_31_signature_changes():
    """Case 31: name, version, added/renamed step, order, kind, agent name, children change it."""
    base = sig([run_step("a"), run_step("b")])
    agent_step = ai.step("a", agent=Agent("writer"), input=lambda ctx: {"prompt": "p"})
    variants = {
        "name": sig([run_step("a"), run_step("b")], name="other"),
        "version": sig([run_step("a"), run_step("b")], version="1"),
        "version2": sig([run_step("a"), run_step("b")], version="2"),
        "added step": sig([run_step("a"), run_step("b"), run_step("c")]),
        "renamed step": sig([run_step("a"), run_step("c")]),
        "swapped order": sig([run_step("b"), run_step("a")]),
        "kind empty": sig([ai.Step(name="a"), run_step("b")]),
        "kind agent": sig([agent_step, run_step("b")]),
    }
    for label, value in variants.items():
        assert value != base, label
    assert variants["version"] != variants["version2"]
    # run vs empty vs agent are three different kinds
    assert len({base, variants["kind empty"], variants["kind agent"]}) == 3


def test_case_31_signature_agent_name_matters():
    """Case 31: the agent name is part of the signature."""

    def agent_wf(agent_name):
        return sig([ai.step("s", agent=Agent(agent_name), input=lambda ctx: {"prompt": "p"})])

    assert agent_wf("writer") == agent_wf("writer")
    assert agent_wf("writer") != agent_wf("editor")


def test_case_31_signature_parallel_children_names_and_order():
    """Case 31: parallel child names and order change it; empty parallel != non-empty."""

    def group(*names):
        return sig([ai.parallel("fan", [run_step(n) for n in names])])

    base = group("a", "b")
    assert group("a", "b") == base
    assert group("b", "a") != base
    assert group("a", "c") != base
    assert group("a") != base
    empty = sig([ai.Step(name="fan", parallel=())])
    assert empty != base
    assert empty != group("a")
    # a group is not the same as a run step of the same name
    assert sig([run_step("fan")]) not in {base, empty}


def test_case_31_signature_ignores_description_callbacks_retry_and_store():
    """Case 31 / 1.14: description, callbacks, retry, max_steps, output and store are ignored."""
    base = sig([run_step("a"), run_step("b")])
    assert sig([run_step("a"), run_step("b")], description="something else") == base
    assert sig([ai.step("a", boom(), description="d"), ai.step("b", lambda ctx: 42)]) == base
    assert (
        sig(
            [
                ai.step(
                    "a",
                    setter(),
                    retry=ai.Retry(attempts=9, backoff="linear"),
                    skip=lambda ctx: False,
                    next_step=lambda ctx: None,
                    on_failure=lambda ctx, err: None,
                    output=ai.Output(extract=lambda ctx: 1),
                ),
                ai.step("b", setter(), retry=False),
            ]
        )
        == base
    )
    assert (
        sig(
            [run_step("a"), run_step("b")],
            snapshot_store=ai.snapshot.memory(),
            default_retry=ai.Retry(attempts=3),
            max_steps=7,
            loop_warn_after=2,
            output=ai.Output(extract=lambda ctx: ctx.state),
            next_step=lambda name, ctx: None,
            on={"workflow.completed": lambda p: None},
        )
        == base
    )


WORKFLOW_VECTORS = [
    ('{"n":"wf","v":null,"s":[{"n":"a","t":"run","c":null}]}', "82fd33fa"),
    (
        '{"n":"wf","v":null,"s":[{"n":"a","t":"run","c":null},{"n":"b","t":"run","c":null}]}',
        "61ec7463",
    ),
    ('{"n":"wf","v":"1","s":[{"n":"a","t":"run","c":null}]}', "e092fb10"),
    (
        '{"n":"wf","v":null,"s":[{"n":"fan","t":"parallel","c":[{"n":"a","t":"run","c":null},'
        '{"n":"b","t":"run","c":null}]}]}',
        "19bd70d0",
    ),
    ('{"n":"wf","v":null,"s":[{"n":"fan","t":"parallel","c":[]}]}', "109e5a6d"),
    ('{"n":"wf","v":null,"s":[{"n":"s","t":"agent","a":"writer","c":null}]}', "c3fb0882"),
    ('{"n":"wf","v":null,"s":[{"n":"s","t":"empty","c":null}]}', "9171a208"),
    ('{"n":"wf","v":null,"s":[]}', "1f24a29c"),
]

OTHER_VECTORS = [
    (
        '{"n":"persistor","a":[{"k":"worker","d":"does work","u":{"t":"agent","n":"worker"}}],'
        '"r":null,"rc":1,"e":0,"i":null,"m":null,"c":null}',
        "0bfcf116",
    ),
    (
        '{"n":"counter","a":[{"k":"bump","d":"Increment the session counter",'
        '"u":{"t":"callback"}}],"r":null,"rc":1,"e":0,"i":null,"m":null,"it":0,'
        '"hw":{"router":null,"agents":null}}',
        "5e218f74",
    ),
]


@pytest.mark.parametrize(("text", "expected"), WORKFLOW_VECTORS + OTHER_VECTORS)
def test_case_31_fnv_hex_matches_reference_vectors(text, expected):
    """Case 31 / 0.4: fnv_hex over each vector's JSON string gives the reference hash."""
    assert fnv_hex(text) == expected


def _vector_workflows():
    agent_step = ai.step("s", agent=Agent("writer"), input=lambda ctx: {"prompt": "p"})
    return [
        ai.workflow(name="wf", steps=[run_step("a")]),
        ai.workflow(name="wf", steps=[run_step("a"), run_step("b")]),
        ai.workflow(name="wf", version="1", steps=[run_step("a")]),
        ai.workflow(name="wf", steps=[ai.parallel("fan", [run_step("a"), run_step("b")])]),
        ai.workflow(name="wf", steps=[ai.Step(name="fan", parallel=())]),
        ai.workflow(name="wf", steps=[agent_step]),
        ai.workflow(name="wf", steps=[ai.Step(name="s")]),
    ]


@pytest.mark.parametrize("index", range(7))
def test_case_31_workflow_fingerprint_and_signature_match_vectors(index):
    """Case 31 / 0.4: each workflow vector is reproduced by a real definition, byte for byte."""
    wf = _vector_workflows()[index]
    text, expected = WORKFLOW_VECTORS[index]
    assert compact_json(wf.fingerprint) == text
    assert wf.fingerprint == json.loads(text)
    assert wf.signature == expected


def test_case_31_empty_step_list_vector():
    """Case 31 / 0.4: the empty-steps vector hashes right; the factory refuses such a workflow."""
    assert signature_of({"n": "wf", "v": None, "s": []}) == "1f24a29c"
    with pytest.raises(ai.WorkflowError):
        ai.workflow(name="wf", steps=[])


def test_case_31_short_fnv_examples():
    """Case 31 / 0.4: the unpadded helper: hello, empty string, a 7-character result."""
    assert fnv_short("hello") == "4f9f2cab"
    assert fnv_short("") == "811c9dc5"
    assert fnv_short("session:user-a") == "2e5cf9e"
    assert fnv_hex("session:user-a") == "02e5cf9e"


def test_case_31_empty_step_runs_as_a_no_op():
    """Case 31 / 1.1: a directly constructed empty step is allowed and runs as a no-op."""
    wf = ai.workflow(name="wf", steps=[ai.Step(name="s"), run_step("after")])
    result = wf.execute()
    assert result.error is None
    assert result.report.steps["s"].status == "completed"
    assert result.report.steps["after"].status == "completed"


# --- case 32 --------------------------------------------------------------------------------


def test_case_32_positional_and_keyword_input_are_equivalent():
    """Case 32: execute(input, run_id=...) and execute(input=..., run_id=...) are equivalent."""

    def copy_input(ctx):
        ctx.state["got"] = ctx.input
        ctx.state["run_id"] = ctx.run_id

    store = ai.snapshot.memory()
    wf = ai.workflow(name="wf32", steps=[ai.step("a", copy_input)], snapshot_store=store)
    r1 = wf.execute({"q": 1}, run_id="r32a")
    r2 = wf.execute(input={"q": 1}, run_id="r32b")
    assert r1.error is None and r2.error is None
    assert r1.status == r2.status == "completed"
    assert r1.report.run_id == "r32a" and r2.report.run_id == "r32b"
    assert r1.report.state == {"got": {"q": 1}, "run_id": "r32a"}
    assert r2.report.state == {"got": {"q": 1}, "run_id": "r32b"}
    assert store.load("r32a").input == store.load("r32b").input == {"q": 1}


def test_case_32_execute_never_raises_when_a_step_throws():
    """Case 32: execute never raises when a step throws (plain or library exceptions)."""
    for exc in (ValueError("v"), KeyError("k"), ai.AgentExecutionError("agent")):

        def raises(ctx, exc=exc):
            raise exc

        wf = ai.workflow(name="wf32b", steps=[ai.step("a", raises)])
        result = wf.execute({"x": 1})
        assert result.status == "failed"
        assert isinstance(result.error, ai.StepFailedError)
        assert result.error.step_name == "a"
        assert result.error.__cause__ is not None


async def test_case_32_aexecute_never_raises_when_a_step_throws():
    """Case 32 (async twin): aexecute never raises when a step throws."""

    async def raises(ctx):
        raise RuntimeError("async boom")

    wf = ai.workflow(name="wf32c", steps=[ai.step("a", raises)])
    result = await wf.aexecute(input={"x": 1})
    assert result.status == "failed"
    assert isinstance(result.error, ai.StepFailedError)
    assert "async boom" in result.error.message


# --- case 33 --------------------------------------------------------------------------------


def _reject(value):
    raise ValueError("total must be positive")


class RejectingSchema:
    def validate(self, value):
        raise ValueError("bad shape")


@pytest.mark.parametrize("schema", [_reject, RejectingSchema()], ids=["callable", "validate"])
def test_case_33_failing_workflow_output_schema(schema):
    """Case 33: a failing workflow output schema -> failed, SchemaValidationError, no data."""
    store = ai.snapshot.memory()
    errors = []
    wf = ai.workflow(
        name="wf33",
        steps=[ai.step("a", setter(total=-1))],
        output=ai.Output(extract=lambda ctx: ctx.state["total"], schema=schema),
        snapshot_store=store,
    )
    result = wf.execute(run_id="r33", on={"workflow.error": errors.append})
    assert result.status == "failed" == result.report.status
    assert isinstance(result.error, ai.SchemaValidationError)
    assert result.error.code == "SCHEMA_VALIDATION_FAILED"
    assert result.data is None
    assert result.report.error is result.error
    assert store.load("r33").status == "failed"
    assert errors and isinstance(errors[-1]["error"], ai.SchemaValidationError)


def test_case_33_passing_output_schema_sets_data():
    """Case 33 (control): a passing schema's returned value becomes result.data."""
    wf = ai.workflow(
        name="wf33b",
        steps=[ai.step("a", setter(total=2))],
        output=ai.Output(extract=lambda ctx: ctx.state["total"], schema=lambda v: v * 10),
    )
    result = wf.execute()
    assert result.error is None and result.data == 20
