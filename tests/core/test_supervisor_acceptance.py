"""The supervisor: acceptance cases 34-48 of reference section 12, and the fixes of SPEC 1.2
(completed runs short-circuit, persist failures emit supervisor.error, session ids reach the
agents), under the sync and the async driver."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

import warlock_ai as ai
from warlock_ai.core.runs.snapshots import now


def worker(ctx):
    return {"worked": ctx.state.get("worked", 0) + 1}


def store():
    return ai.snapshot.memory()


class EchoAgent:
    """A duck-typed agent: what the supervisor needs (name, description, execute)."""

    def __init__(self, name, reply="done", description="does things"):
        self.name, self.description, self.reply = name, description, reply
        self.calls = []

    def execute(self, prompt, **options):
        self.calls.append((prompt, options))
        usage = ai.Usage(input=10, output=5, total=15)
        data = self.reply if isinstance(self.reply, dict) else None
        return type("R", (), {"text": str(self.reply), "data": data, "usage": usage, "error": None})


def run(sup, mode, *args, **kwargs):
    if mode == "execute":
        return sup.execute(*args, **kwargs)
    return asyncio.run(sup.aexecute(*args, **kwargs))


MODES = pytest.mark.parametrize("mode", ["execute", "aexecute"])


@MODES
def test_case_34_snapshot_after_every_iteration_and_the_end(mode):
    snapshots = store()
    sup = ai.supervisor(
        name="s34",
        intents={"worker": worker},
        route=lambda ctx: ai.END if ctx.iteration >= 2 else "worker",
        snapshot_store=snapshots,
    )
    result = run(sup, mode, "go", run_id="run-A")
    snap = snapshots.load("run-A")
    assert result.status == "completed"
    assert (snap.status, len(snap.snapshots), snap.iteration) == ("completed", 3, 2)
    assert snap.state == {"worked": 2}
    assert result.report.terminated_by == "route" and result.report.iterations == 3


def seeded(snapshots, sup, run_id, iterations, status="running", signature=None):
    snap = ai.SupervisorSnapshot(
        run_id=run_id,
        supervisor_name=sup.name,
        signature=signature or sup.signature,
        version=None,
        input="go",
        iteration=len(iterations) - 1,
        snapshots=iterations,
        status=status,
        started_at=now(),
        saved_at=now(),
        state=(iterations[-1]["state"] if iterations else {}),
    )
    snapshots.save(snap)
    return snap


def prior_iteration():
    return {
        "iteration": 0,
        "decision": {"source": "route", "next": "worker"},
        "result": {"worker": {"intent": "worker", "output": "prior", "error": None, "usage": {}}},
        "state": {"worked": 1},
    }


@MODES
def test_case_35_resume_keeps_the_settled_iterations(mode):
    snapshots = store()
    sup = ai.supervisor(
        name="s35",
        intents={"worker": worker},
        route=lambda ctx: ai.END if ctx.iteration >= 2 else "worker",
        snapshot_store=snapshots,
    )
    seeded(snapshots, sup, "r35", [prior_iteration()])
    result = sup.resume("r35") if mode == "execute" else asyncio.run(sup.aresume("r35"))
    assert result.status == "completed"
    assert result.report.snapshots[0]["result"]["worker"]["output"] == "prior"
    assert len(result.report.snapshots) >= 2
    assert result.report.state["worked"] == 2  # continued from the stored state


def test_case_36_drift_and_force():
    snapshots = store()
    sup = ai.supervisor(
        name="s36", intents={"worker": worker}, route=lambda ctx: ai.END, snapshot_store=snapshots
    )
    seeded(snapshots, sup, "r36", [], signature="mismatch")
    with pytest.raises(ai.SupervisorDriftError) as caught:
        sup.resume("r36")
    assert caught.value.code == "SUPERVISOR_DRIFT"
    assert caught.value.saved_signature == "mismatch"
    assert caught.value.current_signature == sup.signature
    assert sup.resume("r36", force=True).status == "completed"


def test_case_37_resume_without_a_store():
    sup = ai.supervisor(name="s37", intents={"worker": worker}, route=lambda ctx: ai.END)
    with pytest.raises(ai.SupervisorFailedError) as caught:
        sup.resume("nope")
    assert caught.value.code == "SUPERVISOR_FAILED"


@MODES
def test_case_38_max_iterations(mode):
    snapshots = store()
    sup = ai.supervisor(
        name="s38",
        intents={"worker": worker},
        route=lambda ctx: "worker",
        max_iterations=3,
        snapshot_store=snapshots,
    )
    result = run(sup, mode, "go", run_id="r38")
    assert result.error.code == "SUPERVISOR_MAX_ITERATIONS"
    assert result.error.max_iterations == 3
    assert result.status == "max-iterations"
    assert result.report.terminated_by == "max-iterations"
    assert snapshots.load("r38").status == "max-iterations"


@pytest.mark.parametrize("returned", ["ghost", [], ["worker", 42]])
def test_case_39_invalid_routes(returned):
    sup = ai.supervisor(name="s39", intents={"worker": worker}, route=lambda ctx: returned)
    result = sup.execute("go")
    assert result.error.code == "SUPERVISOR_INVALID_ROUTE"
    assert result.error.available_keys == ["worker"]
    assert result.error.returned == returned


def test_case_40_fan_out_cap():
    intents = {f"w{i}": worker for i in range(11)}
    wide = ai.supervisor(name="s40", intents=intents, route=lambda ctx: list(intents))
    assert wide.execute("go").error.code == "SUPERVISOR_INVALID_ROUTE"

    ten = list(intents)[:10]
    seen = []

    def route(ctx):
        seen.append(ctx.iteration)
        return ten + ten[:3] if ctx.iteration == 0 else ai.END  # duplicates collapse

    ok = ai.supervisor(name="s40b", intents=intents, route=route)
    result = ok.execute("go")
    assert result.status == "completed"
    assert len(result.report.snapshots[0]["result"]) == 10

    reassign = ai.supervisor(
        name="s40c",
        intents=intents,
        route=lambda ctx: "w0" if ctx.iteration == 0 else ai.END,
        evaluate=lambda ctx: {"reassign_to": list(intents)},
    )
    assert reassign.execute("go").error.code == "SUPERVISOR_INVALID_ROUTE"
    for bad in (0, 1.5):
        with pytest.raises(ai.SupervisorFailedError):
            ai.supervisor(name="bad", intents=intents, route=lambda ctx: ai.END, max_fan_out=bad)


def test_case_41_a_failing_branch_does_not_stop_its_sibling():
    def broken(ctx):
        raise ValueError("the billing system is down")

    sup = ai.supervisor(
        name="s41",
        intents={"good": worker, "bad": broken},
        route=lambda ctx: ["good", "bad"] if ctx.iteration == 0 else ai.END,
    )
    result = sup.execute("go")
    first = result.report.snapshots[0]["result"]
    assert first["good"]["error"] is None and first["good"]["output"] == {"worked": 1}
    assert "billing system is down" in first["bad"]["error"]["message"]
    assert result.report.state == {"worked": 1}


def test_case_42_first_decision_end():
    sup = ai.supervisor(name="s42", intents={"worker": worker}, route=lambda ctx: ai.END)
    result = sup.execute("go")
    assert (result.status, result.report.terminated_by, result.report.iterations) == (
        "completed",
        "route",
        1,
    )


def test_case_43_initial_agent_skips_routing_on_iteration_0():
    calls = []

    def route(ctx):
        calls.append(ctx.iteration)
        return ai.END

    sup = ai.supervisor(
        name="s43", intents={"triage": worker, "other": worker}, route=route, initial_agent="triage"
    )
    result = sup.execute("go")
    assert calls == [1]
    assert result.report.snapshots[0]["decision"]["source"] == "initial_agent"


def test_case_44_evaluate_satisfied_ends_the_run():
    sup = ai.supervisor(
        name="s44",
        intents={"triage": worker, "resolver": lambda ctx: {"resolved": True}},
        route=lambda ctx: "triage" if ctx.iteration == 0 else "resolver",
        evaluate=lambda ctx: {"satisfied": True} if "resolver" in ctx.results else None,
    )
    result = sup.execute("go")
    assert result.report.iterations == 2
    assert result.report.terminated_by == "evaluate"


def test_case_45_reassign_overrides_the_router():
    routed = []

    def route(ctx):
        routed.append(ctx.iteration)
        return "triage" if ctx.iteration == 0 else ai.END

    sup = ai.supervisor(
        name="s45",
        intents={"triage": worker, "resolver": lambda ctx: {"resolved": True}},
        route=route,
        evaluate=lambda ctx: {"reassign_to": "resolver"} if ctx.iteration == 0 else None,
    )
    result = sup.execute("go")
    assert result.report.snapshots[1]["result"]["resolver"]["output"] == {"resolved": True}
    assert result.report.snapshots[1]["decision"]["source"] == "evaluate"
    assert routed == [0, 2]


def test_case_46_unsafe_keys_are_not_merged():
    def sneaky(ctx):
        return {"__proto__": {"polluted": True}, "constructor": 1, "__class__": 2, "ok": 1}

    events = []
    sup = ai.supervisor(
        name="s46",
        intents={"sneaky": sneaky},
        route=lambda ctx: "sneaky" if ctx.iteration == 0 else ai.END,
        on={"supervisor.state.unsafe_key": events.append},
    )
    result = sup.execute("go")
    assert result.report.state == {"ok": 1}
    assert type(result.report.state) is dict
    assert sorted(e["key"] for e in events) == ["__class__", "__proto__", "constructor"]
    assert result.report.snapshots[0]["dropped_keys"] == ["__proto__", "constructor", "__class__"]


def test_case_47_cancellation():
    token = ai.CancelToken()
    cancelled = []

    def route(ctx):
        if ctx.iteration == 1:
            token.cancel("operator stop")
        return "worker"

    sup = ai.supervisor(
        name="s47",
        intents={"worker": worker},
        route=route,
        on={"supervisor.cancelled": cancelled.append},
        snapshot_store=store(),
    )
    result = sup.execute("go", cancel=token, run_id="r47")
    assert result.error.code == "SUPERVISOR_CANCELLED"
    assert result.status == "cancelled" and result.report.terminated_by == "cancelled"
    assert result.error.cancelled_at is not None
    assert cancelled[0]["reason"] == "operator stop"

    pre = ai.CancelToken()
    pre.cancel("before start")
    early = sup.execute("go", cancel=pre, run_id="r47b")
    assert early.status == "cancelled" and early.report.iterations == 0


def test_case_48_signature():
    agent = EchoAgent("triage-agent")
    wf = ai.workflow(name="wf", steps=[ai.step("a", lambda ctx: None)])

    def sig(**changes):
        options = {
            "name": "sig",
            "intents": {"a": agent, "b": ai.intent(wf, description="a workflow"), "c": worker},
            "route": lambda ctx: ai.END,
        }
        options.update(changes)
        return ai.supervisor(**options).signature

    base = sig()
    reordered = {"c": worker, "b": ai.intent(wf, description="a workflow"), "a": agent}
    assert sig(intents=reordered) == base
    assert sig(route=lambda ctx: "a") == base  # the body is ignored
    assert sig(version="2", goal="other", description="x") == base
    changed = [
        sig(intents={"a": ai.intent(agent, description="other"), "b": wf, "c": worker}),
        sig(intents={"a": EchoAgent("renamed"), "b": wf, "c": worker}),
        sig(intents={"a": agent, "b": ai.workflow(name="wf2", steps=wf.steps), "c": worker}),
        sig(intents={"a": agent, "b": wf}),
        sig(evaluate=lambda ctx: None),
        sig(initial_agent="a"),
        sig(max_iterations=10),  # explicit differs from omitted
    ]
    assert base not in changed and len(set(changed)) == len(changed)
    described = {
        "a": agent,
        "b": ai.intent(wf, description="w"),
        "c": ai.intent(worker, description="c"),
    }
    with_route = sig(intents=described)
    assert sig(intents=described, route=None, router=EchoAgent("router")) != with_route
    assert sig(intents=described, route=None, router=EchoAgent("other")) != sig(
        intents=described, route=None, router=EchoAgent("router")
    )


def test_resuming_a_completed_run_runs_nothing():
    snapshots = store()
    calls = []

    def counted(ctx):
        calls.append(ctx.iteration)
        return {}

    sup = ai.supervisor(
        name="done",
        intents={"w": counted},
        route=lambda ctx: "w" if ctx.iteration == 0 else ai.END,
        snapshot_store=snapshots,
    )
    sup.execute("go", run_id="r-done")
    again = sup.resume("r-done")
    assert calls == [0]
    assert again.status == "completed" and again.report.iterations == 2


def test_a_persist_failure_emits_supervisor_error_and_the_run_goes_on():
    class Flaky(type(store())):
        write_retry_seconds = 0.0  # a failure that lasts: no retries to wait for

        def save(self, snapshot, *, claim=None):
            if snapshot.iteration == 0 and snapshot.status == "running":
                raise ConnectionError("database went away")
            return super().save(snapshot, claim=claim)

    errors = []
    sup = ai.supervisor(
        name="flaky",
        intents={"w": worker},
        route=lambda ctx: "w" if ctx.iteration < 2 else ai.END,
        snapshot_store=Flaky(),
        on={"supervisor.error": errors.append},
    )
    result = sup.execute("go", run_id="r-flaky")
    assert result.status == "completed"
    assert errors and errors[0]["phase"] == "persist"
    assert "database went away" in errors[0]["error"].message


def test_agents_get_the_session_id_and_output_merges_only_when_declared():
    triage = EchoAgent("triage", reply={"priority": "high"})
    chat = EchoAgent("chat", reply="hello")
    sup = ai.supervisor(
        name="sessions",
        intents={"triage": ai.intent(triage, output={"type": "object"}), "chat": chat},
        route=lambda ctx: ["triage", "chat"] if ctx.iteration == 0 else ai.END,
    )
    result = sup.execute({"ticket": 7}, session_id="sess-1")
    assert triage.calls[0][1]["session_id"] == "sess-1"
    assert chat.calls[0][1]["session_id"] == "sess-1"
    assert triage.calls[0][0] == '{"ticket":7}'
    assert result.report.state == {"priority": "high"}  # chat's text is not merged
    assert result.usage == ai.Usage(input=20, output=10, total=30)


def test_carried_directives_survive_a_resume():
    snapshots = ai.snapshot.memory(lease_seconds=0.001)  # the killed worker's lease lapses
    gate = threading.Event()

    def first(ctx):
        return {"step": 1}

    def second(ctx):
        if not gate.is_set():
            raise KeyboardInterrupt  # the process dies in iteration 1
        return {"step": 2}

    sup = ai.supervisor(
        name="carry",
        intents={"first": ai.intent(first, next=lambda ctx: "second"), "second": second},
        route=lambda ctx: "first" if ctx.iteration == 0 else ai.END,
        snapshot_store=snapshots,
    )
    with pytest.raises(KeyboardInterrupt):
        sup.execute("go", run_id="r-carry")
    time.sleep(0.01)
    assert snapshots.load("r-carry").snapshots[0]["carried"] == {"next": ["second"]}
    gate.set()
    result = sup.resume("r-carry")
    assert result.report.snapshots[1]["decision"]["source"] == "next"
    assert result.report.state == {"step": 2}


def test_authoring_errors():
    with pytest.raises(ai.SupervisorFailedError, match="exactly one of router"):
        ai.supervisor(name="x", intents={"w": worker})
    with pytest.raises(ai.SupervisorFailedError, match="needs a description"):
        ai.supervisor(name="x", intents={"w": worker}, router=EchoAgent("r"))
    with pytest.raises(ai.SupervisorFailedError, match="initial_agent"):
        ai.supervisor(name="x", intents={"w": worker}, route=lambda c: ai.END, initial_agent="z")
    with pytest.raises(ai.SupervisorFailedError, match="max_iterations"):
        ai.supervisor(name="x", intents={"w": worker}, route=lambda c: ai.END, max_iterations=0)


@MODES
def test_a_router_agent_and_agent_intents_on_fake_models(mode):
    from warlock_ai.testing import FakeModel, scripted_agent

    router = scripted_agent(
        [
            '{"next": "triage", "reasoning": "new ticket"}',
            '{"next": ["billing", "faq"], "reasoning": "money and a question"}',
            f'{{"next": "{ai.END}", "reasoning": "answered"}}',
        ],
        name="router",
    )
    triage = ai.agent(
        name="triage",
        model=FakeModel(['{"category": "billing"}'], name="m-triage"),
        description="classifies",
    )
    billing = ai.agent(
        name="billing", model=FakeModel(['{"refund": 49}'], name="m-billing"), description="refunds"
    )
    faq = ai.agent(name="faq", model=FakeModel(["See our FAQ."], name="m-faq"), description="faq")
    sup = ai.supervisor(
        name="agents",
        router=router,
        intents={
            "triage": ai.intent(triage, output={"type": "object"}),
            "billing": ai.intent(billing, output={"type": "object"}),
            "faq": faq,
        },
        snapshot_store=store(),
    )
    result = run(sup, mode, "I was charged twice", run_id="agents-1", session_id="s-9")
    assert result.status == "completed" and result.report.terminated_by == "router"
    assert result.report.state == {"category": "billing", "refund": 49}
    decisions = [s["decision"] for s in result.report.snapshots]
    assert [d["reasoning"] for d in decisions] == ["new ticket", "money and a question", "answered"]
    assert result.report.snapshots[1]["result"]["faq"]["output"] == "See our FAQ."
    prompt, options = router.model.call_history[0]
    assert "triage: classifies" in prompt[-1].content and options["session_id"] == "s-9"
    assert options["response_format"]["required"] == ["next"]
    assert router.model.call_count == 3
    assert [a.model.call_count for a in (triage, billing, faq)] == [1, 1, 1]
    assert result.usage.total == sum(s["usage"]["total"] for s in result.report.snapshots)


def test_a_workflow_intent_merges_its_data():
    wf = ai.workflow(
        name="lookup",
        steps=[ai.step("find", lambda ctx: ctx.state.update(plan="gold"))],
        output=lambda ctx: {"plan": ctx.state["plan"]},
    )
    sup = ai.supervisor(
        name="with-workflow",
        intents={"lookup": ai.intent(wf, output=True)},
        route=lambda ctx: "lookup" if ctx.iteration == 0 else ai.END,
    )
    result = sup.execute({"customer": 7})
    assert result.report.state == {"plan": "gold"}
    assert result.report.snapshots[0]["result"]["lookup"]["input"] == {"customer": 7}
