"""execute/aexecute parity, def and async def step bodies, real concurrency of parallel
children, and SnapshotSerializationError (SPEC 1.1; reference 1.6-1.12)."""

import asyncio
import contextvars
import decimal
import json
import threading
import time

import pytest

import warlock_ai as ai
from warlock_ai.core.workflow.run import WORKFLOW_EVENTS

# --- helpers --------------------------------------------------------------------------------

# (and an attempt's worker id, unique per execution)
TIME_KEYS = {"started_at", "saved_at", "ended_at", "duration_ms", "cancelled_at", "worker"}


def strip_times(value):
    """Drop timestamps, durations and worker ids (they differ between any two runs)."""
    if isinstance(value, dict):
        return {k: strip_times(v) for k, v in value.items() if k not in TIME_KEYS}
    if isinstance(value, list):
        return [strip_times(v) for v in value]
    return value


def record_view(record):
    return {
        "status": record.status,
        "attempts": record.attempts,
        "history": [(a.index, a.status, type(a.error).__name__) for a in record.attempt_history],
        "output": record.output,
        "skipped": record.skipped,
        "error": (type(record.error).__name__, record.error.message) if record.error else None,
        "children": sorted(record.steps) if record.steps is not None else None,
    }


def canonical_events(events, unordered):
    """(event, step) pairs. In a contiguous block of events of concurrently running steps the
    interleaving is up to the scheduler, so the block is regrouped per step (steps by name,
    each step's own events in the order they happened)."""
    out, block = [], []

    def flush():
        out.extend(
            item for name in sorted({s for _, s in block}) for item in block if item[1] == name
        )
        block.clear()

    for item in events:
        if item[1] in unordered:
            block.append(item)
            continue
        flush()
        out.append(item)
    flush()
    return out


class Recorder:
    """Per-call handlers for every workflow event, recording (event, step)."""

    def __init__(self):
        self.events = []
        self.lock = threading.Lock()

    def handler(self, payload):
        with self.lock:
            self.events.append((payload["event"], payload.get("step")))

    @property
    def on(self):
        return {name: self.handler for name in WORKFLOW_EVENTS}


# --- scenarios --------------------------------------------------------------------------------
# Each builder returns a fresh (workflow, store, plan); the plan lists the calls to make, in
# order, as ("execute" | "resume", kwargs). Everything mutable is created per build.


def scenario_plain_success():
    store = ai.snapshot.memory()
    wf = ai.workflow(
        name="plain",
        steps=[
            ai.step("a", lambda ctx: ctx.state.update(a=1)),
            ai.step("b", lambda ctx: ctx.state.update(b=ctx.state["a"] + 1)),
        ],
        output=ai.Output(extract=lambda ctx: ctx.state["b"]),
        snapshot_store=store,
    )
    return wf, store, [("execute", {"input": {"q": 1}})], set()


def scenario_retry_then_success():
    calls = []

    def flaky(ctx):
        calls.append(1)
        ctx.state["tries"] = len(calls)
        if len(calls) < 3:
            raise RuntimeError(f"flake {len(calls)}")

    store = ai.snapshot.memory()
    wf = ai.workflow(
        name="retry",
        steps=[
            ai.step("flaky", flaky, retry=ai.Retry(attempts=3, backoff="none")),
            ai.step("after", lambda ctx: ctx.state.update(after=True)),
        ],
        snapshot_store=store,
    )
    return wf, store, [("execute", {"input": None})], set()


def scenario_failure_goto():
    def primary(ctx):
        raise ValueError("primary down")

    store = ai.snapshot.memory()
    wf = ai.workflow(
        name="goto",
        steps=[
            ai.step("primary", primary, on_failure=lambda ctx, err: {"goto": "fallback"}),
            ai.step("unused", lambda ctx: ctx.state.update(unused=True)),
            ai.step("fallback", lambda ctx: ctx.state.update(fallback=True)),
        ],
        snapshot_store=store,
    )
    return wf, store, [("execute", {"input": {"x": 1}})], set()


