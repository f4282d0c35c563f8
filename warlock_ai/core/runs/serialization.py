"""Strict JSON for snapshots: fast C encoder, and a precise error when a value is not JSON.

No pickle anywhere: a snapshot holds only what ``json`` can represent. ``NaN`` and the
infinities are refused (PostgreSQL's ``jsonb`` refuses them too).
"""

from __future__ import annotations

import copy
import json
import math
from typing import Any

from ..errors import SnapshotSerializationError

_encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
_encode = _encoder.encode
_JSON_SCALARS = (str, int, float, bool, type(None))


def dumps(value: Any, *, path: str = "$") -> str:
    """Encode ``value`` as compact JSON or raise ``SnapshotSerializationError`` naming the path."""
    try:
        return _encode(value)
    except (TypeError, ValueError, RecursionError) as exc:
        raise not_json_error(value, path, exc) from None


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
        f"snapshot is not JSON: {detail}; store only dicts, lists, str, int, float, bool and None",
        path=where,
        type_name=type_name,
    )


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
            child = f"{path}.{key}" if key.isidentifier() else f"{path}[{key!r}]"
            hit = find_non_json(item, child, seen)
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
