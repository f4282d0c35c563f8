"""A supervisor's intents: what each key dispatches (an agent, a workflow or a callback), how
it is described to a router, and the supervisor's structural fingerprint (reference 2.7)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import SupervisorFailedError
from ..runs.definition import Definition
from ..runs.limits import check_storable

AGENT, WORKFLOW, CALLBACK = "agent", "workflow", "callback"
# Collation order of punctuation in ICU's root locale (what JS localeCompare uses).
_PUNCTUATION = "_-,;:!?.'\"()[]{}@*/\\&#%`^+<=>|~$"


@dataclass(frozen=True)
class Intent:
    """One dispatchable intent. ``output`` is a JSON Schema (or True) when the unit's output
    merges into the state; ``input(ctx)`` overrides the prompt; ``next(ctx)`` names what the
    next iteration dispatches (an intent key, a list of keys, or END)."""

    key: str
    unit: Any
    kind: str
    description: str | None = None
    input: Callable[[Any], Any] | None = None
    output: Any = None
    next: Callable[[Any], Any] | None = None

    @property
    def merges(self) -> bool:
        return self.kind == CALLBACK or self.output is not None

    def fingerprint(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"k": self.key}
        if self.description is not None or self.kind != CALLBACK:
            entry["d"] = self.description or ""
        entry["u"] = unit_fingerprint(self.unit, self.kind)
        return entry


def intent(
    unit: Any,
    *,
    description: str | None = None,
    input: Callable[[Any], Any] | None = None,
    output: Any = None,
    next: Callable[[Any], Any] | None = None,
) -> dict[str, Any]:
    """``ai.intent(billing_agent, description=..., output=schema)``: an intent with options."""
    return {
        "unit": unit,
        "description": description,
        "input": input,
        "output": output,
        "next": next,
    }


def unit_kind(unit: Any) -> str:
    if isinstance(unit, Definition):
        return WORKFLOW
    if callable(getattr(unit, "execute", None)) and isinstance(getattr(unit, "name", None), str):
        return AGENT
    if callable(unit):
        return CALLBACK
    raise SupervisorFailedError(f"{unit!r} is not an agent, a workflow or a callable")


def unit_fingerprint(unit: Any, kind: str) -> dict[str, Any]:
    if kind == AGENT:
        return {"t": AGENT, "n": unit.name}
    if kind == WORKFLOW:
        return {"t": WORKFLOW, "n": unit.name, "s": unit.signature}
    return {"t": CALLBACK}


def resolve_intents(supervisor: str, intents: Mapping[str, Any] | None) -> dict[str, Intent]:
    if not isinstance(intents, Mapping) or not intents:
        raise SupervisorFailedError(f'supervisor "{supervisor}": intents must be a non-empty dict')
    resolved = {}
    for key, value in intents.items():
        if not isinstance(key, str) or not key:
            raise SupervisorFailedError(f'supervisor "{supervisor}": intent keys must be strings')
        where = f'supervisor "{supervisor}"'
        check_storable(where, "intent name", key, None, SupervisorFailedError)
        options = dict(value) if isinstance(value, Mapping) else {"unit": value}
        unit = options.pop("unit", None) or options.pop("agent", None) or options.pop("run", None)
        kind = unit_kind(unit)
        description = options.get("description") or getattr(unit, "description", None)
        resolved[key] = Intent(
            key=key,
            unit=unit,
            kind=kind,
            description=description or None,
            input=options.get("input"),
            output=options.get("output"),
            next=options.get("next"),
        )
    return resolved


def collation_key(text: str) -> tuple[tuple[tuple[int, Any], ...], tuple[bool, ...]]:
    """Approximates ICU root collation (JS ``localeCompare``): punctuation, then digits, then
    letters ignoring case; lower case before upper case only to break ties."""

    def primary(char: str) -> tuple[int, Any]:
        if char in _PUNCTUATION:
            return (0, _PUNCTUATION.index(char))
        if char.isdigit():
            return (1, char)
        if char.isalpha():
            return (2, char.casefold())
        return (0, len(_PUNCTUATION) + ord(char))

    return (tuple(primary(c) for c in text), tuple(c.isupper() for c in text))


def supervisor_fingerprint(
    name: str,
    intents: dict[str, Intent],
    router: Any,
    route: Any,
    evaluate: Any,
    initial_agent: str | None,
    max_iterations: int | None,
) -> dict[str, Any]:
    """``{n, a, r, rc, e, i, m, c}`` as the original builds it (no classifier here: ``c`` null)."""
    return {
        "n": name,
        "a": [intents[k].fingerprint() for k in sorted(intents, key=collation_key)],
        "r": getattr(router, "name", None),
        "rc": 1 if route is not None else 0,
        "e": 1 if evaluate is not None else 0,
        "i": initial_agent,
        "m": max_iterations,
        "c": None,
    }
