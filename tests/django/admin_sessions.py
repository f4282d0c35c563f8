"""Orchestrator sessions for the sessions admin tests, made by the real engine on the ORM
stores (checkpoints and turn snapshots in the test database).

``desk-chat`` (``iterate=True``) is registered: each turn notes its input (iteration 0),
then replies (iteration 1), then ends. ``SessionFactory.interrupted`` leaves a session whose
next turn stopped after its first iteration, as a process killed mid-turn leaves it.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from datetime import timedelta
from typing import Any

from django.utils import timezone

import warlock_ai as ai
from warlock_ai import END
from warlock_ai.models import Checkpoint, Snapshot
from warlock_ai.registry import registry

NAME = "desk-chat"
CALLS: Counter[str] = Counter()
GATE = {"crash": False}


class Interrupt(BaseException):
    """Stands for the process dying mid-turn: not an error the engine records."""


def _note(ctx: Any) -> dict[str, Any]:
    CALLS["note"] += 1
    notes = [*ctx.state.get("notes", []), ctx.input]
    return {"notes": notes, "customer": {"id": 1042, "tier": "gold" if len(notes) > 1 else None}}


def _reply(ctx: Any) -> dict[str, Any]:
    CALLS["reply"] += 1
    if GATE["crash"]:
        raise Interrupt()
    return {"replies": ctx.state.get("replies", 0) + 1}


def _route(ctx: Any) -> Any:
    return ["note", "reply", END][min(ctx.iteration, 2)]


def support_chat(extra_intent: bool = False) -> Any:
    intents = {
        "note": ai.intent(_note, description="note the message"),
        "reply": ai.intent(_reply, description="answer the customer"),
    }
    if extra_intent:
        intents["escalate"] = ai.intent(lambda ctx: {}, description="hand over to a human")
    return ai.orchestrator(name=NAME, intents=intents, route=_route, iterate=True)


class SessionFactory:
    def __init__(self) -> None:
        CALLS.clear()
        GATE["crash"] = False
        self.orchestrator = registry.register(support_chat(), replace=True)

    def close(self) -> None:
        GATE["crash"] = False
        registry.unregister("orchestrator", NAME)

    def settled(self, session_id: str, *inputs: str) -> list[Checkpoint]:
        for text in inputs:
            result = self.orchestrator.execute(text, session_id=session_id)
            assert result.error is None, result.error
        return list(Checkpoint.objects.for_session(NAME, session_id).order_by("turn_index"))

    def interrupted(self, session_id: str, *inputs: str, stale: bool = True) -> Snapshot:
        """``inputs`` settled, then one more turn stopped after its first iteration; its lease
        expired long ago (``stale``) or still held by this live process."""
        self.settled(session_id, *inputs)
        GATE["crash"] = True
        try:
            with contextlib.suppress(Interrupt):
                self.orchestrator.execute("crash course", session_id=session_id)
        finally:
            GATE["crash"] = False
        turn = Snapshot.objects.get(kind="orchestrator", name=NAME, status="running")
        if stale:
            expired = timezone.now() - timedelta(minutes=3)
            Snapshot.objects.filter(pk=turn.pk).update(lease_expires_at=expired)
        return Snapshot.objects.get(pk=turn.pk)

    def drift(self) -> None:
        """The orchestrator's code changed: a new intent, so a new signature."""
        self.orchestrator = registry.register(support_chat(extra_intent=True), replace=True)