def scenario_parallel_group():
    store = ai.snapshot.memory()

    async def c2(ctx):
        await asyncio.sleep(0.01)
        ctx.state["c2"] = 2

    wf = ai.workflow(
        name="par",
        steps=[
            ai.step("start", lambda ctx: ctx.state.update(base=0)),
            ai.parallel(
                "group",
                [
                    ai.step("c1", lambda ctx: ctx.state.update(c1=1, shared="c1")),
                    ai.step("c2", c2),
                    ai.step("c3", lambda ctx: ctx.state.update(shared="c3")),
                ],
                output=lambda ctx: sorted(ctx.steps["group"].steps),
            ),
            ai.step("end", lambda ctx: ctx.state.update(end=ctx.state["shared"])),
        ],
        snapshot_store=store,
    )
    return wf, store, [("execute", {"input": None})], {"c1", "c2", "c3"}


def scenario_skip():
    store = ai.snapshot.memory()
    wf = ai.workflow(
        name="skip",
        steps=[
            ai.step("a", lambda ctx: ctx.state.update(a=1)),
            ai.step("b", lambda ctx: ctx.state.update(b=1), skip=lambda ctx: ctx.state["a"] == 1),
            ai.step("c", lambda ctx: ctx.state.update(c=1)),
        ],
        snapshot_store=store,
    )
    return wf, store, [("execute", {"input": None})], set()


def scenario_cancellation():
    store = ai.snapshot.memory()
    token = ai.CancelToken()

    def a(ctx):
        ctx.state["a"] = 1
        token.cancel("user")

    wf = ai.workflow(
        name="cancel",
        steps=[ai.step("a", a), ai.step("b", lambda ctx: ctx.state.update(b=1))],
        snapshot_store=store,
    )
    return wf, store, [("execute", {"input": None, "cancel": token})], set()


def scenario_resume_after_failure():
    store = ai.snapshot.memory()
    broken = {"b": True}

    def b(ctx):
        if broken["b"]:
            broken["b"] = False  # fixed before the resume
            raise RuntimeError("b broke")
        ctx.state["b"] = "done"

    wf = ai.workflow(
        name="resume",
        steps=[
            ai.step("a", lambda ctx: ctx.state.update(a=ctx.state.get("a", 0) + 1)),
            ai.step("b", b),
            ai.step("c", lambda ctx: ctx.state.update(c=True)),
        ],
        snapshot_store=store,
    )
    return wf, store, [("execute", {"input": {"k": 1}}), ("resume", {})], set()


SCENARIOS = {
    "plain-success": scenario_plain_success,
    "retry-then-success": scenario_retry_then_success,
    "failure-on_failure-goto": scenario_failure_goto,
    "parallel-group": scenario_parallel_group,
    "skip": scenario_skip,
    "cancellation": scenario_cancellation,
    "resume-after-failure": scenario_resume_after_failure,
}


def observe(result, store, run_id, recorder, unordered):
    snap = store.load(run_id)
    return {
        "status": result.status,
        "report_status": result.report.status,
        "error": (type(result.error).__name__, result.error.message) if result.error else None,
        "data": result.data,
        "state": result.report.state,
        "steps": {n: record_view(r) for n, r in result.report.steps.items()},
        "step_order": list(result.report.steps),
        "events": canonical_events(recorder.events, unordered),
        "snapshot": strip_times(snap.to_dict()) if snap is not None else None,
    }


def run_sync(builder, run_id):
    wf, store, plan, unordered = builder()
    observed = []
    for method, kwargs in plan:
        recorder = Recorder()
        if method == "execute":
            result = wf.execute(run_id=run_id, on=recorder.on, **kwargs)
        else:
            result = wf.resume(run_id, on=recorder.on, **kwargs)
        observed.append(observe(result, store, run_id, recorder, unordered))
    return observed


async def run_async(builder, run_id):
    wf, store, plan, unordered = builder()
    observed = []
    for method, kwargs in plan:
        recorder = Recorder()
        if method == "execute":
            result = await wf.aexecute(run_id=run_id, on=recorder.on, **kwargs)
        else:
            result = await wf.aresume(run_id, on=recorder.on, **kwargs)
        observed.append(observe(result, store, run_id, recorder, unordered))
    return observed


