"""The drift diff of two workflow fingerprints (``{n, v, s: [step, ...]}``): steps added,
removed, renamed (a removed and an added step of the same kind in the same place), moved and
changed. A reading aid for an operator, not a proof."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypedDict

from ..runs.drift import DefinitionDiff

#: A step's fingerprint: ``{n: name, t: kind, a?: agent, c: children or None}``.
StepPrint = dict[str, Any]


class StepChanges(TypedDict):
    """What :func:`_diff_steps` finds: the step fields of a ``DefinitionDiff``."""

    added: list[str]
    removed: list[str]
    renamed: list[tuple[str, str]]
    moved: list[str]
    changed: list[tuple[str, str]]


def diff_definitions(saved: Mapping[str, Any] | None, current: Mapping[str, Any]) -> DefinitionDiff:
    """Compare a stored workflow fingerprint with the current one."""
    if not saved:
        return DefinitionDiff(unknown=True)
    version = None
    if saved.get("v") != current.get("v"):
        version = (saved.get("v"), current.get("v"))
    diff = _diff_steps(saved.get("s") or [], current.get("s") or [])
    return DefinitionDiff(version=version, **diff)


def _diff_steps(saved: list[StepPrint], current: list[StepPrint], prefix: str = "") -> StepChanges:
    old = {s["n"]: s for s in saved}
    new = {s["n"]: s for s in current}
    old_order = [s["n"] for s in saved]
    new_order = [s["n"] for s in current]
    kept = _longest_common_subsequence(
        [n for n in old_order if n in new], [n for n in new_order if n in old]
    )
    out: StepChanges = {"added": [], "removed": [], "renamed": [], "moved": [], "changed": []}
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
    old: dict[str, StepPrint],
    new: dict[str, StepPrint],
    prefix: str,
    out: StepChanges,
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
    old: StepPrint, new: StepPrint, prefix: str, out: StepChanges, label: str | None = None
) -> None:
    name = prefix + (label or new["n"])
    if old.get("t") != new.get("t"):
        out["changed"].append((name, f"kind changed from {old.get('t')} to {new.get('t')}"))
    if old.get("a") != new.get("a"):
        agents = f"{old.get('a') or '(none)'} to {new.get('a') or '(none)'}"
        out["changed"].append((name, f"agent changed from {agents}"))
    if old.get("c") is not None or new.get("c") is not None:
        nested = _diff_steps(old.get("c") or [], new.get("c") or [], prefix=f"{name}/")
        out["added"] += nested["added"]
        out["removed"] += nested["removed"]
        out["renamed"] += nested["renamed"]
        out["moved"] += nested["moved"]
        out["changed"] += nested["changed"]
