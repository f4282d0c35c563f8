"""Acceptance cases 1-17 of reference/warlock-behaviour.md section 12 (workflow engine).

Each test names its case in the docstring. Where the SPEC deliberately deviates from the
TypeScript reference (snapshot written at start, completed runs short-circuit on resume,
drift errors carry ``completed_steps``/``pending_step``, a failed parallel group leaves the
state unchanged, the memory store round-trips through JSON), the new behaviour is asserted.
"""

from __future__ import annotations

import asyncio
import time

import pytest

import warlock_ai as ai

# --- helpers ------------------------------------------------------------------------------


def setter(calls: list[str], name: str, key: str, value):
    """A run function that records its call and writes ``state[key] = value``."""

    def run(ctx):
        calls.append(name)
        ctx.state[key] = value

    return run


def recorder(calls: list[str], name: str):
    def run(ctx):
        calls.append(name)

    return run


def boom(calls: list[str], name: str, message: str = "boom"):
    def run(ctx):
        calls.append(name)
        raise RuntimeError(f"{message} in {name}")

    return run


NO_RETRY = ai.Retry(attempts=1, backoff="none")


# --- case 1 -------------------------------------------------------------------------------


def test_case_01_snapshot_written_on_completion():
    """Case 1: two steps set a=1, b=2 with a memory store and run_id r1 -> the loaded
    snapshot has status completed, the report's signature and state >= {a: 1, b: 2}."""
    store = ai.snapshot.memory()
    calls: list[str] = []
    wf = ai.workflow(
        name="wf",
        steps=[ai.step("a", setter(calls, "a", "a", 1)), ai.step("b", setter(calls, "b", "b", 2))],
        snapshot_store=store,
    )

    result = wf.execute({"x": 1}, run_id="r1")

    assert result.error is None
    assert result.status == "completed"
    assert calls == ["a", "b"]
    snap = store.load("r1")
    assert isinstance(snap, ai.WorkflowSnapshot)
    assert snap.run_id == "r1"
    assert snap.workflow_name == "wf"
    assert snap.status == "completed"
    assert snap.next is None
    assert snap.signature == result.report.signature == wf.signature
    assert snap.state.items() >= {"a": 1, "b": 2}.items()
    assert snap.input == {"x": 1}
    assert snap.steps["a"].status == "completed"
    assert snap.steps["b"].status == "completed"
    # Deviation: the memory store round-trips through JSON, so a loaded snapshot is a copy.
    assert snap.state is not result.report.state
    snap.state["a"] = 99
    assert store.load("r1").state["a"] == 1


def test_case_01_snapshot_written_at_start_is_visible_during_first_step():
    """Case 1 (deviation): a snapshot is written when the run starts (status running,
    next = first step), so it is visible while step "a" is starting."""
    store = ai.snapshot.memory()
    seen: list[tuple[str, str | None, str | None, dict]] = []

    def on_step_starting(payload):
        if payload["step"] == "a":
            snap = store.load(payload["run_id"])
            assert snap is not None, "no snapshot visible when step a starts"
            seen.append((payload["step"], snap.status, snap.next, dict(snap.state)))

    wf = ai.workflow(
        name="wf",
        steps=[ai.step("a", setter([], "a", "a", 1)), ai.step("b", setter([], "b", "b", 2))],
        snapshot_store=store,
    )

    result = wf.execute(None, run_id="r1", on={"workflow.step.starting": on_step_starting})

    assert result.error is None
    assert seen == [("a", "running", "a", {})]
    assert store.load("r1").status == "completed"


# --- cases 2 and 3: drift -----------------------------------------------------------------


def _one_step_run(store, run_id: str = "drift-1"):
    calls: list[str] = []
    wf1 = ai.workflow(
        name="drifty", steps=[ai.step("a", setter(calls, "a", "a", 1))], snapshot_store=store
    )
    result = wf1.execute(None, run_id=run_id)
    assert result.error is None
    return wf1, calls