EXPECTED_STATUS = {
    "plain-success": ["completed"],
    "retry-then-success": ["completed"],
    "failure-on_failure-goto": ["completed"],
    "parallel-group": ["completed"],
    "skip": ["completed"],
    "cancellation": ["cancelled"],
    "resume-after-failure": ["failed", "completed"],
}


@pytest.mark.parametrize("name", list(SCENARIOS))
async def test_sync_async_parity(name):
    """execute and aexecute (resume and aresume) give the same status, state, step records,
    event sequence and stored snapshot (timestamps and durations aside)."""
    builder = SCENARIOS[name]
    sync_obs = await asyncio.to_thread(run_sync, builder, f"parity-{name}")
    async_obs = await run_async(builder, f"parity-{name}")
    assert [o["status"] for o in sync_obs] == EXPECTED_STATUS[name]
    assert len(sync_obs) == len(async_obs)
    for phase, (s, a) in enumerate(zip(sync_obs, async_obs, strict=True)):
        for key in s:
            assert s[key] == a[key], f"{name} phase {phase}: {key} differs"
        assert s["snapshot"] is not None
        assert s["snapshot"]["status"] == s["status"]


def test_parity_scenarios_do_what_they_claim():
    """The parity scenarios themselves behave as the reference says (sanity of the fixtures)."""
    obs = {name: run_sync(builder, f"check-{name}") for name, builder in SCENARIOS.items()}
    plain = obs["plain-success"][0]
    assert plain["state"] == {"a": 1, "b": 2} and plain["data"] == 2
    assert plain["events"] == [
        ("workflow.starting", None),
        ("workflow.step.starting", "a"),
        ("workflow.step.completed", "a"),
        ("workflow.step.starting", "b"),
        ("workflow.step.completed", "b"),
        ("workflow.completed", None),
    ]
    retry = obs["retry-then-success"][0]
    assert retry["steps"]["flaky"]["attempts"] == 3
    assert [h[1] for h in retry["steps"]["flaky"]["history"]] == ["failed", "failed", "success"]
    assert retry["state"] == {"tries": 3, "after": True}
    assert ("workflow.step.retrying", "flaky") in retry["events"]
    goto = obs["failure-on_failure-goto"][0]
    assert goto["steps"]["primary"]["status"] == "failed" and "unused" not in goto["steps"]
    assert goto["state"] == {"fallback": True}
    par = obs["parallel-group"][0]
    assert par["state"] == {"base": 0, "c1": 1, "c2": 2, "shared": "c3", "end": "c3"}
    assert par["steps"]["group"]["children"] == ["c1", "c2", "c3"]
    assert par["steps"]["group"]["output"] == ["c1", "c2", "c3"]
    assert par["events"][3:11] == [
        ("workflow.step.starting", "group"),
        ("workflow.step.starting", "c1"),
        ("workflow.step.completed", "c1"),
        ("workflow.step.starting", "c2"),
        ("workflow.step.completed", "c2"),
        ("workflow.step.starting", "c3"),
        ("workflow.step.completed", "c3"),
        ("workflow.step.completed", "group"),
    ]
    skip = obs["skip"][0]
    assert skip["steps"]["b"]["status"] == "skipped" and skip["steps"]["b"]["attempts"] == 0
    assert ("workflow.step.skipped", "b") in skip["events"]
    assert ("workflow.step.completed", "b") not in skip["events"]
    cancel = obs["cancellation"][0]
    assert cancel["error"][0] == "WorkflowCancelledError" and "b" not in cancel["steps"]
    assert cancel["snapshot"]["status"] == "cancelled"
    first, resumed = obs["resume-after-failure"]
    assert first["snapshot"]["next"] == "b" and first["state"] == {"a": 1}
    assert resumed["state"] == {"a": 1, "b": "done", "c": True}  # a did not run again


