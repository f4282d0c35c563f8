"""Routing decisions shared by workflows and supervisors.

A router answers ``{"goto": name}``, ``{"end": True}`` or ``END``.
"""

from __future__ import annotations

from typing import Any, Literal

#: Returned by a router to end the run (the same marker string as ``@warlock.js/ai``).
END = "__warlock:end__"

RouteKind = Literal["goto", "end"] | None


def parse_route(decision: Any) -> tuple[RouteKind, str | None]:
    """Read a routing callback's answer.

    ``{"goto": "name"}`` or a bare step name jumps; ``{"end": True}`` or ``END`` ends the run;
    anything else (``None``, ``{"end": False}``, a non-string goto) falls through.
    """
    if decision is None:
        return None, None
    if isinstance(decision, str):
        return ("end", None) if decision == END else ("goto", decision)
    if isinstance(decision, dict):
        target = decision.get("goto")
        if isinstance(target, str):
            return "goto", target
        if decision.get("end") is True:
            return "end", None
    return None, None