def test_case_02_resume_with_changed_definition_raises_drift_error():
    """Case 2: a run saved under a one-step definition, resumed by a definition with an extra
    step -> WorkflowDriftError (code WORKFLOW_DRIFT, saved/current signatures, run_id, and,
    as a deliberate addition, completed_steps and pending_step)."""
    store = ai.snapshot.memory()
    wf1, _ = _one_step_run(store)
    calls: list[str] = []
    wf2 = ai.workflow(
        name="drifty",
        steps=[ai.step("a", setter(calls, "a", "a", 1)), ai.step("b", setter(calls, "b", "b", 2))],
        snapshot_store=store,
    )
    assert wf1.signature != wf2.signature
    before = store.load("drift-1")

    with pytest.raises(ai.WorkflowDriftError) as info:
        wf2.resume("drift-1")

    err = info.value
    assert isinstance(err, ai.WorkflowError)
    assert err.code == "WORKFLOW_DRIFT"
    assert err.category == "drift"
    assert err.saved_signature == wf1.signature
    assert err.current_signature == wf2.signature
    assert err.run_id == "drift-1"
    assert err.completed_steps == ["a"]
    assert err.pending_step == "b"
    # Nothing ran and nothing was written.
    assert calls == []
    after = store.load("drift-1")
    assert after.saved_at == before.saved_at
    assert after.signature == wf1.signature


def test_case_03_force_resume_ignores_drift():
    """Case 3: same as case 2 with force=True -> resolves with error None. The saved run is
    completed, so (deliberate deviation) it returns the stored result and runs nothing."""
    store = ai.snapshot.memory()
    _wf1, calls1 = _one_step_run(store)
    calls: list[str] = []
    wf2 = ai.workflow(
        name="drifty",
        steps=[ai.step("a", setter(calls, "a", "a", 1)), ai.step("b", setter(calls, "b", "b", 2))],
        snapshot_store=store,
    )

    result = wf2.resume("drift-1", force=True)

    assert result.error is None
    assert result.status == "completed"
    assert result.report.state == {"a": 1}
    assert calls1 == ["a"]
    assert calls == [], "resuming a completed run must run nothing"


def test_case_03_force_resume_of_unfinished_run_continues_under_new_definition():
    """Case 3 (variant): force=True on a drifted *failed* run skips only the signature check:
    the run continues under the new definition, completed steps are not re-run."""
    store = ai.snapshot.memory()
    calls: list[str] = []
    wf1 = ai.workflow(
        name="drifty",
        steps=[ai.step("a", setter(calls, "a", "a", 1)), ai.step("b", boom(calls, "b"))],
        snapshot_store=store,
    )
    assert wf1.execute(None, run_id="drift-2").status == "failed"
    wf2 = ai.workflow(
        name="drifty",
        steps=[
            ai.step("a", setter(calls, "a2", "a", 1)),
            ai.step("b", setter(calls, "b2", "b", 2)),
            ai.step("c", setter(calls, "c2", "c", 3)),
        ],
        snapshot_store=store,
    )

    result = wf2.resume("drift-2", force=True)

    assert result.error is None
    assert result.status == "completed"
    assert calls == ["a", "b", "b2", "c2"]
    assert result.report.state == {"a": 1, "b": 2, "c": 3}
    assert store.load("drift-2").signature == wf2.signature


# --- case 4 -------------------------------------------------------------------------------


def test_case_04_resume_after_failure_does_not_rerun_completed_steps():
    """Case 4: b throws on the first run (a completes); fix b and resume with a new instance
    -> completed, state.b == "done", a's run function called once in total."""
    store = ai.snapshot.memory()
    calls: list[str] = []
    run_a = setter(calls, "a", "a", 1)
    wf1 = ai.workflow(
        name="fixme",
        steps=[ai.step("a", run_a), ai.step("b", boom(calls, "b"))],
        snapshot_store=store,
    )

    first = wf1.execute(None, run_id="r4")

    assert first.status == "failed"
    assert isinstance(first.error, ai.StepFailedError)
    assert store.load("r4").next == "b"

    wf2 = ai.workflow(
        name="fixme",
        steps=[ai.step("a", run_a), ai.step("b", setter(calls, "b-fixed", "b", "done"))],
        snapshot_store=store,
    )
    assert wf2.signature == wf1.signature

    second = wf2.resume("r4")

    assert second.error is None
    assert second.status == "completed"
    assert second.report.state["b"] == "done"
    assert second.report.state["a"] == 1
    assert calls.count("a") == 1
    assert calls == ["a", "b", "b-fixed"]
    snap = store.load("r4")
    assert snap.status == "completed"
    assert snap.state.items() >= {"a": 1, "b": "done"}.items()


