"""The orchestrator's descriptor: a turn in progress (``iterate=True``) is a stored run of
kind ``orchestrator``, read, listed, drained and shown like a supervisor run."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import SupervisorCancelledError
from ..runs.kinds import RunKind, register_kind
from ..runs.routing import END
from ..supervisor.drift import diff_supervisors
from ..supervisor.kind import SUPERVISOR
from .results import AWAITING_INPUT
from .snapshot import TurnSnapshot


def _progress(snapshot: TurnSnapshot) -> str:
    settled = len(snapshot.snapshots)
    where = f"session {snapshot.session_id}, turn {snapshot.turn_index}; "
    return f"{where}iterations settled: {settled}; next: iteration {settled}"


def _resume_turn(definition: Any, run_id: str, **options: Any) -> Any:
    """The turn stored as ``run_id`` finished as its session's next turn (None: it had been
    checkpointed already, or was not interrupted)."""
    return definition.resume_run(run_id, **options)


def _about(snapshot: TurnSnapshot) -> dict[str, Any]:
    return {"session_id": snapshot.session_id, "turn_index": snapshot.turn_index}


def _turn(event: Mapping[str, Any]) -> str:
    route = event.get("raw")
    if route == END:
        return f"  turn {event['turn_index']:<3} ended by the route"
    return f"  turn {event['turn_index']:<3} routed to {route}"


ORCHESTRATOR = register_kind(
    RunKind(
        name="orchestrator",
        run_id_prefix="turn",
        snapshot_type=TurnSnapshot,
        units="iterations",
        parts="intents",
        fingerprint_parts=SUPERVISOR.fingerprint_parts,
        diff=diff_supervisors,
        position=SUPERVISOR.position,
        progress=_progress,
        progress_lines={
            **SUPERVISOR.progress_lines,
            "orchestrator.turn.routed": _turn,
        },
        report_summary=SUPERVISOR.report_summary,
        migratable=False,
        cancelled_error=SupervisorCancelledError,
        resume_stored=_resume_turn,
        about=_about,
        settled_status=AWAITING_INPUT,
        start_advice="a turn of a session is started with execute_turn NAME --session ID "
        "--input JSON (Orchestrator.execute(input, session_id=...) from Python)",
    )
)
