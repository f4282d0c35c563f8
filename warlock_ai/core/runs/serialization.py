"""Strict JSON for snapshots: fast C encoder, and a precise error when a value is not JSON.

No pickle anywhere: a snapshot holds only what ``json`` can represent, and only what every
store keeps as it was given, so a resumed run sees the state an uninterrupted one would.
Refused, on every store alike, with the path of the value:

- ``NaN`` and the infinities (PostgreSQL's ``jsonb`` refuses them);
- dict keys that are not strings (the encoder would turn ``1`` and ``None`` into ``"1"`` and
  ``"null"``, so a resumed run would see other keys);
- a NUL character (U+0000) in a string or a key (PostgreSQL cannot store one in text or
  ``jsonb``);
- a lone surrogate (U+D800 to U+DFFF, not paired): it has no UTF-8 form, so no store can
  write it;
- a float of magnitude 1e16 or more (written with an exponent, ``1e+16``): PostgreSQL's
  ``jsonb`` keeps numbers as decimals and gives it back as an int.

The checks after encoding cost a C-speed substring search, an ``isascii()`` and, for the
keys, a walk that visits only containers: the common case adds a few C calls per save.
"""

from __future__ import annotations

import copy
import json
import math
import re
from functools import lru_cache
from typing import Any

from ..errors import SnapshotSerializationError

_encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
_encode = _encoder.encode
_JSON_SCALARS = (str, int, float, bool, type(None))
_SCALAR_TYPES = frozenset(_JSON_SCALARS)
_STR_TYPE = frozenset({str})
_CONTAINERS = (dict, list, tuple)
# How the encoder writes U+0000 (ensure_ascii=False escapes only control characters).
_NUL_ESCAPE = "\\u0000"
_SURROGATE = re.compile("[\ud800-\udfff]")
# A float the encoder wrote with a positive exponent; searched only when "e+" occurs at all.
_EXPONENT = re.compile(r"\de\+\d")
#: From here on ``repr`` writes a float with an exponent, and PostgreSQL returns an int.
BIG_FLOAT = 1e16
_WHOLE: Any = object()
_ADVICE = "store only dicts with string keys, lists, str, int, float, bool and None"


def dumps(value: Any, *, path: str = "$", keys_in: Any = _WHOLE) -> str:
    """Encode ``value`` as compact JSON or raise ``SnapshotSerializationError`` naming the path.

    ``keys_in``: the only part of ``value`` that may hold a dict key other than a string, when
    the engine built the rest (its keys are not searched again); by default all of it.
    """
    try:
        text = _encode(value)
    except (TypeError, ValueError, RecursionError) as exc:
        raise not_json_error(value, path, exc) from None
    if (
        _NUL_ESCAPE in text
        or (not text.isascii() and _SURROGATE.search(text) is not None)
        or ("e+" in text and _EXPONENT.search(text) is not None)
        or has_non_string_key(value if keys_in is _WHOLE else keys_in)
    ):
        found = find_unstorable(value, path)
        if found is not None:  # else a string holding a backslash and "u0000": stored as is
            raise unstorable_error(*found)
    return text


@lru_cache(maxsize=4096)
def key_json(value: str | None) -> str:
    """Encoded names, statuses and state keys, cached (they repeat in every save of a run)."""
    return dumps(value)


def keys_json(names: Any) -> str:
    """A JSON array of names (state keys), each encoded once and cached."""
    return f"[{','.join(key_json(name) for name in names)}]"


def loads(text: str | bytes) -> Any:
    return json.loads(text)


def not_json_error(
    value: Any, path: str, exc: BaseException | None = None
) -> SnapshotSerializationError:
    """Find the first non-JSON value below ``value`` and describe it."""
    found = find_non_json(value, path)
    if found is None:
        where, type_name = path, type(value).__name__
        detail = f"{where}: {exc}" if exc else f"{where}: not JSON"
    else:
        where, type_name = found
        detail = f"{where}: {type_name} is not JSON-serialisable"
    return SnapshotSerializationError(
        f"snapshot is not JSON: {detail}; {_ADVICE}", path=where, type_name=type_name
    )