# --- case 5 -------------------------------------------------------------------------------


def test_case_05_retries_exhausted_fail_the_run_and_stop_it():
    """Case 5: b fails with Retry(attempts=2, backoff="none"), c follows -> call order
    [a, b, b], StepFailedError, status failed, steps.b failed, steps.c absent."""
    calls: list[str] = []
    wf = ai.workflow(
        name="retry5",
        steps=[
            ai.step("a", recorder(calls, "a")),
            ai.step("b", boom(calls, "b"), retry=ai.Retry(attempts=2, backoff="none")),
            ai.step("c", recorder(calls, "c")),
        ],
    )

    result = wf.execute()

    assert calls == ["a", "b", "b"]
    assert result.status == "failed"
    assert result.report.status == "failed"
    err = result.error
    assert isinstance(err, ai.StepFailedError)
    assert err.code == "STEP_FAILED"
    assert err.step_name == "b"
    assert err.attempts == 2
    assert '"b"' in err.message
    assert err.__cause__ is not None
    assert "boom in b" in str(err.__cause__)
    assert result.report.error is err
    steps = result.report.steps
    assert steps["a"].status == "completed"
    assert steps["b"].status == "failed"
    assert steps["b"].attempts == 2
    assert [a.status for a in steps["b"].attempt_history] == ["failed", "failed"]
    assert isinstance(steps["b"].error, ai.StepFailedError)
    assert "c" not in steps


# --- case 6 -------------------------------------------------------------------------------


def test_case_06_next_step_not_called_for_failed_step():
    """Case 6: a failing step with a next_step spy -> the spy is never called; failed."""
    spy_calls: list[str] = []
    workflow_router_calls: list[str] = []

    def spy(ctx):
        spy_calls.append("called")
        return {"goto": "after"}

    def wf_router(step_name, ctx):
        workflow_router_calls.append(step_name)

    wf = ai.workflow(
        name="spy6",
        steps=[
            ai.step("bad", boom([], "bad"), next_step=spy),
            ai.step("after", recorder([], "after")),
        ],
        next_step=wf_router,
    )

    result = wf.execute()

    assert spy_calls == []
    assert workflow_router_calls == []
    assert result.status == "failed"
    assert isinstance(result.error, ai.StepFailedError)
    assert "after" not in result.report.steps


# --- case 7 -------------------------------------------------------------------------------


def test_case_07_failed_snapshot_points_at_failed_step():
    """Case 7: b fails with a store -> snapshot next == "b", status failed, state >= {a: 1}."""
    store = ai.snapshot.memory()
    wf = ai.workflow(
        name="snap7",
        steps=[
            ai.step("a", setter([], "a", "a", 1)),
            ai.step("b", boom([], "b")),
            ai.step("c", recorder([], "c")),
        ],
        snapshot_store=store,
    )

    result = wf.execute(None, run_id="r7")

    assert result.status == "failed"
    snap = store.load("r7")
    assert snap.status == "failed"
    assert snap.next == "b"
    assert snap.state.items() >= {"a": 1}.items()
    assert snap.steps["a"].status == "completed"
    assert snap.steps["b"].status == "failed"
    assert isinstance(snap.steps["b"].error, ai.StepFailedError)
    assert snap.steps["b"].error.step_name == "b"
    assert "c" not in snap.steps
    assert snap.error is not None
    assert snap.error["name"] == "StepFailedError"
    assert snap.error["code"] == "STEP_FAILED"
    assert snap.error["step_name"] == "b"
    assert '"b"' in snap.error["message"]


# --- cases 8-13: on_failure -----------------------------------------------------------------


def test_case_08_on_failure_goto_fallback_recovers():
    """Case 8: primary fails, on_failure -> {goto: "fallback"} -> order [primary, fallback],
    completed, no error, steps.primary failed holding a StepFailedError, fallback completed."""
    calls: list[str] = []
    wf = ai.workflow(
        name="recover8",
        steps=[
            ai.step(
                "primary", boom(calls, "primary"), on_failure=lambda ctx, err: {"goto": "fallback"}
            ),
            ai.step("skipped_over", recorder(calls, "skipped_over")),
            ai.step("fallback", setter(calls, "fallback", "fallback", True)),
        ],
    )

    result = wf.execute()

    assert calls == ["primary", "fallback"]
    assert result.status == "completed"
    assert result.error is None
    assert result.report.error is None
    primary = result.report.steps["primary"]
    assert primary.status == "failed"
    assert isinstance(primary.error, ai.StepFailedError)
    assert primary.error.step_name == "primary"
    assert result.report.steps["fallback"].status == "completed"
    assert "skipped_over" not in result.report.steps
    assert result.report.state == {"fallback": True}


