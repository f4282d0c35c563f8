"""Orchestrator sessions, written once for the commands, the jobs, the admin and the API.

A session is what its orchestrator's checkpoint store holds (``list``, ``load``), so the
listing works on every checkpoint store (ORM, Redis, memory), plus, with ``iterate=True``,
the snapshot of a turn in progress: a ``running`` run of kind ``orchestrator`` named for the
session's next turn, found through the snapshot store contract (``runs``, ``load``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.utils import timezone

from .core.errors import (
    StoreError,
    UnknownFlowError,
    UnknownSessionError,
)
from .core.orchestrator import TurnSnapshot, turn_run_id
from .core.orchestrator.checkpoints import check_session_id
from .core.orchestrator.snapshot import discard_turn_snapshots, parse_turn_run_id
from .core.runs import config
from .core.runs.snapshots import RUNNING
from .registry import registry
from .stores.base import CheckpointStore, RunInfo, RunQuery
from .stores.orm_checkpoints import DatabaseCheckpointStore

__all__ = [
    "InterruptedTurn",
    "SessionInfo",
    "checkpoint_store",
    "discard_session",
    "find_session",
    "interrupted_turn",
    "list_sessions",
    "orchestrator_named",
    "orchestrators",
]

KIND = "orchestrator"

logger = logging.getLogger("warlock_ai.operations")


def orchestrators() -> list[Any]:
    """Every registered orchestrator, by name."""
    return [definition for definition in registry.all() if definition.kind == KIND]


def orchestrator_named(name: str) -> Any:
    """The registered orchestrator ``name``; ``UnknownFlowError`` naming the registered ones."""
    definition = registry.lookup(KIND, name)
    if definition is None:
        known = ", ".join(d.name for d in orchestrators()) or (
            "none (define one with ai.orchestrator(...) in an app's flows.py)"
        )
        raise UnknownFlowError(f'unknown orchestrator "{name}"; registered orchestrators: {known}')
    return definition


@dataclass(frozen=True)
class InterruptedTurn:
    """A turn stored mid-way (``iterate=True``): its run, and whether a live worker is on it
    right now (``in_progress``) or nobody is (interrupted: ``resume_turn`` or ``drain_runs``
    finishes it)."""

    run_id: str
    turn_index: int
    iteration: int | None
    saved_at: datetime
    lease_owner: str | None
    in_progress: bool

    @classmethod
    def of(cls, info: RunInfo, turn_index: int) -> InterruptedTurn:
        live = info.lease_state(timezone.now()).blocks
        return cls(info.run_id, turn_index, info.iteration, info.saved_at, info.lease_owner, live)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "turn_index": self.turn_index,
            "iterations_settled": (self.iteration + 1) if self.iteration is not None else 0,
            "saved_at": self.saved_at.isoformat(),
            "lease_owner": self.lease_owner,
            "in_progress": self.in_progress,
        }


@dataclass(frozen=True)
class SessionInfo:
    """One session of one orchestrator, as ``list_sessions`` shows it. ``latest_turn`` is
    None for a session whose first turn is still a snapshot (it has no row yet)."""

    orchestrator: str
    session_id: str
    latest_turn: int | None
    last_route: Any
    saved_at: datetime | None
    next_turn: InterruptedTurn | None

    @property
    def turn_count(self) -> int:
        """Turns settled (checkpointed), pruned rows included."""
        return self.latest_turn + 1 if self.latest_turn is not None else 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "orchestrator": self.orchestrator,
            "session_id": self.session_id,
            "latest_turn": self.latest_turn,
            "turn_count": self.turn_count,
            "last_route": self.last_route,
            "saved_at": self.saved_at.isoformat() if self.saved_at else None,
            "interrupted_turn": self.next_turn.to_dict() if self.next_turn else None,
        }


def list_sessions(orchestrator: Any = None, prefix: str = "") -> list[SessionInfo]:
    """The sessions of ``orchestrator`` (a registered one; every registered one when None)
    whose id starts with ``prefix``, by orchestrator then session id."""
    chosen = [orchestrator] if orchestrator is not None else orchestrators()
    return [info for orch in chosen for info in _sessions_of(orch, prefix)]


def _sessions_of(orch: Any, prefix: str) -> list[SessionInfo]:
    turns = _stored_turns(orch, prefix)
    sessions = []
    for sid in sorted(set(orch.sessions(prefix)) | set(turns)):
        record = orch.latest(sid)
        latest = record.turn_index if record is not None else None
        following = (latest + 1) if latest is not None else 0
        stored = turns.get(sid, {}).get(following)
        if record is None and stored is None:
            continue  # a leftover snapshot of a settled or removed session
        sessions.append(
            SessionInfo(
                orchestrator=orch.name,
                session_id=sid,
                latest_turn=latest,
                last_route=record.last_route if record is not None else None,
                saved_at=record.saved_at if record is not None else None,
                next_turn=InterruptedTurn.of(stored, following) if stored else None,
            )
        )
    return sessions


def _stored_turns(orch: Any, prefix: str) -> dict[str, dict[int, RunInfo]]:
    """The running turn snapshots of ``orch`` (one query), by session and turn."""
    store = orch.store
    if store is None:
        return {}
    query = RunQuery(statuses=frozenset({RUNNING}), kind=KIND, name=orch.name, prefix=prefix)
    found: dict[str, dict[int, RunInfo]] = {}
    for info in store.runs(query):
        parsed = parse_turn_run_id(info.run_id, info.version)
        if parsed is not None and info.version == orch.version:
            found.setdefault(parsed[0], {})[parsed[1]] = info
    return found


def interrupted_turn(orch: Any, session_id: str) -> TurnSnapshot | None:
    """The stored ``running`` snapshot of the session's next turn, or None."""
    store = orch.store
    if store is None:
        return None
    record = orch.latest(session_id)
    following = record.turn_index + 1 if record is not None else 0
    snapshot = store.load(turn_run_id(session_id, orch.version, following))
    if isinstance(snapshot, TurnSnapshot) and snapshot.status == RUNNING:
        return snapshot if snapshot.name == orch.name else None
    return None


