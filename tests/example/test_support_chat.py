"""The support-chat example (example_project/support/chat.py): turns that accumulate the
session's state, the route of each kind of message, the memory scoped per customer, the
history window, and the demo run end to end (a turn killed mid-way, resumed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from example_project.support import chat
from example_project.support.flows import build_support_chat
from example_project.support.llm import OfflineSupportModel
from example_project.support.models import ModelCall
from warlock_ai.models import Checkpoint
from warlock_ai.registry import registry

REPO_ROOT = Path(__file__).resolve().parents[2]
ANN = {"customer": "Ann Example", "email": "ann@example.com"}
CHARGED_TWICE = "Hi, I was charged twice for my May subscription, $12.00 each time."


class CountingModel(OfflineSupportModel):
    """The offline model, noting how many messages each call was given."""

    def __init__(self) -> None:
        super().__init__(delay=0)
        self.sizes: list[int] = []

    def complete(self, messages: Any, **options: Any) -> Any:
        self.sizes.append(len(messages))
        return super().complete(messages, **options)


@pytest.fixture
def support_chat():
    return build_support_chat(OfflineSupportModel(delay=0))


def route_of(result: Any) -> list[str]:
    return [key for record in result.report.snapshots for key in record["result"]]


def rows(session: str) -> list[Checkpoint]:
    return list(Checkpoint.objects.for_session("support-chat", session).order_by("turn_index"))


def test_the_state_accumulates_turn_by_turn(transactional_db, support_chat):
    first = support_chat.execute(CHARGED_TWICE, session_id="ann:c1", state=ANN)
    second = support_chat.execute("My order number is A-1042.", session_id="ann:c1")
    third = support_chat.execute("Thanks!", session_id="ann:c1")
    assert [r.turn_index for r in (first, second, third)] == [0, 1, 2]
    assert {r.report.status for r in (first, second, third)} == {"awaiting-input"}
    state = third.data
    assert state["message_count"] == 3 and state["replies"] == 3
    assert state["messages"] == [CHARGED_TWICE, "My order number is A-1042.", "Thanks!"]
    assert state["ticket_id"] == first.data["ticket_id"] == chat.ticket_id_for("ann:c1")
    assert state["order_number"] == "A-1042" and "order_number" not in first.data
    assert state["customer"] == "Ann Example"  # the first turn's patch stays in the session
    assert (state["category"], state["refund"], state["refund_amount"]) == (
        "billing",
        "approved",
        12.0,
    )
    assert state["reply"].startswith("Hi Ann,")
    stored = rows("ann:c1")
    assert [r.turn_index for r in stored] == [0, 1, 2]
    assert [r.state["message_count"] for r in stored] == [1, 2, 3]
    assert {r.last_route for r in stored} == {"resolver"}
    assert stored[-1].state == state


def test_only_the_last_messages_are_kept(transactional_db, support_chat):
    for n in range(chat.MESSAGES_KEPT + 2):
        result = support_chat.execute(f"message {n}", session_id="ann:long")
    assert result.data["message_count"] == chat.MESSAGES_KEPT + 2
    assert result.data["messages"] == [f"message {n}" for n in range(2, chat.MESSAGES_KEPT + 2)]


def test_each_kind_of_message_takes_its_route(transactional_db, support_chat):
    opening = support_chat.execute(CHARGED_TWICE, session_id="ann:c1", state=ANN)
    assert route_of(opening) == ["intake", "triage", "billing", "resolver"]
    sources = [r["decision"]["source"] for r in opening.report.snapshots]
    assert sources == ["initial_agent", "route", "route", "route"]
    follow_up = support_chat.execute("When will I see the money?", session_id="ann:c1")
    assert route_of(follow_up) == ["intake", "triage", "resolver"]  # refund decided once
    assert follow_up.data["category"] == "billing"  # a follow-up keeps the open issue
    switch = support_chat.execute("I cannot log in, my account is locked!", session_id="ann:c1")
    assert route_of(switch) == ["intake", "triage", "resolver"]
    assert (switch.data["category"], switch.data["issues"]) == ("account", ["billing", "account"])
    assert "password reset link to ann@example.com" in switch.data["reply"]
    other = support_chat.execute("The export shows an error.", session_id="bob:c1")
    assert route_of(other) == ["intake", "triage", "resolver"]
    assert other.data["category"] == "technical" and "refund" not in other.data


def test_every_model_call_is_logged_under_the_turns_run_id(transactional_db, support_chat):
    result = support_chat.execute(CHARGED_TWICE, session_id="ann:c1")
    assert result.run_id == "ann:c1.unversioned.0"
    calls = list(ModelCall.objects.for_run(result.run_id).order_by("id"))
    assert [(c.iteration, c.agent, c.status) for c in calls] == [
        (1, "triage", "finished"),
        (2, "billing", "finished"),
        (3, "resolver", "finished"),
    ]
    assert sum(c.total_tokens for c in calls) == result.usage.total > 0


def test_a_message_that_is_not_text_fails_the_turn_and_appends_nothing(
    transactional_db, support_chat
):
    support_chat.execute("Hello", session_id="ann:c1")
    for bad in ("   ", {"text": "hi"}):
        result = support_chat.execute(bad, session_id="ann:c1")
        assert result.report.status == "failed" and result.data is None
        assert "the customer's message, a non-empty string" in result.error.message
        assert "\n" not in result.error.message
    assert [r.turn_index for r in rows("ann:c1")] == [0]


def test_memory_is_scoped_per_customer(transactional_db, support_chat):
    for text in ("first", "second", "third", "fourth"):
        support_chat.execute(text, session_id="ann:c1")
    again = support_chat.execute("I am back", session_id="ann:c2")
    assert again.data["recalled"] == ["fourth", "third", "second"]  # newest first, k=3
    assert again.turn_index == 0 and again.data["message_count"] == 1  # a new session
    stranger = support_chat.execute("Hello", session_id="bob:c1")
    assert stranger.data["recalled"] == []
    memory = chat.ChatMemory()
    notes = memory.recall("anything", k=10, scope="customer:ann")
    assert [n["text"].split("\n")[0] for n in notes] == [
        "I am back",
        "fourth",
        "third",
        "second",
        "first",
    ]
    assert memory.recall("anything", scope=None) == []  # the unscoped pool is not a wildcard
    assert len(memory.recall("anything", scope="customer:bob")) == 1


def test_a_failed_turn_is_not_remembered(transactional_db, support_chat):
    support_chat.execute("   ", session_id="ann:c1")
    assert chat.ChatMemory().recall("q", scope="customer:ann") == []


def test_the_agents_see_the_history_window(transactional_db):
    model = CountingModel()
    orch = build_support_chat(model)
    history = [{"role": "user", "content": f"m{i}"} for i in range(10)]
    windows: list[int] = []
    orch.execute(
        "Thanks!",
        session_id="ann:c1",
        history=history,
        on={"orchestrator.history.windowed": lambda e: windows.append(e["message_count"])},
    )
    assert windows == [chat.HISTORY_WINDOW]
    # Each call: the system prompt, the window, the prompt (triage, then the resolver).
    assert model.sizes == [chat.HISTORY_WINDOW + 2] * 2


async def test_turns_under_aexecute(transactional_db, support_chat):
    first = await support_chat.aexecute(CHARGED_TWICE, session_id="ann:c1", state=ANN)
    second = await support_chat.aexecute("Thanks!", session_id="ann:c1")
    assert first.error is None and second.error is None
    assert second.turn_index == 1 and second.data["recalled"] == [CHARGED_TWICE]


def test_the_chat_is_registered():
    definition = registry.get("orchestrator", "support-chat")
    assert definition.iterate is True
    assert definition.signature == build_support_chat(OfflineSupportModel()).signature


def test_session_ids_name_the_customer():
    assert chat.customer_of("ann:chat-1") == "ann" and chat.customer_of("solo") == "solo"
    assert chat.memory_scope("ann:chat-2") == "customer:ann"


@pytest.mark.slow
@pytest.mark.crash
def test_the_chat_demo_resumes_a_killed_turn(subprocess_env):
    subprocess_env.pop("SUPPORT_CHAT_PAUSE_FILE", None)
    done = subprocess.run(
        [sys.executable, "-m", "example_project.chat_demo"],
        cwd=REPO_ROOT,
        env=subprocess_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "simulating a crash: SIGKILL to pid" in out
    assert "status:     running" in out
    assert "InterruptedTurnError" in out
    assert "turn 3 of ann:chat-1: awaiting-input; iterations run by this process: [2]" in out
    assert "5 turns, 1 crash, 0 settled iterations run again" in " ".join(out.split())
    assert "Every check passed." in out
