"""What changed between two structural fingerprints: the drift diff the admin shows.

A workflow fingerprint is ``{n: name, v: version, s: [step, ...]}`` with a step being
``{n: name, t: kind, a: agent, c: children}`` (see ``Step.fingerprint``). The diff names
steps added, removed, renamed (a removed and an added step of the same kind in the same
place), moved (present in both, in another order) and changed (same name, other kind, agent
or children). It is a reading aid for an operator choosing between discard, force and
migrate, not a proof: two unrelated steps in the same place look like a rename.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class DefinitionDiff:
    """Differences from the stored definition (``saved``) to the current one."""

    version: tuple[Any, Any] | None = None
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    renamed: list[tuple[str, str]] = field(default_factory=list)
    moved: list[str] = field(default_factory=list)
    changed: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    unknown: bool = False  # the stored fingerprint was not recorded
    noun: str = "step"

    def __bool__(self) -> bool:
        return self.unknown or any(
            (
                self.version,
                self.added,
                self.removed,
                self.renamed,
                self.moved,
                self.changed,
                self.notes,
            )
        )

    def lines(self) -> list[str]:
        """One human sentence per difference."""
        if self.unknown:
            return ["the stored run did not record its definition's structure (only its hash)"]
        out = []
        if self.version:
            old, new = self.version
            out.append(f"version changed from {old or '(none)'} to {new or '(none)'}")
        noun = self.noun
        out += [f'{noun} "{old}" renamed to "{new}"' for old, new in self.renamed]
        out += [f'{noun} "{name}" added' for name in self.added]
        out += [f'{noun} "{name}" removed' for name in self.removed]
        out += [f'{noun} "{name}" moved' for name in self.moved]
        out += [f'{noun} "{name}": {what}' for name, what in self.changed]
        return out + self.notes


def diff_definitions(saved: dict[str, Any] | None, current: dict[str, Any]) -> DefinitionDiff:
    """Compare a stored workflow fingerprint with the current one."""
    if not saved:
        return DefinitionDiff(unknown=True)
    version = None
    if saved.get("v") != current.get("v"):
        version = (saved.get("v"), current.get("v"))
    diff = _diff_steps(saved.get("s") or [], current.get("s") or [])
    return DefinitionDiff(version=version, **diff)


def diff_supervisors(saved: dict[str, Any] | None, current: dict[str, Any]) -> DefinitionDiff:
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


def _diff_steps(saved: list[dict], current: list[dict], prefix: str = "") -> dict[str, list]:
    old = {s["n"]: s for s in saved}
    new = {s["n"]: s for s in current}
    old_order = [s["n"] for s in saved]
    new_order = [s["n"] for s in current]
    kept = _longest_common_subsequence(
        [n for n in old_order if n in new], [n for n in new_order if n in old]
    )
    out: dict[str, list] = {"added": [], "removed": [], "renamed": [], "moved": [], "changed": []}
    out["moved"] = [prefix + n for n in new_order if n in old and n not in kept]
    for gone, came in _gaps(old_order, new_order, kept):
        _pair_renames(gone, came, old, new, prefix, out)
    for name in new_order:
        if name in old:
            _compare_step(old[name], new[name], prefix, out)
    return out


def _longest_common_subsequence(a: list[str], b: list[str]) -> set[str]:
    """Names that kept their relative order (step lists are short: O(n*m) is fine)."""
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(len(a) - 1, -1, -1):
        for j in range(len(b) - 1, -1, -1):
            table[i][j] = (
                table[i + 1][j + 1] + 1 if a[i] == b[j] else max(table[i + 1][j], table[i][j + 1])
            )
    kept, i, j = set(), 0, 0
    while i < len(a) and j < len(b):
        if a[i] == b[j]:
            kept.add(a[i])
            i, j = i + 1, j + 1
        elif table[i + 1][j] >= table[i][j + 1]:
            i += 1
        else:
            j += 1
    return kept


def _gaps(old: list[str], new: list[str], kept: set[str]) -> list[tuple[list[str], list[str]]]:
    """Between consecutive kept anchors: the names only the old list has, and only the new."""
    common = set(old) & set(new)

    def segments(order: list[str]) -> list[list[str]]:
        parts: list[list[str]] = [[]]
        for name in order:
            if name in kept:
                parts.append([])
            elif name not in common:
                parts[-1].append(name)
        return parts

    return list(zip(segments(old), segments(new), strict=True))


def _pair_renames(
    gone: list[str],
    came: list[str],
    old: dict[str, dict],
    new: dict[str, dict],
    prefix: str,
    out: dict[str, list],
) -> None:
    """In one gap, pair removed and added steps of the same kind, in order, as renames."""
    unmatched = list(came)
    for name in gone:
        match = next((c for c in unmatched if new[c].get("t") == old[name].get("t")), None)
        if match is None:
            out["removed"].append(prefix + name)
            continue
        unmatched.remove(match)
        out["renamed"].append((prefix + name, prefix + match))
        _compare_step(old[name], new[match], prefix, out, label=match)
    out["added"] += [prefix + name for name in unmatched]


def _compare_step(
    old: dict, new: dict, prefix: str, out: dict[str, list], label: str | None = None
) -> None:
    name = prefix + (label or new["n"])
    if old.get("t") != new.get("t"):
        out["changed"].append((name, f"kind changed from {old.get('t')} to {new.get('t')}"))
    if old.get("a") != new.get("a"):
        agents = f"{old.get('a') or '(none)'} to {new.get('a') or '(none)'}"
        out["changed"].append((name, f"agent changed from {agents}"))
    if old.get("c") is not None or new.get("c") is not None:
        nested = _diff_steps(old.get("c") or [], new.get("c") or [], prefix=f"{name}/")
        for key, items in nested.items():
            out[key] += items
