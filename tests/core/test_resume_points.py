"""Where a resumed run continues after each kind of stop (reference 1.13, SPEC 1.1)."""

import pytest

import warlock_ai as ai


def test_router_failure_after_a_completed_step_never_reruns_that_step():
    store = ai.snapshot.memory()
    calls = []
    broken = {"on": True}

    def route(ctx):
        if broken["on"]:
            raise ValueError("router bug")

    def build():
        return ai.workflow(
            name="w",
            steps=[
                ai.step("a", lambda ctx: calls.append("a"), next_step=route),
                ai.step("b", lambda ctx: calls.append("b")),
            ],
            snapshot_store=store,
        )

    first = build().execute(run_id="r")
    assert isinstance(first.error, ai.RoutingError)
    snap = store.load("r")
    assert (snap.status, snap.next) == ("failed", None)
    broken["on"] = False
    assert build().resume("r").status == "completed"
    assert calls == ["a", "b"]


def test_on_failure_routing_error_resumes_at_the_failed_step():
    store = ai.snapshot.memory()
    calls = []
    fixed = {"on": False}

    def primary(ctx):
        calls.append("primary")
        if not fixed["on"]:
            raise RuntimeError("down")

    def build():
        return ai.workflow(
            name="w",
            steps=[
                ai.step("primary", primary, on_failure=lambda ctx, err: {"goto": "nowhere"}),
                ai.step("after", lambda ctx: calls.append("after")),
            ],
            snapshot_store=store,
        )

    first = build().execute(run_id="r")
    assert isinstance(first.error, ai.RoutingError) and first.error.target_name == "nowhere"
    assert store.load("r").next == "primary"
    fixed["on"] = True
    assert build().resume("r").status == "completed"
    assert calls == ["primary", "primary", "after"]


def test_cancelled_run_resumes_at_the_step_that_would_have_run():
    store = ai.snapshot.memory()
    token = ai.CancelToken()
    calls = []

    def a(ctx):
        calls.append("a")
        token.cancel("deploy")

    def build():
        return ai.workflow(
            name="w",
            steps=[ai.step("a", a), ai.step("b", lambda ctx: calls.append("b"))],
            snapshot_store=store,
        )

    first = build().execute(run_id="r", cancel=token)
    assert first.status == "cancelled" and first.error.reason == "deploy"
    snap = store.load("r")
    assert (snap.status, snap.next) == ("cancelled", "b")
    assert build().resume("r").status == "completed"
    assert calls == ["a", "b"]


def test_crash_inside_first_step_is_resumable_from_the_start_snapshot():
    """SPEC 1.1: the snapshot written at start makes a crash in step 1 resumable.

    The "crashed" execution is this very process, so its lease would look alive: a zero
    lease makes it expire at once, as it would after a real crash and LEASE_SECONDS.
    """
    store = ai.snapshot.memory()
    store.lease_seconds = 0  # (the constructor refuses 0: set here to stand for LEASE_SECONDS)

    class Crash(BaseException):
        """Stands for the process dying: not an Exception, so the engine cannot handle it."""

    def boom(ctx):
        raise Crash

    wf = ai.workflow(name="w", steps=[ai.step("a", boom)], snapshot_store=store)
    with pytest.raises(Crash):
        wf.execute({"k": 1}, run_id="r")
    snap = store.load("r")
    assert (snap.status, snap.next, snap.input) == ("running", "a", {"k": 1})
    fixed = ai.workflow(name="w", steps=[ai.step("a", lambda ctx: None)], snapshot_store=store)
    assert fixed.resume("r").status == "completed"


def test_resuming_a_completed_run_runs_nothing_even_if_it_ended_early():
    """Decision 2: a completed run that ended with {"end": True} does not run skipped-over steps."""
    store = ai.snapshot.memory()
    calls = []
    wf = ai.workflow(
        name="w",
        steps=[
            ai.step("a", lambda ctx: calls.append("a"), next_step=lambda ctx: {"end": True}),
            ai.step("never", lambda ctx: calls.append("never")),
        ],
        output=lambda ctx: {"calls": len(calls)},
        snapshot_store=store,
    )
    first = wf.execute(run_id="r")
    saved = store.load("r").saved_at
    again = wf.resume("r")
    assert calls == ["a"]
    assert again.status == "completed" and again.data == {"calls": 1}
    assert store.load("r").saved_at == saved
    assert first.report.started_at == again.report.started_at
