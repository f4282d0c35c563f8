"""Runs for the admin tests, made by the real engine on the ORM store.

``orders`` (3 steps) is registered; ``RunFactory`` produces a completed run, a failed run, a
run interrupted mid-step (still ``running``, lease held by this live process), a stale run
(the same, with its lease expired as if its worker died long ago) and a drifted run (written
by ``orders`` version 1, while version 2 renamed ``extract`` to ``parse``).
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from datetime import timedelta
from typing import Any

from django.utils import timezone

import warlock_ai as ai
from warlock_ai.models import Snapshot
from warlock_ai.registry import registry

CALLS: Counter[str] = Counter()


class Interrupt(BaseException):
    """Stands for the process dying mid-step: not an error the engine records."""


def _work(seconds: float) -> None:
    """Steps take a little time, so the timeline's bars have a length."""
    time.sleep(seconds)


def _fetch(ctx: Any) -> None:
    CALLS["fetch"] += 1
    _work(0.03)
    ctx.state["items"] = ctx.input.get("items", 3)


def _extract(ctx: Any) -> Any:
    CALLS["extract"] += 1
    _work(0.02)
    if ctx.input.get("fail"):
        raise ValueError("vendor feed row 17 has no price")
    if ctx.input.get("interrupt"):
        raise Interrupt()
    ctx.state["extracted"] = True
    return {"rows": ctx.state["items"]}


def _save(ctx: Any) -> None:
    CALLS["save"] += 1
    _work(0.01)
    ctx.state["saved"] = True


def orders(version: str = "1") -> Any:
    middle = "extract" if version == "1" else "parse"
    return ai.workflow(
        name="orders",
        version=version,
        steps=[
            ai.step("fetch", _fetch),
            ai.step(middle, _extract),
            ai.parallel("notify", [ai.step("email", _save), ai.step("slack", _save)]),
            ai.step("save", _save),
        ],
    )


class RunFactory:
    def __init__(self) -> None:
        CALLS.clear()
        self.v1 = registry.register(orders("1"), replace=True)

    def close(self) -> None:
        registry.unregister("workflow", "orders")

    def completed(self, run_id: str = "done-1") -> Snapshot:
        self.v1.execute({"items": 2}, run_id=run_id)
        return Snapshot.objects.get(pk=run_id)

    def failed(self, run_id: str = "failed-1") -> Snapshot:
        self.v1.execute({"fail": True}, run_id=run_id)
        return Snapshot.objects.get(pk=run_id)

    def interrupted(self, run_id: str = "live-1") -> Snapshot:
        """Running, next step ``extract``, leased by this (live) process."""
        with contextlib.suppress(Interrupt):
            self.v1.execute({"interrupt": True}, run_id=run_id)
        return Snapshot.objects.get(pk=run_id)

    def stale(self, run_id: str = "stale-1") -> Snapshot:
        """Running, with a lease that expired a while ago: its worker is gone."""
        self.interrupted(run_id)
        expired = timezone.now() - timedelta(minutes=3)
        Snapshot.objects.filter(pk=run_id).update(lease_expires_at=expired)
        # Resuming it must succeed: the input no longer asks for an interruption.
        row = Snapshot.objects.get(pk=run_id)
        Snapshot.objects.filter(pk=run_id).update(input={**row.input, "interrupt": False})
        return Snapshot.objects.get(pk=run_id)

    def drifted(self, run_id: str = "drift-1") -> Snapshot:
        """A stale version-1 run, then version 2 (extract renamed parse) registered."""
        row = self.stale(run_id)
        registry.register(orders("2"), replace=True)
        return row


# --- a supervisor: triage, then billing, then end ------------------------------------------


def _triage(ctx: Any) -> dict[str, Any]:
    CALLS["triage"] += 1
    return {"category": "billing"}


def _billing(ctx: Any) -> dict[str, Any]:
    CALLS["billing"] += 1
    if ctx.input.get("interrupt"):
        raise Interrupt()
    if ctx.input.get("fail"):
        raise ValueError("the payment provider timed out")
    return {"refund": 49}


def _route(ctx: Any) -> Any:
    return ai.END if ctx.iteration >= 2 else ["triage", "billing"][ctx.iteration]


def support(extra_intent: bool = False) -> Any:
    intents = {"triage": _triage, "billing": _billing}
    if extra_intent:
        intents["resolver"] = lambda ctx: {"reply": "sorted"}
    return ai.supervisor(name="support", intents=intents, route=_route)


class SupervisedRuns:
    """Supervisor runs next to ``RunFactory``'s workflow runs."""

    def __init__(self) -> None:
        CALLS.clear()
        self.definition = registry.register(support(), replace=True)

    def close(self) -> None:
        registry.unregister("supervisor", "support")

    def completed(self, run_id: str = "sv-done") -> Snapshot:
        self.definition.execute({"ticket": 1}, run_id=run_id)
        return Snapshot.objects.get(pk=run_id)

    def stale(self, run_id: str = "sv-stale") -> Snapshot:
        """Killed during iteration 1 (billing), its lease long expired."""
        with contextlib.suppress(Interrupt):
            self.definition.execute({"ticket": 2, "interrupt": True}, run_id=run_id)
        Snapshot.objects.filter(pk=run_id).update(
            lease_expires_at=timezone.now() - timedelta(minutes=3), input={"ticket": 2}
        )
        return Snapshot.objects.get(pk=run_id)

    def drifted(self, run_id: str = "sv-drift") -> Snapshot:
        row = self.stale(run_id)
        self.definition = registry.register(support(extra_intent=True), replace=True)
        return row
