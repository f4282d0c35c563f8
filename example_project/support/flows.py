"""The support app's flows: the ``support-triage`` supervisor (one customer ticket in, a
drafted reply out) and the ``support-chat`` orchestrator (a multi-turn chat over the same
agents; see the end of this module and ``chat.py``).

Each iteration the ``router`` agent reads the ticket and the state and picks the next
specialist: ``triage`` (category, priority, summary), ``billing`` (the refund decision, for
billing tickets) or ``resolver`` (the reply). Each specialist answers JSON that merges into the
state; ``evaluate`` ends the run once a reply exists. The first iteration goes straight to
triage (``initial_agent``), so a ticket costs one router call less.

The run is snapshotted after every iteration, so a run killed in the middle of one resumes
at that iteration: the model calls of the iterations before it are not made again.
``warlock_ai`` registers ``support_triage`` by itself (it autodiscovers ``flows.py``); the
input is one ticket of ``data/tickets.json`` (``subject`` and ``body`` are what the agents
read)::

    python manage.py execute_run support-triage --run-id ticket-T-9 --input \
        '{"id": "T-9", "customer": "Ann Example", "subject": "Charged twice",
          "body": "I see two charges of $12.00 for May."}'

The models are chosen in ``llm.py``: offline by default, an OpenAI-compatible endpoint when
configured. Every model call is logged as a ``ModelCall`` row by ``recording.model_calls``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import warlock_ai as ai

from . import chat
from .llm import support_model
from .recording import RUN_EVENTS, TURN_EVENTS, model_calls

TICKETS = Path(__file__).resolve().parent / "data" / "tickets.json"

TRIAGE_SCHEMA = {
    "type": "object",
    "properties": {
        "category": {"type": "string", "enum": ["billing", "account", "technical", "other"]},
        "priority": {"type": "string", "enum": ["low", "normal", "high", "urgent"]},
        "summary": {"type": "string"},
    },
    "required": ["category", "priority", "summary"],
    "additionalProperties": False,
}
BILLING_SCHEMA = {
    "type": "object",
    "properties": {
        "refund": {"type": "string", "enum": ["approved", "denied", "none"]},
        "refund_amount": {"type": "number"},
        "currency": {"type": "string"},
        "billing_note": {"type": "string"},
    },
    "required": ["refund", "refund_amount", "currency", "billing_note"],
    "additionalProperties": False,
}
REPLY_SCHEMA = {
    "type": "object",
    "properties": {"reply": {"type": "string"}},
    "required": ["reply"],
    "additionalProperties": False,
}

ROUTER_PROMPT = (
    "You dispatch customer support tickets to specialists. Send a ticket to triage while the "
    "state has no category, to billing when it is a billing ticket without a refund decision, "
    "to resolver while there is no reply, and end the work once the reply is written. "
    "Answer with JSON only."
)
TRIAGE_PROMPT = (
    "You triage customer support tickets. Read the ticket and answer with JSON only: category "
    "(billing, account, technical or other), priority (low, normal, high or urgent: urgent "
    "when the customer is blocked right now, high when they lost money) and a one-sentence "
    "summary."
)
BILLING_PROMPT = (
    "You are the billing specialist. Refund policy: a duplicate charge is always refunded; a "
    "plan bought 14 days ago or less is refunded in full on request; anything else is not "
    'refunded. Answer with JSON only: refund ("approved", "denied" or "none" when no money '
    'moves), refund_amount in US dollars (0 when none), currency ("USD") and billing_note '
    "(one sentence for the team)."
)
RESOLVER_PROMPT = (
    "You write the reply to the customer: friendly, concrete, under 120 words, greeting them "
    "by first name and signed 'Sam from the Support team'. Base it on the state (category, "
    "refund decision and amount) and promise nothing the state does not say. Answer with "
    'JSON only: {"reply": "<the email text>"}.'
)


def load_tickets() -> list[dict[str, Any]]:
    with open(TICKETS, encoding="utf-8") as fh:
        return json.load(fh)


def task_prompt(task: str) -> Callable[[Any], str]:
    """The prompt of one specialist: its task, the ticket and the state, one per line."""

    def build(ctx: Any) -> str:
        ticket = json.dumps(ctx.input, ensure_ascii=False)
        state = json.dumps(ctx.state, ensure_ascii=False)
        return f"{task}\nTicket: {ticket}\nState: {state}"

    return build


def reply_written(ctx: Any) -> dict[str, Any] | None:
    """The evaluator: the work is done once the state holds a reply."""
    return {"satisfied": True} if ctx.state.get("reply") else None


def support_agents(model: Any = None) -> dict[str, ai.Agent]:
    """The four support agents (router, triage, billing, resolver) on ``model`` (default: the
    one ``llm.support_model()`` chooses), each logging its model calls."""
    model = model if model is not None else support_model()
    prompts = {
        "router": ROUTER_PROMPT,
        "triage": TRIAGE_PROMPT,
        "billing": BILLING_PROMPT,
        "resolver": RESOLVER_PROMPT,
    }
    return {
        name: ai.agent(name=name, model=model, system_prompt=prompt, middleware=[model_calls])
        for name, prompt in prompts.items()
    }


def build_support_triage(model: Any = None) -> ai.Supervisor:
    """The supervisor on ``model`` (default: the one ``llm.support_model()`` chooses)."""
    agents = support_agents(model)
    return ai.supervisor(
        name="support-triage",
        description="Triage a customer ticket, settle any billing question, draft the reply.",
        goal="Resolve one customer support ticket with a reply the customer can act on.",
        router=agents["router"],
        intents={
            "triage": ai.intent(
                agents["triage"],
                description="classifies the ticket: category, priority and a summary",
                input=task_prompt("Triage this ticket."),
                output=TRIAGE_SCHEMA,
            ),
            "billing": ai.intent(
                agents["billing"],
                description="decides refunds for billing tickets (refund, amount, note)",
                input=task_prompt("Decide the refund for this ticket."),
                output=BILLING_SCHEMA,
            ),
            "resolver": ai.intent(
                agents["resolver"],
                description="drafts the reply to the customer once the facts are settled",
                input=task_prompt("Write the reply to this ticket."),
                output=REPLY_SCHEMA,
            ),
        },
        initial_agent="triage",
        evaluate=reply_written,
        max_iterations=6,
        on=RUN_EVENTS,
    )


support_triage = build_support_triage()


def build_support_chat(model: Any = None, memory: Any = None) -> ai.Orchestrator:
    """The ``support-chat`` orchestrator on ``model`` (default: ``llm.support_model()``'s)
    and ``memory`` (default: a :class:`chat.ChatMemory`). Session ids are
    ``<customer>:<chat>``; each turn's input is one customer message::

        support_chat.execute("I was charged twice", session_id="ann:chat-1",
                             state={"customer": "Ann Example"}, history=[...])
        support_chat.resume("ann:chat-1")   # finish a turn a crash interrupted
    """
    agents = support_agents(model)

    def triage(ctx: ai.SupervisorContext) -> dict[str, Any]:
        prompt = chat.chat_prompt("Triage this message.", ctx, whole_chat=False)
        answer = chat.consult(ctx, agents["triage"], prompt, TRIAGE_SCHEMA)
        return chat.issue_update(ctx.state, answer)

    def reply(ctx: ai.SupervisorContext) -> dict[str, Any]:
        chat.pause_if_asked(ctx)
        prompt = chat.chat_prompt("Write the reply to this chat.", ctx, whole_chat=True)
        answer = chat.consult(ctx, agents["resolver"], prompt, REPLY_SCHEMA)
        return {"reply": answer["reply"], "replies": int(ctx.state.get("replies", 0)) + 1}

    return ai.orchestrator(
        name=chat.CHAT_NAME,
        description="A customer's support chat: each message triaged, billing settled, answered.",
        intents={
            "intake": ai.intent(
                chat.intake,
                description="records the message: count, ticket id, order number, recalled notes",
            ),
            "triage": ai.intent(
                triage, description="classifies the message; a concrete category opens an issue"
            ),
            "billing": ai.intent(
                agents["billing"],
                description="decides the refund of a billing issue, once per chat",
                input=chat.prompt_for("Decide the refund for this chat.", whole_chat=True),
                output=BILLING_SCHEMA,
            ),
            "resolver": ai.intent(
                reply, description="replies to the message; ends the turn", next=_end_turn
            ),
        },
        initial_agent="intake",
        route=chat.route_chat,
        iterate=True,
        max_iterations=6,
        memory={
            "store": memory if memory is not None else chat.ChatMemory(),
            "scope": chat.memory_scope,
            "recall": {"k": chat.RECALL_K},
        },
        history_window={"agents": chat.HISTORY_WINDOW},
        on=TURN_EVENTS,
    )


def _end_turn(ctx: Any) -> str:
    return ai.END


support_chat = build_support_chat()