@pytest.mark.parametrize("mode", ["execute", "aexecute"])
async def test_cancel_during_backoff_wakes_at_once(mode):
    """Reference 1.7/1.10: the backoff sleep is abortable under both drivers."""
    token = ai.CancelToken()
    calls = []

    def fails(ctx):
        calls.append(1)
        threading.Timer(0.1, token.cancel, args=("stop",)).start()
        raise RuntimeError("retry me")

    wf = ai.workflow(
        name="backoff-cancel",
        steps=[ai.step("s", fails, retry=ai.Retry(attempts=3, backoff=lambda k: 10))],
    )
    start = time.perf_counter()
    if mode == "aexecute":
        result = await wf.aexecute(cancel=token)
    else:
        result = await asyncio.to_thread(wf.execute, cancel=token)
    elapsed = time.perf_counter() - start
    assert elapsed < 2, f"cancellation during a 10 s backoff took {elapsed:.2f}s"
    assert result.status == "cancelled"
    assert isinstance(result.error, ai.WorkflowCancelledError)
    assert result.error.reason == "stop"
    assert calls == [1]


# --- def and async def bodies -----------------------------------------------------------------


def mixed_workflow(store):
    def sync_step(ctx):
        ctx.state["sync"] = threading.current_thread().name != ""
        ctx.state["order"] = [*ctx.state.get("order", []), "sync"]
        return {"kind": "def"}

    async def async_step(ctx):
        await asyncio.sleep(0.01)
        ctx.state["async"] = True
        ctx.state["order"] = [*ctx.state.get("order", []), "async"]
        return {"kind": "async def"}

    def sync_after(ctx):
        ctx.state["order"] = [*ctx.state["order"], "sync2"]

    return ai.workflow(
        name="mixed",
        steps=[
            ai.step("s1", sync_step, output=lambda ctx: ctx.agent_result["kind"]),
            ai.step("s2", async_step, output=lambda ctx: ctx.agent_result["kind"]),
            ai.step("s3", sync_after),
        ],
        snapshot_store=store,
    )


def check_mixed(result, store):
    assert result.error is None and result.status == "completed"
    assert result.report.state == {"sync": True, "order": ["sync", "async", "sync2"], "async": True}
    assert result.report.steps["s1"].output == "def"
    assert result.report.steps["s2"].output == "async def"
    assert store.load("mixed-1").state == result.report.state


def test_def_and_async_def_steps_under_execute():
    """def and async def steps in one workflow run under execute."""
    store = ai.snapshot.memory()
    check_mixed(mixed_workflow(store).execute(run_id="mixed-1"), store)


async def test_def_and_async_def_steps_under_aexecute():
    """def and async def steps in one workflow run under aexecute."""
    store = ai.snapshot.memory()
    check_mixed(await mixed_workflow(store).aexecute(run_id="mixed-1"), store)


def hooks_workflow():
    async def skip(ctx):
        return True

    async def router(ctx):
        return {"goto": "rescue"}

    async def on_failure(ctx, err):
        return {"goto": "done"}

    async def fails(ctx):
        raise RuntimeError("async failure")

    async def extract(ctx):
        return ctx.state

    return ai.workflow(
        name="hooks",
        steps=[
            ai.step("skipped", lambda ctx: ctx.state.update(skipped=False), skip=skip),
            ai.step("route", lambda ctx: ctx.state.update(routed=True), next_step=router),
            ai.step("never", lambda ctx: ctx.state.update(never=True)),
            ai.step("rescue", fails, on_failure=on_failure),
            ai.step("done", lambda ctx: ctx.state.update(done=True)),
        ],
        output=ai.Output(extract=extract),
    )


@pytest.mark.parametrize("mode", ["execute", "aexecute"])
async def test_async_hooks_under_both_drivers(mode):
    """SPEC 1.1: routers, skip, on_failure and output extractors may be coroutines too."""
    wf = hooks_workflow()
    result = await (wf.aexecute() if mode == "aexecute" else asyncio.to_thread(wf.execute))
    assert result.error is None and result.status == "completed"
    assert result.report.steps["skipped"].status == "skipped"
    assert "never" not in result.report.steps
    assert result.report.steps["rescue"].status == "failed"
    assert result.data == {"routed": True, "done": True}


# --- concurrency of parallel children ---------------------------------------------------------

CHILDREN = 4
SLEEP = 0.2
BOUND = 0.6  # 4 x 0.2 s sequentially would be 0.8 s


