"""The supervisor's descriptor: what the registry, commands, jobs and admin ask of a kind."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import SupervisorCancelledError
from ..runs.kinds import RunKind, register_kind
from ..runs.snapshots import COMPLETED
from .drift import diff_supervisors
from .snapshot import SupervisorSnapshot


def _intents(fingerprint: Mapping[str, Any] | None) -> list[str]:
    return [intent["k"] for intent in (fingerprint or {}).get("a") or []]


def _position(status: str, next_step: str | None, iteration: int | None) -> str:
    if status == COMPLETED:
        return "—"
    settled = (iteration if iteration is not None else -1) + 1
    return f"iteration {settled}"


def _progress(snapshot: SupervisorSnapshot) -> str:
    settled = len(snapshot.snapshots)
    return f"iterations settled: {settled}; next: iteration {settled}"


def _iteration(event: Mapping[str, Any]) -> str:
    record = event["snapshot"]
    ran = ", ".join(record["result"]) or "end"
    failed = [key for key, branch in record["result"].items() if branch.get("error")]
    line = f"  iteration {event['iteration']:<3} {record['decision']['source']:<14} {ran}"
    line += f"  {record['duration_ms']:.0f} ms"
    return line + (f"  (failed: {', '.join(failed)})" if failed else "")


def _starting(event: Mapping[str, Any]) -> str:
    return f"  iteration {event['iteration']} started"


def _summary(report: Any) -> list[dict[str, Any]]:
    """Each settled iteration of a supervisor report: what ran, how long, what failed."""
    return [
        {
            "iteration": record.get("iteration", index),
            "intents": list(record.get("result") or {}),
            "source": (record.get("decision") or {}).get("source"),
            "duration_ms": record.get("duration_ms"),
            "failed": [k for k, b in (record.get("result") or {}).items() if b.get("error")],
        }
        for index, record in enumerate(report.snapshots)
    ]


SUPERVISOR = register_kind(
    RunKind(
        name="supervisor",
        run_id_prefix="sv",
        snapshot_type=SupervisorSnapshot,
        units="iterations",
        parts="intents",
        fingerprint_parts=_intents,
        diff=diff_supervisors,
        position=_position,
        progress=_progress,
        progress_lines={
            "supervisor.iteration.starting": _starting,
            "supervisor.iteration.completed": _iteration,
        },
        report_summary=_summary,
        migratable=False,
        cancelled_error=SupervisorCancelledError,
    )
)