def unstorable_error(where: str, what: str) -> SnapshotSerializationError:
    """A value JSON can encode but a store would not keep as it is."""
    if what.startswith("key of type"):
        why = "a resumed run would see it as a string; use string keys"
    elif what.endswith("NUL character"):
        why = "PostgreSQL cannot store U+0000, so no store accepts it; remove or replace it"
    elif what.startswith("float"):
        why = "PostgreSQL would give it back as an int; store it as an int or a string"
    else:
        why = "it has no UTF-8 form, so no store can write it; replace it"
    return SnapshotSerializationError(
        f"snapshot cannot be stored: {where}: {what}; {why}", path=where, type_name=what
    )


def has_non_string_key(value: Any) -> bool:
    """Whether a dict below ``value`` has a key that is not a ``str``.

    Visits only containers: the keys and the values of each are checked by C-speed passes
    over their types, so a list of numbers costs one pass and no Python loop.
    """
    if not isinstance(value, _CONTAINERS):
        return False
    stack: list[Any] = [value]
    pop, push = stack.pop, stack.extend
    only_str, only_scalars = _STR_TYPE.issuperset, _SCALAR_TYPES.issuperset
    while stack:
        item: Any = pop()
        if isinstance(item, dict):
            if not only_str(map(type, item)) and not all(isinstance(k, str) for k in item):
                return True
            item = item.values()
        if not only_scalars(map(type, item)):
            push([v for v in item if isinstance(v, _CONTAINERS)])
    return False


def find_unstorable(value: Any, path: str = "$") -> tuple[str, str] | None:
    """``(path, what)`` of the first key that is not a string, string with a NUL or a lone
    surrogate, or float of ``BIG_FLOAT`` or more, below an encodable ``value``; ``None`` if
    there is none."""
    if isinstance(value, str):
        return _bad_text(value, path)
    if isinstance(value, float):
        return (path, f"float {value!r}") if abs(value) >= BIG_FLOAT else None
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return (f"{path}[{key!r}]", f"key of type {type(key).__name__}")
            child = _child(path, key)
            hit = _bad_text(key, child, "key") or find_unstorable(item, child)
            if hit:
                return hit
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            hit = find_unstorable(item, f"{path}[{index}]")
            if hit:
                return hit
    return None


def _bad_text(text: str, path: str, what: str = "str") -> tuple[str, str] | None:
    if "\x00" in text:
        return (path, f"{what} with a NUL character")
    found = _SURROGATE.search(text)
    if found is not None:
        return (path, f"{what} with a lone surrogate U+{ord(found.group()):04X}")
    return None


def _child(path: str, key: str) -> str:
    return f"{path}.{key}" if key.isidentifier() else f"{path}[{key!r}]"


def find_non_json(
    value: Any, path: str = "$", _seen: set[int] | None = None
) -> tuple[str, str] | None:
    """Return ``(path, type name)`` of the first value JSON cannot hold, or ``None``."""
    if isinstance(value, float):
        return None if math.isfinite(value) else (path, f"float {value!r}")
    if isinstance(value, _JSON_SCALARS):
        return None
    seen = _seen if _seen is not None else set()
    if id(value) in seen:
        return (path, "circular reference")
    if isinstance(value, dict):
        seen.add(id(value))
        for key, item in value.items():
            if not isinstance(key, str):
                return (f"{path}[{key!r}]", f"key of type {type(key).__name__}")
            hit = find_non_json(item, _child(path, key), seen)
            if hit:
                return hit
        seen.discard(id(value))
        return None
    if isinstance(value, (list, tuple)):
        seen.add(id(value))
        for index, item in enumerate(value):
            hit = find_non_json(item, f"{path}[{index}]", seen)
            if hit:
                return hit
        seen.discard(id(value))
        return None
    return (path, type(value).__name__)


def clone(value: Any) -> Any:
    """Deep-copy a state tree; JSON-shaped data takes a fast path, anything else ``deepcopy``."""
    if isinstance(value, dict):
        return {k: v if isinstance(v, _JSON_SCALARS) else clone(v) for k, v in value.items()}
    if isinstance(value, list):
        return [v if isinstance(v, _JSON_SCALARS) else clone(v) for v in value]
    if isinstance(value, _JSON_SCALARS):
        return value
    return copy.deepcopy(value)