def test_case_09_on_failure_end_completes_without_downstream():
    """Case 9: on_failure returns {end: True} -> completed, no error, downstream not run."""
    calls: list[str] = []
    wf = ai.workflow(
        name="end9",
        steps=[
            ai.step("primary", boom(calls, "primary"), on_failure=lambda ctx, err: {"end": True}),
            ai.step("downstream", recorder(calls, "downstream")),
        ],
    )

    result = wf.execute()

    assert result.status == "completed"
    assert result.error is None
    assert calls == ["primary"]
    assert "downstream" not in result.report.steps
    assert result.report.steps["primary"].status == "failed"


def test_case_09_on_failure_end_marker_completes_without_downstream():
    """Case 9 (variant): on_failure returns ai.END -> completed, downstream not run."""
    calls: list[str] = []
    wf = ai.workflow(
        name="end9b",
        steps=[
            ai.step("primary", boom(calls, "primary"), on_failure=lambda ctx, err: ai.END),
            ai.step("downstream", recorder(calls, "downstream")),
        ],
    )

    result = wf.execute()

    assert result.status == "completed"
    assert result.error is None
    assert calls == ["primary"]
    assert "downstream" not in result.report.steps


def test_case_10_on_failure_returning_none_halts():
    """Case 10: on_failure returns None -> called once, failed, StepFailedError, downstream
    absent."""
    calls: list[str] = []
    handler_calls: list[str] = []

    def on_failure(ctx, err):
        handler_calls.append(type(err).__name__)

    wf = ai.workflow(
        name="halt10",
        steps=[
            ai.step(
                "primary",
                boom(calls, "primary"),
                on_failure=on_failure,
                retry=ai.Retry(attempts=2, backoff="none"),
            ),
            ai.step("downstream", recorder(calls, "downstream")),
        ],
    )

    result = wf.execute()

    assert handler_calls == ["StepFailedError"]
    assert calls == ["primary", "primary"]
    assert result.status == "failed"
    assert isinstance(result.error, ai.StepFailedError)
    assert result.error.step_name == "primary"
    assert result.error.attempts == 2
    assert "downstream" not in result.report.steps


def test_case_11_on_failure_that_raises_gives_routing_error():
    """Case 11: on_failure raises -> RoutingError (code WORKFLOW_INVALID_GOTO), failed."""
    calls: list[str] = []

    def on_failure(ctx, err):
        raise ValueError("handler exploded")

    wf = ai.workflow(
        name="route11a",
        steps=[
            ai.step("primary", boom(calls, "primary"), on_failure=on_failure),
            ai.step("downstream", recorder(calls, "downstream")),
        ],
    )

    result = wf.execute()

    assert result.status == "failed"
    err = result.error
    assert isinstance(err, ai.RoutingError)
    assert isinstance(err, ai.WorkflowError)
    assert err.code == "WORKFLOW_INVALID_GOTO"
    assert err.category == "routing"
    assert err.step_name == "primary"
    assert err.target_name is None
    assert isinstance(err.__cause__, ValueError)
    assert calls == ["primary"]
    assert "downstream" not in result.report.steps


def test_case_11_on_failure_goto_unknown_step_gives_routing_error():
    """Case 11: on_failure routes to "doesNotExist" -> RoutingError naming it, failed."""
    calls: list[str] = []
    wf = ai.workflow(
        name="route11b",
        steps=[
            ai.step(
                "primary",
                boom(calls, "primary"),
                on_failure=lambda ctx, err: {"goto": "doesNotExist"},
            ),
            ai.step("downstream", recorder(calls, "downstream")),
        ],
    )

    result = wf.execute()

    assert result.status == "failed"
    err = result.error
    assert isinstance(err, ai.RoutingError)
    assert err.code == "WORKFLOW_INVALID_GOTO"
    assert err.category == "routing"
    assert err.step_name == "primary"
    assert err.target_name == "doesNotExist"
    assert "doesNotExist" in err.message
    assert calls == ["primary"]
    assert "downstream" not in result.report.steps


