"""The pieces of the ``support-chat`` orchestrator (``flows.build_support_chat`` puts them
together): one customer chat is one session, each customer message one turn.

A turn is a short loop over the support agents, snapshotted after every iteration
(``iterate=True``), so a turn killed in the middle resumes where it stopped:

- ``intake`` (iteration 0, a plain function, no model): counts the message, keeps the last
  ``MESSAGES_KEPT`` messages, gives the chat its ticket id, notes an order number, and keeps
  what the chat's memory recalled about the customer;
- ``triage`` (the triage agent, on this message alone): a concrete category opens, or
  switches to, the customer's issue; a follow-up ("thanks!") keeps the issue in progress;
- ``billing`` (the billing agent), once per chat, for a billing issue without a refund
  decision;
- ``resolver`` (the resolver agent): the reply to this message; it ends the turn.

The state accumulates across turns, one checkpoint row per turn. The memory
(:class:`ChatMemory`) is scoped per customer (session ids are ``<customer>:<chat>``), so a
customer's next chat starts with what they said in the earlier ones, and another customer's
chat sees none of it.

``SUPPORT_CHAT_PAUSE_FILE`` (a path) is for the demo: the resolver of a turn writes its pid,
run id and iteration there, then waits (30 s at most) to be killed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from asgiref.sync import sync_to_async

import warlock_ai as ai

CHAT_NAME = "support-chat"
MESSAGES_KEPT = 10  # the customer's last messages kept in the state
HISTORY_WINDOW = 6  # the conversation messages the agents are given
RECALL_K = 3  # notes recalled from the customer's memory each turn
MEMORY_NAMESPACE = "example.support-chat.memory"
PAUSE_FILE_VARIABLE = "SUPPORT_CHAT_PAUSE_FILE"
PAUSE_SECONDS = 30.0
ORDER_NUMBER = re.compile(r"\b[A-Z]{1,3}-\d{3,8}\b")
# State keys left out of the agents' prompts: the conversation reaches them as history.
_NOT_PROMPTED = frozenset({"messages", "reply", "recalled"})


# --- sessions and messages --------------------------------------------------------------------


def customer_of(session_id: str) -> str:
    """The customer of a session ``<customer>:<chat>`` (the whole id when it has no colon)."""
    return session_id.split(":", 1)[0]


def memory_scope(session_id: str) -> str:
    """The memory scope of a session: its customer's, shared by all their chats."""
    return f"customer:{customer_of(session_id)}"


def ticket_id_for(session_id: str) -> str:
    return "CHAT-" + hashlib.sha1(session_id.encode("utf-8")).hexdigest()[:6].upper()


