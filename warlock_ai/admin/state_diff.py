"""What changed in a session's state from one turn to the next, for people to read.

Objects are compared key by key and lists index by index, down to the values that differ;
each change is named by a JSON-path-like key: ``customer.tier``, ``messages[3]``,
``["odd key"]``. Values are compared as JSON: ``1`` and ``true`` differ.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

ADDED, REMOVED, CHANGED = "added", "removed", "changed"
#: Values longer than this (as compact JSON) are cut for display.
VALUE_LIMIT = 160

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class Change:
    path: str
    kind: str  # ADDED, REMOVED or CHANGED
    old: Any = None
    new: Any = None

    @property
    def old_text(self) -> str:
        return compact(self.old)

    @property
    def new_text(self) -> str:
        return compact(self.new)


def compact(value: Any) -> str:
    """One line of JSON, cut at ``VALUE_LIMIT`` characters."""
    text = json.dumps(value, ensure_ascii=False, default=repr)
    return text if len(text) <= VALUE_LIMIT else text[: VALUE_LIMIT - 1] + "…"


def state_changes(old: Any, new: Any, path: str = "") -> list[Change]:
    """Every difference between two JSON documents, in document order."""
    if isinstance(old, dict) and isinstance(new, dict):
        return _dict_changes(old, new, path)
    if isinstance(old, list) and isinstance(new, list):
        return _list_changes(old, new, path)
    if type(old) is type(new) and old == new:
        return []
    return [Change(path or "(the whole state)", CHANGED, old, new)]


def _dict_changes(old: dict[str, Any], new: dict[str, Any], path: str) -> list[Change]:
    changes: list[Change] = []
    for key in dict.fromkeys([*old, *new]):
        where = _key_path(path, key)
        if key not in new:
            changes.append(Change(where, REMOVED, old=old[key]))
        elif key not in old:
            changes.append(Change(where, ADDED, new=new[key]))
        else:
            changes += state_changes(old[key], new[key], where)
    return changes


def _list_changes(old: list[Any], new: list[Any], path: str) -> list[Change]:
    changes: list[Change] = []
    for index in range(max(len(old), len(new))):
        where = f"{path}[{index}]"
        if index >= len(new):
            changes.append(Change(where, REMOVED, old=old[index]))
        elif index >= len(old):
            changes.append(Change(where, ADDED, new=new[index]))
        else:
            changes += state_changes(old[index], new[index], where)
    return changes


def _key_path(path: str, key: str) -> str:
    if _NAME.fullmatch(key):
        return f"{path}.{key}" if path else key
    return f"{path}[{json.dumps(key, ensure_ascii=False)}]"