def find_session(orch: Any, session_id: str) -> tuple[Any, TurnSnapshot | None]:
    """The session's latest checkpoint row and interrupted turn (either may be None);
    ``UnknownSessionError`` when it has neither."""
    latest = orch.latest(session_id)
    pending = interrupted_turn(orch, session_id)
    if latest is None and pending is None:
        raise UnknownSessionError(
            f'orchestrator "{orch.name}" has no session "{session_id}"',
            orchestrator_name=orch.name,
            session_id=session_id,
        )
    return latest, pending


# --- operations on a session (the admin, the API) ---------------------------------------


def checkpoint_store(name: str, store: CheckpointStore | None = None) -> CheckpointStore:
    """``store``, else orchestrator ``name``'s checkpoint store when it is registered, else
    the configured one; ``StoreError`` when there is none."""
    orchestrator = registry.lookup("orchestrator", name)
    resolved: CheckpointStore | None = store or (
        orchestrator.checkpoints
        if orchestrator is not None
        else config.resolve("default_checkpoint_store")
    )
    if resolved is None:
        raise StoreError(
            "no checkpoint store is configured: set WARLOCK_AI['CHECKPOINT_STORE'] or "
            "ai.config(default_checkpoint_store=...)"
        )
    return resolved


def _same_store(one: Any, other: Any) -> bool:
    """Two handles on the same rows: the same object, or ORM stores on the same database."""
    if one is other:
        return True
    orm = DatabaseCheckpointStore
    return isinstance(one, orm) and isinstance(other, orm) and one.using == other.using


def discard_session(
    orchestrator: Any, session_id: str, store: CheckpointStore | None = None
) -> int:
    """Delete a session: every checkpoint row and every turn snapshot (an interrupted or
    failed turn); returns how many of both were removed (0 for a session already gone).

    ``orchestrator`` is a registered orchestrator or a name. When it is registered (and
    writes to ``store``) this is its ``discard``, under the session lock (so never under a
    turn in progress); otherwise the rows and the configured snapshot store's turn snapshots
    are deleted directly (an orchestrator no longer defined leaves sessions too).
    """
    name = orchestrator if isinstance(orchestrator, str) else orchestrator.name
    sid = check_session_id(session_id)
    checkpoints = checkpoint_store(name, store)
    registered = registry.lookup(KIND, name)
    if registered is not None and _same_store(checkpoints, registered.checkpoints):
        return int(registered.discard(sid))
    removed = checkpoints.delete(name, sid)
    snapshots = config.resolve("default_snapshot_store")
    if snapshots is not None:
        removed += discard_turn_snapshots(snapshots, name, sid)
    return int(removed)