def test_case_12_on_failure_receives_step_failed_error_naming_the_step():
    """Case 12: the error passed to on_failure is a StepFailedError whose message contains
    the step name (and whose cause is the original exception)."""
    received: list[BaseException] = []

    def on_failure(ctx, err):
        received.append(err)
        return {"end": True}

    wf = ai.workflow(
        name="err12",
        steps=[ai.step("flaky_fetch", boom([], "flaky_fetch"), on_failure=on_failure)],
    )

    result = wf.execute()

    assert result.status == "completed"
    assert len(received) == 1
    err = received[0]
    assert isinstance(err, ai.StepFailedError)
    assert "flaky_fetch" in str(err)
    assert "flaky_fetch" in err.message
    assert err.step_name == "flaky_fetch"
    assert err.attempts == 1
    assert isinstance(err.__cause__, Exception)
    assert "boom in flaky_fetch" in str(err.__cause__)


def test_case_13_recovered_failure_final_snapshot():
    """Case 13: recovered failure with a store -> final snapshot completed, primary failed,
    fallback completed."""
    store = ai.snapshot.memory()
    calls: list[str] = []
    wf = ai.workflow(
        name="recover13",
        steps=[
            ai.step(
                "primary", boom(calls, "primary"), on_failure=lambda ctx, err: {"goto": "fallback"}
            ),
            ai.step("fallback", setter(calls, "fallback", "recovered", True)),
        ],
        snapshot_store=store,
    )

    result = wf.execute(None, run_id="r13")

    assert result.status == "completed"
    assert result.error is None
    assert calls == ["primary", "fallback"]
    snap = store.load("r13")
    assert snap.status == "completed"
    assert snap.next is None
    assert snap.error is None
    assert snap.steps["primary"].status == "failed"
    assert isinstance(snap.steps["primary"].error, ai.StepFailedError)
    assert snap.steps["primary"].error.step_name == "primary"
    assert snap.steps["fallback"].status == "completed"
    assert snap.state == {"recovered": True}


# --- cases 14-17: parallel groups ---------------------------------------------------------


def test_case_14_parallel_group_with_failing_child():
    """Case 14: child-a ok, child-b throws, child-c ok, downstream follows -> all three
    run, group failed, child-a/child-c completed (flat path), child-b failed, downstream
    absent, run failed. Deviation: the failed group leaves the state unchanged."""
    store = ai.snapshot.memory()
    calls: list[str] = []
    wf = ai.workflow(
        name="group14",
        steps=[
            ai.step("seed", setter(calls, "seed", "seed", 1)),
            ai.parallel(
                "group",
                [
                    ai.step("child-a", setter(calls, "child-a", "a", 1)),
                    ai.step("child-b", boom(calls, "child-b")),
                    ai.step("child-c", setter(calls, "child-c", "c", 3)),
                ],
            ),
            ai.step("downstream", recorder(calls, "downstream")),
        ],
        snapshot_store=store,
    )

    result = wf.execute(None, run_id="r14")

    assert sorted(calls) == ["child-a", "child-b", "child-c", "seed"]
    assert calls[0] == "seed"
    assert "downstream" not in calls
    assert result.status == "failed"
    err = result.error
    assert isinstance(err, ai.StepFailedError)
    assert err.step_name == "child-b"  # the child's error, passed through unwrapped
    steps = result.report.steps
    assert steps["group"].status == "failed"
    assert steps["group"].attempts == 1
    assert steps["group"].error is err
    assert set(steps["group"].steps) == {"child-a", "child-b", "child-c"}
    assert steps["child-a"].status == "completed"
    assert steps["child-c"].status == "completed"
    assert steps["child-b"].status == "failed"
    assert isinstance(steps["child-b"].error, ai.StepFailedError)
    assert "downstream" not in steps
    assert result.report.state == {"seed": 1}
    snap = store.load("r14")
    assert snap.status == "failed"
    assert snap.next == "group"
    assert snap.state == {"seed": 1}
    assert snap.steps["group"].status == "failed"
    assert snap.steps["child-a"].status == "completed"
    assert snap.steps["child-b"].status == "failed"
    assert snap.steps["child-c"].status == "completed"
    assert "downstream" not in snap.steps