def concurrent_workflow(kind):
    barrier = threading.Barrier(CHILDREN, timeout=2)
    lock = threading.Lock()
    gauge = {"running": 0, "max": 0}

    def enter():
        with lock:
            gauge["running"] += 1
            gauge["max"] = max(gauge["max"], gauge["running"])

    def leave():
        with lock:
            gauge["running"] -= 1

    def make_def(i):
        def child(ctx):
            enter()
            try:
                barrier.wait()  # passes only when all four run at once
                time.sleep(SLEEP)
                ctx.state[f"c{i}"] = i
            finally:
                leave()

        return child

    def make_async(i):
        async def child(ctx):
            enter()
            try:
                await asyncio.sleep(SLEEP)
                ctx.state[f"c{i}"] = i
            finally:
                leave()

        return child

    make = make_def if kind == "def" else make_async
    wf = ai.workflow(
        name=f"concurrent-{kind}",
        steps=[ai.parallel("fan", [ai.step(f"c{i}", make(i)) for i in range(CHILDREN)])],
    )
    return wf, gauge


def check_concurrent(result, elapsed, gauge):
    assert result.error is None, result.error
    assert result.report.state == {f"c{i}": i for i in range(CHILDREN)}
    assert all(result.report.steps[f"c{i}"].status == "completed" for i in range(CHILDREN))
    assert gauge["max"] == CHILDREN  # all four were running at the same moment
    assert elapsed < BOUND, f"parallel children took {elapsed:.3f}s (sequential would be 0.8s)"


@pytest.mark.parametrize("kind", ["def", "async"])
def test_parallel_children_overlap_under_execute(kind):
    """4 children sleeping 0.2 s each finish together (< 0.6 s) under execute."""
    wf, gauge = concurrent_workflow(kind)
    start = time.perf_counter()
    result = wf.execute()
    elapsed = time.perf_counter() - start
    check_concurrent(result, elapsed, gauge)


@pytest.mark.parametrize("kind", ["def", "async"])
async def test_parallel_children_overlap_under_aexecute(kind):
    """4 children sleeping 0.2 s each finish together (< 0.6 s) under aexecute."""
    wf, gauge = concurrent_workflow(kind)
    start = time.perf_counter()
    result = await wf.aexecute()
    elapsed = time.perf_counter() - start
    check_concurrent(result, elapsed, gauge)


async def test_async_children_share_one_event_loop_under_aexecute():
    """Under aexecute, async children run as tasks on the caller's loop: an asyncio.Barrier
    (which only works within one loop) is passed by all four."""
    barrier = asyncio.Barrier(CHILDREN)
    loops = []

    def make(i):
        async def child(ctx):
            loops.append(asyncio.get_running_loop())
            await asyncio.wait_for(barrier.wait(), timeout=2)
            ctx.state[f"c{i}"] = i

        return child

    wf = ai.workflow(
        name="one-loop", steps=[ai.parallel("fan", [ai.step(f"c{i}", make(i)) for i in range(4)])]
    )
    result = await wf.aexecute()
    assert result.error is None, result.error
    assert loops == [asyncio.get_running_loop()] * CHILDREN


# --- SnapshotSerializationError ---------------------------------------------------------------

ITEMS = [{"sku": "a", "price": 1.0}, {"sku": "b", "price": 2.0}]


async def run_mode(wf, mode, *args, **kwargs):
    if mode == "aexecute":
        return await wf.aexecute(*args, **kwargs)
    return await asyncio.to_thread(lambda: wf.execute(*args, **kwargs))


def check_stored_json(store, run_id):
    text = store._data[run_id]
    data = json.loads(text)
    assert isinstance(data, dict)
    return data


