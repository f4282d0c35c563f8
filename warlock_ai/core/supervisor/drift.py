"""The drift diff of two supervisor fingerprints (``{n, a, r, rc, e, i, m, c}``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..runs.drift import DefinitionDiff


def diff_supervisors(saved: Mapping[str, Any] | None, current: Mapping[str, Any]) -> DefinitionDiff:
    """Compare two supervisor fingerprints (``{n, a, r, rc, e, i, m, c}``): intents added,
    removed or changed (description, unit), and the router, evaluate, initial intent and
    iteration limit."""
    if not saved:
        return DefinitionDiff(unknown=True, noun="intent")
    old = {a["k"]: a for a in saved.get("a") or []}
    new = {a["k"]: a for a in current.get("a") or []}
    changed = []
    for key in (k for k in new if k in old):
        if old[key].get("u") != new[key].get("u"):
            changed.append(
                (key, f"now runs {_unit(new[key].get('u'))}, was {_unit(old[key].get('u'))}")
            )
        if old[key].get("d") != new[key].get("d"):
            changed.append((key, "description changed"))
    labels = {
        "r": "router agent",
        "rc": "route callable",
        "e": "evaluate",
        "i": "initial intent",
        "m": "max_iterations",
        "c": "classifier",
    }
    notes = [
        f"{label} changed from {saved.get(k)!r} to {current.get(k)!r}"
        for k, label in labels.items()
        if saved.get(k) != current.get(k)
    ]
    return DefinitionDiff(
        added=[k for k in new if k not in old],
        removed=[k for k in old if k not in new],
        changed=changed,
        notes=notes,
        noun="intent",
    )


def _unit(unit: Any) -> str:
    if not isinstance(unit, dict):
        return "?"
    name = unit.get("n")
    return f"{unit.get('t')} {name}" if name else str(unit.get("t"))
