"""Checkpoint records: one row per settled orchestrator turn, and their JSON form.

Rows are append-only: a session's live state is its highest ``turn_index``. Field names are
the reference's ``CheckpointRecord`` columns, one to one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..errors import CheckpointConflictError, OrchestratorFailedError
from ..runs.serialization import dumps, loads
from ..runs.snapshots import iso, now, parse_iso

#: The ``Checkpoint.session_id`` column's length.
MAX_SESSION_ID_LENGTH = 255

__all__ = [
    "MAX_SESSION_ID_LENGTH",
    "CheckpointRecord",
    "check_session_id",
    "checkpoint_from_json",
    "conflict_error",
    "normalize_route",
    "valid_threshold",
]


@dataclass(frozen=True)
class CheckpointRecord:
    """The state of one orchestrator session after turn ``turn_index``."""

    orchestrator_name: str
    session_id: str
    turn_index: int
    state: dict[str, Any]
    last_route: str | list[str] | None
    signature: str
    version: str | None
    summarized_through: int | None = None
    lock_acquired_at: datetime | None = None
    lock_expires_at: datetime | None = None
    saved_at: datetime = field(default_factory=now)
    #: What the caller named this turn (``execute(turn_key=...)``: an rq job's id, a client's
    #: idempotency key): a turn delivered again can tell whether it already landed.
    turn_key: str | None = None

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.orchestrator_name, self.session_id, self.turn_index)

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape (datetimes as ISO 8601 strings); values are not copied."""
        return {
            "orchestrator_name": self.orchestrator_name,
            "session_id": self.session_id,
            "turn_index": self.turn_index,
            "state": self.state,
            "last_route": self.last_route,
            "signature": self.signature,
            "version": self.version,
            "summarized_through": self.summarized_through,
            "lock_acquired_at": iso(self.lock_acquired_at),
            "lock_expires_at": iso(self.lock_expires_at),
            "saved_at": iso(self.saved_at),
            "turn_key": self.turn_key,
        }

    def json_parts(self) -> dict[str, str]:
        """``state`` and ``last_route`` encoded; ``SnapshotSerializationError`` names a bad path."""
        return {
            "state": dumps(self.state, path="state"),
            "last_route": dumps(self.last_route, path="last_route"),
        }

    def to_json(self) -> str:
        """The whole record as compact, strict JSON (what memory and Redis stores keep)."""
        parts = self.json_parts()
        head = self.to_dict()
        head["state"] = head["last_route"] = None
        text = dumps(head)
        # Splice the pre-encoded values in place of the two nulls (keys are fixed above).
        text = text.replace('"state":null', f'"state":{parts["state"]}', 1)
        return text.replace('"last_route":null', f'"last_route":{parts["last_route"]}', 1)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CheckpointRecord:
        return cls(
            orchestrator_name=data["orchestrator_name"],
            session_id=data["session_id"],
            turn_index=int(data["turn_index"]),
            state=data.get("state") or {},
            last_route=normalize_route(data.get("last_route")),
            signature=data["signature"],
            version=data.get("version"),
            summarized_through=data.get("summarized_through"),
            lock_acquired_at=parse_iso(data.get("lock_acquired_at")),
            lock_expires_at=parse_iso(data.get("lock_expires_at")),
            saved_at=parse_iso(data.get("saved_at")) or now(),
            turn_key=data.get("turn_key"),
        )


def checkpoint_from_json(text: str | bytes) -> CheckpointRecord:
    return CheckpointRecord.from_dict(loads(text))


def normalize_route(value: Any) -> str | list[str] | None:
    """A stored ``last_route``: a string, a list of strings, or ``None`` for anything else."""
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return list(value)
    return None


def valid_threshold(keep_from_turn: Any) -> bool:
    """Whether ``prune``'s argument is a turn index (a non-negative int, not a bool)."""
    return (
        isinstance(keep_from_turn, int)
        and not isinstance(keep_from_turn, bool)
        and (keep_from_turn >= 0)
    )


def conflict_error(name: str, session_id: str, turn_index: int) -> CheckpointConflictError:
    """The error every store raises when a turn is saved twice."""
    return CheckpointConflictError(
        f'turn {turn_index} of session "{session_id}" of orchestrator "{name}" is already '
        "checkpointed; checkpoints are append-only: save the next turn instead",
        orchestrator_name=name,
        session_id=session_id,
        turn_index=turn_index,
    )


def check_session_id(session_id: Any) -> str:
    """``session_id`` if it can name a session (a non-empty, printable string of at most
    ``MAX_SESSION_ID_LENGTH`` characters), else ``OrchestratorFailedError`` saying why."""
    if not isinstance(session_id, str) or not session_id.strip():
        raise OrchestratorFailedError(f"session_id must be a non-empty string, got {session_id!r}")
    if len(session_id) > MAX_SESSION_ID_LENGTH:
        raise OrchestratorFailedError(
            f"session_id is {len(session_id)} characters long; the limit is {MAX_SESSION_ID_LENGTH}"
        )
    if not session_id.isprintable():
        index = next(i for i, c in enumerate(session_id) if not c.isprintable())
        raise OrchestratorFailedError(
            f"session_id {session_id!r} contains an unprintable character "
            f"(U+{ord(session_id[index]):04X} at position {index})"
        )
    return session_id