@pytest.mark.parametrize("mode", ["execute", "aexecute"])
async def test_decimal_in_state_fails_the_step_with_the_path(mode):
    """A Decimal at state.items[1].price fails that step with SnapshotSerializationError; the
    snapshot keeps the previous step's state and stays valid JSON."""

    def load(ctx):
        ctx.state["items"] = [dict(item) for item in ITEMS]
        ctx.state["loaded"] = True

    def price(ctx):
        ctx.state["items"][1]["price"] = decimal.Decimal("1.5")

    store = ai.snapshot.memory()
    calls = []
    wf = ai.workflow(
        name="ser",
        steps=[
            ai.step("load", load),
            ai.step("price", price),
            ai.step("after", lambda ctx: calls.append("after")),
        ],
        snapshot_store=store,
    )
    result = await run_mode(wf, mode, run_id="ser-1")
    err = result.error
    assert isinstance(err, ai.SnapshotSerializationError)
    assert "state.items[1].price" in err.message and "Decimal" in err.message
    assert "state.items[1].price" in str(err)
    assert err.path == "state.items[1].price"
    assert err.type_name == "Decimal"
    assert err.step_name == "price"
    assert result.status == "failed"
    assert result.report.steps["price"].status == "failed"
    assert result.report.steps["load"].status == "completed"
    assert "after" not in result.report.steps and calls == []
    expected_state = {"items": ITEMS, "loaded": True}
    assert result.report.state == expected_state  # previous step's state intact
    snap = store.load("ser-1")
    assert snap.state == expected_state
    assert snap.status == "failed"
    assert snap.steps["price"].status == "failed"
    data = check_stored_json(store, "ser-1")
    assert data["state"] == expected_state
    assert "Decimal('1.5')" not in json.dumps(data["state"])


@pytest.mark.parametrize("mode", ["execute", "aexecute"])
async def test_non_json_step_output_fails_the_step(mode):
    """A step output that is not JSON fails the step with SnapshotSerializationError."""
    store = ai.snapshot.memory()
    wf = ai.workflow(
        name="ser-out",
        steps=[
            ai.step("first", lambda ctx: ctx.state.update(first=1)),
            ai.step(
                "bad",
                lambda ctx: ctx.state.update(bad=1),
                output=ai.Output(extract=lambda ctx: object()),
            ),
        ],
        snapshot_store=store,
    )
    result = await run_mode(wf, mode, run_id="ser-2")
    err = result.error
    assert isinstance(err, ai.SnapshotSerializationError)
    assert "output" in err.message and "object" in err.message
    assert err.step_name == "bad"
    assert result.status == "failed"
    assert result.report.steps["bad"].status == "failed"
    assert result.report.steps["first"].status == "completed"
    assert result.report.state == {"first": 1}
    snap = store.load("ser-2")
    assert snap.state == {"first": 1}
    assert snap.steps["bad"].status == "failed" and snap.steps["bad"].output is None
    data = check_stored_json(store, "ser-2")
    assert data["steps"]["bad"]["output"] is None


@pytest.mark.parametrize("mode", ["execute", "aexecute"])
async def test_non_json_input_writes_nothing(mode):
    """A non-JSON input with a store: failed with SnapshotSerializationError naming "input",
    and nothing is written."""
    store = ai.snapshot.memory()
    wf = ai.workflow(
        name="ser-in",
        steps=[ai.step("a", lambda ctx: ctx.state.update(a=1))],
        snapshot_store=store,
    )
    result = await run_mode(wf, mode, {"amount": decimal.Decimal("2")}, run_id="ser-3")
    assert result.status == "failed"
    assert isinstance(result.error, ai.SnapshotSerializationError)
    assert "input" in result.error.message
    assert result.error.path.startswith("input")
    assert store.load("ser-3") is None
    assert store.list() == []


REQUEST_ID = contextvars.ContextVar("request_id", default=None)


@pytest.mark.parametrize("mode", ["execute", "aexecute"])
def test_parallel_children_see_the_callers_context_variables(mode):
    seen = []

    def child(ctx):
        seen.append(REQUEST_ID.get())

    wf = ai.workflow(
        name="ctxvars",
        steps=[ai.parallel("fan", [ai.step("a", child), ai.step("b", child)])],
    )
    token = REQUEST_ID.set("req-42")
    try:
        if mode == "execute":
            wf.execute()
        else:
            asyncio.run(wf.aexecute())
    finally:
        REQUEST_ID.reset(token)
    assert seen == ["req-42", "req-42"]
