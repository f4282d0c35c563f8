"""The support-triage example (example_project/support): each ticket type routed on the
offline model, every model call logged once by the middleware, the model chosen from the
environment, and the demo run end to end (a crash, a resume, nothing paid twice)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import warlock_ai as ai
from example_project.support.flows import build_support_triage, load_tickets
from example_project.support.llm import OfflineSupportModel, answer_for, support_model
from example_project.support.models import ModelCall
from warlock_ai.registry import registry

REPO_ROOT = Path(__file__).resolve().parents[2]
TICKETS = {ticket["id"]: ticket for ticket in load_tickets()}
CASES = [
    (
        "T-1001",
        ["triage", "billing", "resolver"],
        {"category": "billing", "priority": "high", "refund": "approved", "refund_amount": 49.0},
    ),
    ("T-1002", ["triage", "resolver"], {"category": "account", "priority": "urgent"}),
    (
        "T-1003",
        ["triage", "billing", "resolver"],
        {"category": "billing", "priority": "normal", "refund": "approved", "refund_amount": 348.0},
    ),
    ("T-1004", ["triage", "resolver"], {"category": "other", "priority": "low"}),
]


@pytest.fixture
def support():
    return build_support_triage(OfflineSupportModel(delay=0))


def route_of(result) -> list[str]:
    return [intent for record in result.report.snapshots for intent in record["result"]]


@pytest.mark.parametrize(("ticket_id", "route", "state"), CASES)
def test_each_ticket_type_takes_its_route(transactional_db, support, ticket_id, route, state):
    result = support.execute(TICKETS[ticket_id], run_id=f"test-{ticket_id}")
    assert result.status == "completed", result.error
    assert result.report.terminated_by == "evaluate"
    assert route_of(result) == route
    assert state.items() <= result.report.state.items()
    assert result.report.state["reply"].startswith(
        f"Hi {TICKETS[ticket_id]['customer'].split()[0]},"
    )
    assert result.usage.total > 0
    assert result.usage.total == result.usage.input + result.usage.output


def test_the_first_iteration_skips_the_router(transactional_db, support):
    result = support.execute(TICKETS["T-1002"], run_id="test-initial")
    sources = [record["decision"]["source"] for record in result.report.snapshots]
    assert sources == ["initial_agent", "router"]


def test_every_model_call_is_logged_once_with_its_usage(transactional_db, support):
    result = support.execute(TICKETS["T-1001"], run_id="test-calls")
    calls = list(ModelCall.objects.for_run("test-calls").order_by("id"))
    assert [(c.iteration, c.agent) for c in calls] == [
        (0, "triage"),
        (1, "router"),
        (1, "billing"),
        (2, "router"),
        (2, "resolver"),
    ]
    assert {c.status for c in calls} == {"finished"}
    assert {c.model for c in calls} == {"local/support-desk-offline"}
    assert sum(c.total_tokens for c in calls) == result.usage.total
    for record in result.report.snapshots:
        mine = [c for c in calls if c.iteration == record["iteration"]]
        assert sum(c.total_tokens for c in mine) == record["usage"]["total"]


def test_the_offline_model_is_deterministic(transactional_db, support):
    first = support.execute(TICKETS["T-1003"], run_id="test-same-1")
    second = support.execute(TICKETS["T-1003"], run_id="test-same-2")
    assert first.report.state == second.report.state
    assert first.usage == second.usage


def test_the_router_ends_once_a_reply_exists():
    prompt = 'Input: {}\nState: {"category": "other", "reply": "Hi"}'
    assert answer_for({"next": {}}, prompt)["next"] == ai.END
    assert answer_for({"next": {}}, "State: {}")["next"] == "triage"


def test_the_offline_model_refuses_an_unknown_task():
    with pytest.raises(ai.ModelCallError, match="router, triage, billing and resolver"):
        OfflineSupportModel(delay=0).complete([ai.Message("user", "hello")])


def test_the_supervisor_is_registered():
    definition = registry.find("support-triage")
    assert definition.kind == "supervisor"
    assert definition.signature == build_support_triage(OfflineSupportModel()).signature


def test_the_model_is_offline_unless_an_endpoint_is_configured(monkeypatch):
    for name in ("SUPPORT_LLM_BASE_URL", "SUPPORT_LLM_API_KEY", "SUPPORT_LLM_MODEL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert isinstance(support_model(), OfflineSupportModel)

    from warlock_ai.providers.openai import OpenAIModel

    monkeypatch.setenv("SUPPORT_LLM_BASE_URL", "http://127.0.0.1:11434/v1/")
    monkeypatch.setenv("SUPPORT_LLM_MODEL", "llama3.1:8b")
    local = support_model()
    assert isinstance(local, OpenAIModel)
    assert (local.name, local.base_url) == ("llama3.1:8b", "http://127.0.0.1:11434/v1")

    monkeypatch.delenv("SUPPORT_LLM_BASE_URL")
    monkeypatch.delenv("SUPPORT_LLM_MODEL")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    assert support_model().name == "gpt-4o-mini"


@pytest.mark.slow
@pytest.mark.crash
def test_the_support_demo_proves_nothing_is_paid_twice(subprocess_env):
    done = subprocess.run(
        [sys.executable, "-m", "example_project.support_demo"],
        cwd=REPO_ROOT,
        env=subprocess_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    prose = " ".join(out.split())  # the narration is wrapped
    assert "simulating a crash: SIGKILL to pid" in out
    assert "resuming supervisor support-triage run ticket-T-1001" in out
    assert "iterations settled: 1; next: iteration 1" in out
    assert "the resumed process made none of them again" in prose
    assert "run ticket-T-1001: completed" in out
    for ticket_id in TICKETS:
        assert f"run ticket-{ticket_id}: completed" in out
    assert "4 tickets, 1 crash, 0 model calls of a settled iteration made again" in prose
    assert "Every check passed." in out


async def test_the_call_log_also_works_under_aexecute(transactional_db, support):
    from asgiref.sync import sync_to_async

    result = await support.aexecute(TICKETS["T-1004"], run_id="test-async")
    assert result.status == "completed", result.error
    calls = await sync_to_async(list)(ModelCall.objects.for_run("test-async").order_by("id"))
    assert [(c.iteration, c.agent, c.status) for c in calls] == [
        (0, "triage", "finished"),
        (1, "router", "finished"),
        (1, "resolver", "finished"),
    ]
    assert sum(c.total_tokens for c in calls) == result.usage.total