def test_case_15_parallel_group_on_failure_recovers():
    """Case 15: a group with a failing child and the parent's on_failure -> goto fallback
    -> completed, and the fallback ran."""
    calls: list[str] = []
    received: list[BaseException] = []

    def on_failure(ctx, err):
        received.append(err)
        return {"goto": "fallback"}

    wf = ai.workflow(
        name="group15",
        steps=[
            ai.parallel(
                "group",
                [ai.step("ok", recorder(calls, "ok")), ai.step("bad", boom(calls, "bad"))],
                on_failure=on_failure,
            ),
            ai.step("downstream", recorder(calls, "downstream")),
            ai.step("fallback", setter(calls, "fallback", "fallback", True)),
        ],
    )

    result = wf.execute()

    assert result.status == "completed"
    assert result.error is None
    assert sorted(calls[:2]) == ["bad", "ok"]
    assert calls[2:] == ["fallback"]
    assert len(received) == 1
    assert isinstance(received[0], ai.StepFailedError)
    assert received[0].step_name == "bad"
    steps = result.report.steps
    assert steps["group"].status == "failed"
    assert steps["fallback"].status == "completed"
    assert "downstream" not in steps
    assert result.report.state == {"fallback": True}


def test_case_16_parallel_merge_uses_declaration_order_sync():
    """Case 16: the first-declared child writes winner="first" after 25 ms, the second
    writes "second" after 1 ms (real threads) -> state.winner == "second"."""
    finished: list[str] = []

    def first(ctx):
        time.sleep(0.025)
        ctx.state["winner"] = "first"
        finished.append("first")

    def second(ctx):
        time.sleep(0.001)
        ctx.state["winner"] = "second"
        finished.append("second")

    wf = ai.workflow(
        name="race16",
        steps=[ai.parallel("group", [ai.step("first", first), ai.step("second", second)])],
    )

    result = wf.execute()

    assert result.error is None
    assert finished == ["second", "first"], "children did not run concurrently"
    assert result.report.state["winner"] == "second"
    assert result.report.steps["first"].status == "completed"
    assert result.report.steps["second"].status == "completed"


async def test_case_16_parallel_merge_uses_declaration_order_async():
    """Case 16 (async): async children with asyncio.sleep (200 ms vs 1 ms) via aexecute ->
    completion order second, first; state.winner == "second" (declaration order). (The gap
    was 25 ms; in tests/test_services.py's child pytest the second child started more than
    25 ms after the first, so the order there measured latency, not concurrency.)"""
    finished: list[str] = []

    async def first(ctx):
        await asyncio.sleep(0.2)
        ctx.state["winner"] = "first"
        finished.append("first")

    async def second(ctx):
        await asyncio.sleep(0.001)
        ctx.state["winner"] = "second"
        finished.append("second")

    store = ai.snapshot.memory()
    wf = ai.workflow(
        name="race16a",
        steps=[ai.parallel("group", [ai.step("first", first), ai.step("second", second)])],
        snapshot_store=store,
    )

    result = await wf.aexecute(None, run_id="r16a")

    assert result.error is None
    assert finished == ["second", "first"], "children did not run concurrently"
    assert result.report.state["winner"] == "second"
    snap = await store.aload("r16a")
    assert snap.status == "completed"
    assert snap.state["winner"] == "second"


def test_case_17_merge_state_reducer_sums():
    """Case 17: merge_state sums total; children write 10 and 5 -> state.total == 15. The
    reducer is called once per child, in declaration order."""
    merges: list[str] = []

    def merge(acc, child_state, child_name):
        merges.append(child_name)
        acc["total"] = acc.get("total", 0) + child_state.get("total", 0)

    def ten(ctx):
        time.sleep(0.01)  # finishes last: the reducer must still see declaration order
        ctx.state["total"] = 10

    def five(ctx):
        ctx.state["total"] = 5

    store = ai.snapshot.memory()
    wf = ai.workflow(
        name="sum17",
        steps=[
            ai.parallel("group", [ai.step("ten", ten), ai.step("five", five)], merge_state=merge)
        ],
        snapshot_store=store,
    )

    result = wf.execute(None, run_id="r17")

    assert result.error is None
    assert result.report.state["total"] == 15
    assert merges == ["ten", "five"]
    assert store.load("r17").state["total"] == 15
