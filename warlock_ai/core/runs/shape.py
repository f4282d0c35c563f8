"""Reading a stored snapshot back: the shape its JSON form must have.

A row of an unexpected shape (a hand edit, a row written by another version of the library)
is refused with one ``UnreadableSnapshotError`` naming the field, wherever it is read, rather
than with a ``KeyError`` deep in a kind's ``from_dict``, or later in the engine or the admin.
Each kind's snapshot checks its records (``RunSnapshot.check_shape``); what every kind
shares is checked here.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import fields
from datetime import datetime
from typing import Any

from ..errors import UnreadableSnapshotError
from .usage import Usage

#: What a kind's ``from_dict`` may still raise on data the checks let through.
READ_ERRORS = (
    KeyError,
    TypeError,
    ValueError,
    AttributeError,
    IndexError,
    OverflowError,
    RecursionError,
)

_USAGE_CHANNELS = tuple(f.name for f in fields(Usage))
_ERROR_TEXTS = ("name", "code", "category", "message")


class ShapeProblem(Exception):
    """What is wrong with a stored snapshot: the field's path and one sentence."""

    def __init__(self, field: str | None, text: str) -> None:
        super().__init__(text)
        self.field = field
        self.text = text


def json_type(value: Any) -> str:
    """The JSON name of a value's type (what an operator reads in the row)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


def shown(value: Any) -> str:
    """A stored value in a message: its type, and a string's text (escaped, cut)."""
    if isinstance(value, str):
        text = json.dumps(value)
        return f"string {text[:60]}…" if len(text) > 60 else f"string {text}"
    return json_type(value)


def is_str(value: Any) -> bool:
    return isinstance(value, str)


def is_opt_str(value: Any) -> bool:
    return value is None or isinstance(value, str)


def is_object(value: Any) -> bool:
    return isinstance(value, dict)


def is_opt_object(value: Any) -> bool:
    return value is None or isinstance(value, dict)


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_timestamp(value: Any) -> bool:
    if isinstance(value, datetime):
        return True
    if not isinstance(value, str):
        return False
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def is_bool(value: Any) -> bool:
    return isinstance(value, bool)


def is_list(value: Any) -> bool:
    return isinstance(value, list)


def is_opt_names(value: Any) -> bool:
    return value is None or (isinstance(value, list) and all(isinstance(v, str) for v in value))


#: ``(key, test, what it must be, required)`` for each member of a stored object.
Spec = tuple[tuple[str, Callable[[Any], bool], str, bool], ...]


def check_object(value: Any, path: str, spec: Spec) -> None:
    """``value`` is an object whose members pass ``spec``; else a problem naming the path."""
    if not isinstance(value, dict):
        raise ShapeProblem(path, f"{path} must be an object, got {shown(value)}")
    for key, ok, want, required in spec:
        expect(value, key, ok, want, path=f"{path}.{key}", required=required)


def expect(
    data: Mapping[str, Any],
    key: str,
    ok: Callable[[Any], bool],
    want: str,
    *,
    path: str | None = None,
    required: bool = False,
) -> None:
    """``data[key]`` passes ``ok`` (absent is fine unless ``required``); else a problem
    named by ``path`` (default ``key``)."""
    where = path or key
    if key not in data:
        if required:
            raise ShapeProblem(where, f"{where} is missing")
        return
    value = data[key]
    if not ok(value):
        raise ShapeProblem(where, f"{where} must be {want}, got {shown(value)}")


def check_usage(value: Any, path: str) -> None:
    if value is None:
        return
    if not isinstance(value, dict):
        raise ShapeProblem(path, f"{path} must be an object or null, got {shown(value)}")
    for channel in _USAGE_CHANNELS:
        expect(value, channel, is_number, "a number", path=f"{path}.{channel}")


def check_error(value: Any, path: str) -> None:
    """A stored error: an object with a ``message`` (what ``AIError.to_dict`` writes)."""
    if value is None:
        return
    if not isinstance(value, dict):
        raise ShapeProblem(path, f"{path} must be an object or null, got {shown(value)}")
    expect(value, "message", is_str, "a string", path=f"{path}.message", required=True)
    for key in _ERROR_TEXTS[:3]:
        expect(value, key, is_opt_str, "a string", path=f"{path}.{key}")
    cause = value.get("cause")
    if isinstance(cause, dict) and "message" in cause:
        check_error(cause, f"{path}.cause")


def check_common(data: Mapping[str, Any], name_field: str, statuses: tuple[str, ...]) -> None:
    """The columns every kind's snapshot has."""
    expect(data, "run_id", lambda v: isinstance(v, str) and v != "", "a string", required=True)
    expect(data, name_field, is_str, "a string", required=True)
    expect(data, "signature", is_str, "a string", required=True)
    expect(data, "version", is_opt_str, "a string or null")
    expect(data, "status", lambda v: v in statuses, f"one of {', '.join(statuses)}", required=True)
    expect(data, "started_at", is_timestamp, "an ISO 8601 timestamp", required=True)
    expect(data, "saved_at", lambda v: v is None or is_timestamp(v), "an ISO 8601 timestamp")
    expect(data, "state", is_opt_object, "an object")
    expect(data, "fingerprint", is_opt_object, "an object or null")
    check_usage(data.get("usage"), "usage")
    check_error(data.get("error"), "error")
    check_attempts(data.get("attempts"))


_RUN_ATTEMPT: Spec = (
    ("number", is_int, "an integer", True),
    ("started_at", is_timestamp, "an ISO 8601 timestamp", True),
    ("worker", is_opt_str, "a string", False),
    ("resumed_at", is_opt_str, "a string or null", False),
    ("ended_at", lambda v: v is None or is_timestamp(v), "an ISO 8601 timestamp or null", False),
    ("end", is_opt_str, "a string or null", False),
    ("detail", is_opt_str, "a string or null", False),
)


def check_attempts(value: Any) -> None:
    """The run's attempts (``attempts.RunAttempt``): absent in rows written before them."""
    if value is None:
        return
    if not isinstance(value, list):
        raise ShapeProblem("attempts", f"attempts must be an array, got {shown(value)}")
    for index, attempt in enumerate(value):
        check_object(attempt, f"attempts[{index}]", _RUN_ATTEMPT)


_NAME_FIELDS = ("workflow_name", "supervisor_name", "orchestrator_name", "name")


def unreadable(
    data: Any, run_id: str | None, field: str | None, text: str
) -> UnreadableSnapshotError:
    """The one error a snapshot that cannot be read gives, with what its row still says."""
    stored = data if isinstance(data, dict) else {}
    if run_id is None:
        run_id = stored.get("run_id") if isinstance(stored.get("run_id"), str) else "?"
    flow = next(
        (v for k, v in stored.items() if k in _NAME_FIELDS),
        None,
    )
    status = stored.get("status")
    return UnreadableSnapshotError(
        f'run "{run_id}": the stored snapshot cannot be read: {text}; '
        "discard the run, or repair its stored row",
        run_id=run_id,
        field=field,
        problem=text,
        flow=flow if isinstance(flow, str) else None,
        status=status if isinstance(status, str) else None,
    )
