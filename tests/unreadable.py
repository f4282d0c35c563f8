"""Stored snapshots of unexpected shapes (issue 12): what a hand edit, or a row written by
another version of the library, can leave behind, and what reading one must say is wrong."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import warlock_ai  # noqa: F401  (registers every kind, as a project importing it does)
from warlock_ai.core.runs.kinds import kind_names

STATUSES = "running, completed, failed, cancelled, max-iterations"
PROBLEM = "the stored snapshot cannot be read: "


@dataclass(frozen=True)
class Shape:
    """A stored snapshot changed by hand: ``changes`` to its JSON form (``text`` replaces the
    whole of it); ``expected`` is what the error must say is wrong."""

    expected: str
    changes: dict[str, Any] = field(default_factory=dict)
    removed: tuple[str, ...] = ()
    text: str | None = None

    @property
    def in_columns(self) -> bool:
        """Whether a database row can have this shape (its columns have types of their own)."""
        return self.text is None and not self.removed and "started_at" not in self.changes


SHAPES = {
    "steps-is-a-list": Shape("steps must be an object, got array", {"steps": [1, 2]}),
    "step-record-is-a-string": Shape(
        "steps.one must be an object, got string", {"steps": {"one": "done"}}
    ),
    "step-record-without-status": Shape(
        "steps.one.status is missing", {"steps": {"one": {"started_at": "2024-01-01T00:00:00Z"}}}
    ),
    "state-is-a-string": Shape('state must be an object, got string "oops"', {"state": "oops"}),
    "error-without-message": Shape("error.message is missing", {"error": {"name": "Boom"}}),
    "usage-of-wrong-types": Shape(
        "usage.input must be a number, got string", {"usage": {"input": "many"}}
    ),
    "fingerprint-is-a-list": Shape(
        "fingerprint must be an object or null, got array", {"fingerprint": ["a"]}
    ),
    "unknown-kind": Shape(
        f'kind must be one of {", ".join(kind_names())}, got string "pipeline"',
        {"kind": "pipeline"},
    ),
    "unknown-status": Shape(
        f'status must be one of {STATUSES}, got string "paused"', {"status": "paused"}
    ),
    "started-at-garbage": Shape(
        'started_at must be an ISO 8601 timestamp, got string "yesterday"',
        {"started_at": "yesterday"},
    ),
    "status-missing": Shape("status is missing", removed=("status",)),
    "not-json": Shape("it is not JSON: Expecting property name", text="{not json"),
    "a-json-array": Shape("it must be a JSON object, got array", text="[1, 2]"),
}
COLUMN_SHAPES = [name for name, shape in SHAPES.items() if shape.in_columns]
# A database row's columns, where the JSON form names them otherwise.
COLUMNS = {"workflow_name": "name", "next": "next_step"}
