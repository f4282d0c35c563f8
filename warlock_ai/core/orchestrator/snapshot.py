"""The snapshot of a turn in progress (``iterate=True``): a supervisor snapshot of kind
``orchestrator`` stored under the turn's run id ``<session_id>.<version or unversioned>.<turn>``.

It lives only while the turn runs (and after it failed or was cancelled, until the session's
next turn replaces it): a settled turn is a checkpoint row, and its snapshot is deleted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from ..supervisor.snapshot import SupervisorSnapshot

UNVERSIONED = "unversioned"


def turn_run_id(session_id: str, version: str | None, turn_index: int) -> str:
    """The run id of turn ``turn_index`` of a session (reference section 0.3)."""
    return f"{session_id}.{version or UNVERSIONED}.{turn_index}"


def parse_turn_run_id(run_id: str, version: str | None) -> tuple[str, int] | None:
    """``(session_id, turn_index)`` of a turn's run id written under ``version``, or None."""
    head, dot, turn = run_id.rpartition(".")
    suffix = f".{version or UNVERSIONED}"
    if not dot or not turn.isdigit() or not head.endswith(suffix) or len(head) == len(suffix):
        return None
    return head[: -len(suffix)], int(turn)


@dataclass(frozen=True)
class TurnSnapshot(SupervisorSnapshot):
    """One turn's inner supervisor run, with the session and turn its run id names."""

    kind: ClassVar[str] = "orchestrator"
    name_field: ClassVar[str] = "orchestrator_name"

    @property
    def session_id(self) -> str | None:
        parsed = parse_turn_run_id(self.run_id, self.version)
        return parsed[0] if parsed else None

    @property
    def turn_index(self) -> int | None:
        parsed = parse_turn_run_id(self.run_id, self.version)
        return parsed[1] if parsed else None


def discard_turn_snapshots(store: Any, name: str, session_id: str) -> int:
    """Delete every stored turn of ``session_id`` of orchestrator ``name`` from the snapshot
    store ``store``; returns how many. Other runs whose ids share the prefix are left alone."""
    removed = 0
    for run_id in store.list(f"{session_id}."):
        snapshot = store.load(run_id)
        if (
            isinstance(snapshot, TurnSnapshot)
            and snapshot.name == name
            and snapshot.session_id == session_id
        ):
            removed += int(bool(store.delete(run_id)))
    return removed