def message_of(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(
            "a support-chat turn's input is the customer's message, a non-empty string; "
            f"got {value!r:.60}"
        )
    return value.strip()


def first_line(text: str) -> str:
    return text.split("\n", 1)[0]


# --- the intents' logic ---------------------------------------------------------------------


def intake(ctx: ai.SupervisorContext) -> dict[str, Any]:
    """Iteration 0 of every turn: what the message changes before any agent reads it."""
    message = message_of(ctx.input)
    state = ctx.state
    update: dict[str, Any] = {
        "ticket_id": state.get("ticket_id") or ticket_id_for(ctx.session_id or ""),
        "message_count": int(state.get("message_count", 0)) + 1,
        "messages": [*state.get("messages", []), message][-MESSAGES_KEPT:],
        "recalled": [first_line(note["text"]) for note in ctx.context.get("memories", ())],
    }
    order = ORDER_NUMBER.search(message)
    if order:
        update["order_number"] = order.group(0)
    return update


def route_chat(ctx: ai.SupervisorContext) -> str:
    """After intake: triage the message, billing once for a billing issue, then the reply
    (whose ``next`` ends the turn). An intent that failed fails the turn, at once."""
    for key, branch in (ctx.last or {}).get("result", {}).items():
        if branch.get("error"):
            raise RuntimeError(f"{key} failed: {branch['error'].get('message')}")
    done = {key for record in ctx.snapshots for key in record.get("result") or ()}
    if "triage" not in done:
        return "triage"
    state = ctx.state
    if state.get("category") == "billing" and "refund" not in state and "billing" not in done:
        return "billing"
    return "resolver"


def issue_update(state: Mapping[str, Any], triage: Mapping[str, Any]) -> dict[str, Any]:
    """What the triage of one message changes: a concrete category opens (or switches to) that
    issue; "other" while an issue is open is a follow-up on it, and changes nothing."""
    category = triage["category"]
    if category == "other" and state.get("category"):
        return {}
    issues = list(state.get("issues", []))
    if category not in issues:
        issues.append(category)
    return {**triage, "issues": issues}


def chat_prompt(task: str, ctx: ai.SupervisorContext, *, whole_chat: bool) -> str:
    """The prompt of one agent, in the support agents' format: the task, a ``Ticket:`` line
    (this message as its subject; as its body, this message or the whole chat) and a
    ``State:`` line, then what memory recalled about the customer."""
    state, message = ctx.state, message_of(ctx.input)
    body = "\n".join(state.get("messages") or [message]) if whole_chat else message
    ticket = {
        "id": state.get("ticket_id"),
        "customer": state.get("customer"),
        "email": state.get("email"),
        "subject": message,
        "body": body,
    }
    ticket = {k: v for k, v in ticket.items() if v is not None}
    facts = {k: v for k, v in state.items() if k not in _NOT_PROMPTED}
    lines = [
        task,
        f"Ticket: {json.dumps(ticket, ensure_ascii=False)}",
        f"State: {json.dumps(facts, ensure_ascii=False)}",
    ]
    if state.get("recalled"):
        lines.append(f"Customer's earlier messages: {json.dumps(state['recalled'])}")
    return "\n".join(lines)


def prompt_for(task: str, *, whole_chat: bool) -> Callable[[ai.SupervisorContext], str]:
    """``chat_prompt`` as an intent's ``input=``."""
    return lambda ctx: chat_prompt(task, ctx, whole_chat=whole_chat)


def consult(ctx: ai.SupervisorContext, agent: ai.Agent, prompt: str, schema: Any) -> dict:
    """Ask one support agent for its JSON answer (its usage counts in the turn's)."""
    result = ctx.run(agent, prompt, output=schema, history=ctx.history)
    if result.error is not None:
        raise result.error
    return dict(result.data)


def pause_if_asked(ctx: ai.SupervisorContext) -> None:
    """With ``SUPPORT_CHAT_PAUSE_FILE`` set: say where the turn is (``<pid> <run id>
    <iteration>``, written whole) and wait to be killed, or cancelled, or 30 s."""
    path = os.environ.get(PAUSE_FILE_VARIABLE)
    if not path:
        return
    partial = Path(f"{path}.partial")
    partial.write_text(f"{os.getpid()} {ctx.run_id} {ctx.iteration}\n", encoding="utf-8")
    partial.replace(path)
    ctx.cancel.wait(PAUSE_SECONDS)


# --- memory -----------------------------------------------------------------------------------


class ChatMemory:
    """A small scoped memory that needs no embedder (``ai.memory`` recalls by meaning and needs
    one): the customer's latest notes, newest first. Each note is a row of
    warlock_ai's ``CacheEntry`` table (namespace ``MEMORY_NAMESPACE``) with its scope, so every
    process sees it. ``recall`` returns the newest notes of exactly the scope asked (``None``:
    the unscoped pool, not every scope) and ignores the query text."""

    def __init__(self, namespace: str = MEMORY_NAMESPACE) -> None:
        self.namespace = namespace

    def remember(self, item: Mapping[str, Any] | list[Mapping[str, Any]]) -> None:
        from warlock_ai.models import CacheEntry

        for note in item if isinstance(item, list) else [item]:
            CacheEntry.objects.create(
                namespace=self.namespace,
                key=uuid.uuid4().hex,
                scope=note.get("scope"),
                value={"text": str(note["text"])},
            )

    def recall(self, query: str, *, k: int = 5, scope: str | None = None, **_: Any) -> list[dict]:
        from warlock_ai.models import CacheEntry

        notes = CacheEntry.objects.for_namespace(self.namespace)
        notes = notes.filter(scope=scope) if scope is not None else notes.filter(scope=None)
        rows = list(notes.order_by("-created_at", "-pk")[:k])
        return [
            {"text": row.value["text"], "scope": row.scope, "score": 1 - i / len(rows)}
            for i, row in enumerate(rows)
        ]

    async def aremember(self, item: Mapping[str, Any] | list[Mapping[str, Any]]) -> None:
        await sync_to_async(self.remember)(item)

    async def arecall(self, query: str, **options: Any) -> list[dict]:
        return await sync_to_async(self.recall)(query, **options)

    def __repr__(self) -> str:
        return f"<ChatMemory {self.namespace}>"
