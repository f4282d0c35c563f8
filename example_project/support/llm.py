"""The model behind the support agents.

- By default :class:`OfflineSupportModel`: offline and deterministic, so the example needs no
  network and no API key. It answers each agent's JSON schema (the router's ``next``,
  triage's ``category``, billing's ``refund``, the resolver's ``reply``) from the ticket's
  keywords and the state in the prompt, and reports token usage as an API would (about four
  characters a token). ``SUPPORT_DEMO_MODEL_DELAY`` (seconds, default 0) makes every call
  wait first, like a real model's latency, so the demo can kill a run in the middle of a call.
- With ``settings.SUPPORT_LLM = {"base_url": ..., "api_key": ..., "model": ...}``, or the
  environment variable ``SUPPORT_LLM_BASE_URL`` or ``OPENAI_API_KEY``, it is
  :class:`warlock_ai.providers.openai.OpenAIModel` on that endpoint (OpenAI, vLLM, Ollama,
  LM Studio, a gateway): the model name from ``SUPPORT_LLM_MODEL`` (default ``gpt-4o-mini``),
  the key from ``SUPPORT_LLM_API_KEY`` or ``OPENAI_API_KEY`` (a local server needs none).
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from collections.abc import Sequence
from typing import Any

import warlock_ai as ai

DEFAULT_MODEL = "gpt-4o-mini"
DELAY_VARIABLE = "SUPPORT_DEMO_MODEL_DELAY"
REFUND_WINDOW_DAYS = 14

# (category, keywords), first match wins; a ticket matching none is "other".
CATEGORY_KEYWORDS = (
    ("billing", ("charged", "charge", "refund", "invoice", "billing", "payment", "receipt")),
    ("account", ("password", "log in", "login", "locked", "sign in", "2fa", "two-factor")),
    ("technical", ("error", "crash", "bug", "broken", "not working", "timeout")),
)
URGENT_WORDS = ("urgent", "asap", "immediately", "right now")
DUPLICATE_WORDS = ("twice", "two charges", "duplicate", "double")
_AMOUNT = re.compile(r"\$(\d[\d,]*(?:\.\d{1,2})?)")
_DAYS_AGO = re.compile(r"(\d+) days? ago")


class OfflineSupportModel:
    """A deterministic stand-in for an LLM that knows the four support tasks."""

    name = "support-desk-offline"
    provider = "local"

    def __init__(self, delay: float | None = None) -> None:
        self.delay = delay

    def complete(self, messages: Sequence[Any], **options: Any) -> ai.ModelResponse:
        self._wait(options.get("cancel"))
        prompt = _content(messages[-1])
        schema = options.get("response_format") or {}
        answer = answer_for(schema.get("properties") or {}, prompt)
        content = json.dumps(answer)
        prompt_tokens = sum(_tokens(_content(m)) + 4 for m in messages)
        completion_tokens = _tokens(content)
        usage = ai.Usage(
            input=prompt_tokens,
            output=completion_tokens,
            total=prompt_tokens + completion_tokens,
        )
        return ai.ModelResponse(content=content, usage=usage, model=self.name)

    def _wait(self, cancel: Any) -> None:
        delay = self.delay
        if delay is None:
            delay = float(os.environ.get(DELAY_VARIABLE) or 0)
        if delay <= 0:
            return
        if cancel is not None:
            cancel.wait(delay)  # returns early when the run is cancelled
        else:
            time.sleep(delay)

    def __repr__(self) -> str:
        return f"<OfflineSupportModel {self.provider}/{self.name}>"


def answer_for(properties: dict[str, Any], prompt: str) -> dict[str, Any]:
    """The JSON answer to one task, told apart by the schema the agent asked for."""
    state = json_line(prompt, "State:") or {}
    if "next" in properties:
        return route(state)
    ticket = json_line(prompt, "Ticket:") or {}
    if "category" in properties:
        return triage(ticket)
    if "refund" in properties:
        return billing(ticket)
    if "reply" in properties:
        return resolve(ticket, state)
    raise ai.ModelCallError(
        "the offline support model answers the router, triage, billing and resolver schemas "
        f"only; got a request for {sorted(properties) or 'plain text'}",
        provider=OfflineSupportModel.provider,
        model=OfflineSupportModel.name,
    )


# --- the four tasks ---------------------------------------------------------------------------


def route(state: dict[str, Any]) -> dict[str, Any]:
    if not state.get("category"):
        return {"next": "triage", "reasoning": "The ticket has no category yet."}
    if state["category"] == "billing" and "refund" not in state:
        return {"next": "billing", "reasoning": "A billing ticket needs a refund decision."}
    if not state.get("reply"):
        return {"next": "resolver", "reasoning": "Everything is known; the customer needs a reply."}
    return {"next": ai.END, "reasoning": "The reply is drafted."}


def triage(ticket: dict[str, Any]) -> dict[str, Any]:
    text = _ticket_text(ticket)
    category = next(
        (name for name, words in CATEGORY_KEYWORDS if any(w in text for w in words)), "other"
    )
    if any(w in text for w in URGENT_WORDS):
        priority = "urgent"
    elif category == "billing" and any(w in text for w in DUPLICATE_WORDS):
        priority = "high"
    elif category == "other":
        priority = "low"
    else:
        priority = "normal"
    summary = f"{ticket.get('customer', 'A customer')}: {ticket.get('subject', '(no subject)')}"
    return {"category": category, "priority": priority, "summary": summary}


def billing(ticket: dict[str, Any]) -> dict[str, Any]:
    text = _ticket_text(ticket)
    amounts = [float(a.replace(",", "")) for a in _AMOUNT.findall(text)]
    amount = amounts[0] if amounts else 0.0
    if any(w in text for w in DUPLICATE_WORDS):
        note = f"Duplicate charge of ${amount:.2f}: refund the second charge."
        return _decision("approved", amount, note)
    if "refund" in text:
        days = _DAYS_AGO.search(text)
        if days and int(days.group(1)) <= REFUND_WINDOW_DAYS:
            note = f"Bought {days.group(1)} days ago, inside the {REFUND_WINDOW_DAYS}-day window."
            return _decision("approved", amount, note)
        return _decision("denied", 0.0, f"Outside the {REFUND_WINDOW_DAYS}-day refund window.")
    return _decision("none", 0.0, "No money to move.")


def _decision(refund: str, amount: float, note: str) -> dict[str, Any]:
    return {"refund": refund, "refund_amount": amount, "currency": "USD", "billing_note": note}


def resolve(ticket: dict[str, Any], state: dict[str, Any]) -> dict[str, Any]:
    name = (ticket.get("customer") or "there").split()[0]
    body = _reply_body(ticket, state)
    return {"reply": f"Hi {name},\n\n{body}\n\nBest regards,\nSam from the Support team"}


def _reply_body(ticket: dict[str, Any], state: dict[str, Any]) -> str:
    category, refund = state.get("category"), state.get("refund")
    amount = f"${state.get('refund_amount') or 0:.2f}"
    if category == "billing" and refund == "approved":
        if any(w in _ticket_text(ticket) for w in DUPLICATE_WORDS):
            return (
                "Sorry about the double charge. I have refunded the duplicate payment of "
                f"{amount}; it will be back on your card within 5-10 business days, and your "
                "subscription is not affected."
            )
        return (
            f"I have refunded the full {amount}, as you asked within our {REFUND_WINDOW_DAYS}-day "
            "refund window. Your workspace stays available until the end of the billing period."
        )
    if category == "billing" and refund == "denied":
        return (
            f"Your purchase is outside our {REFUND_WINDOW_DAYS}-day refund window, so I cannot "
            "refund it, but I have turned off the renewal so you will not be charged again."
        )
    if category == "account":
        return (
            "I have cleared the lock on your account and sent a fresh password reset link to "
            f"{ticket.get('email', 'your email address')}; it is valid for 30 minutes. If it "
            "fails again, reply to this email and I will call you straight away."
        )
    if category == "technical":
        return (
            "Thanks for the detailed report. I have passed it to our engineers with your "
            "workspace details and will update you within one business day."
        )
    subject = ticket.get("subject") or "your question"
    if not subject.endswith(("?", ".", "!")):
        subject += "."
    return (
        f'Thanks for your question, "{subject}" It is not available yet, but '
        "I have added your vote to the feature request our product team tracks, and I will "
        "let you know as soon as it ships."
    )


# --- reading prompts ----------------------------------------------------------------------------


def json_line(prompt: str, label: str) -> dict[str, Any] | None:
    """The JSON object after ``label`` on a line of ``prompt`` (``State: {...}``), if any."""
    for line in prompt.splitlines():
        if line.startswith(label):
            try:
                value = json.loads(line[len(label) :])
            except ValueError:
                return None
            return value if isinstance(value, dict) else None
    return None


def _ticket_text(ticket: dict[str, Any]) -> str:
    return f"{ticket.get('subject', '')}\n{ticket.get('body', '')}".lower()


def _content(message: Any) -> str:
    if isinstance(message, dict):
        return str(message.get("content") or "")
    return str(getattr(message, "content", "") or "")


def _tokens(text: str) -> int:
    return math.ceil(len(text) / 4)


# --- choosing the model -------------------------------------------------------------------------


def llm_settings() -> dict[str, Any] | None:
    """``settings.SUPPORT_LLM`` if set, else the ``SUPPORT_LLM_*`` / ``OPENAI_*`` environment,
    else ``None`` (the offline model)."""
    from django.conf import settings

    configured = getattr(settings, "SUPPORT_LLM", None)
    if configured:
        return dict(configured)
    base_url = os.environ.get("SUPPORT_LLM_BASE_URL")
    if not base_url and not os.environ.get("OPENAI_API_KEY"):
        return None
    return {
        "base_url": base_url or None,
        "api_key": os.environ.get("SUPPORT_LLM_API_KEY") or os.environ.get("OPENAI_API_KEY"),
        "model": os.environ.get("SUPPORT_LLM_MODEL") or DEFAULT_MODEL,
    }


def support_model() -> Any:
    """The model the agents use: an OpenAI-compatible endpoint when configured, else offline."""
    config = llm_settings()
    if config is None:
        return OfflineSupportModel()
    from warlock_ai.providers.openai import OpenAIModel  # needs httpx: the "openai" extra

    return OpenAIModel(
        config.get("model") or DEFAULT_MODEL,
        api_key=config.get("api_key"),
        base_url=config.get("base_url"),
    )
