"""The workflow's descriptor: what the registry, commands, jobs and admin ask of a kind."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import WorkflowCancelledError
from ..runs.kinds import RunKind, register_kind
from ..runs.snapshots import COMPLETED
from .drift import diff_definitions
from .snapshot import WorkflowSnapshot


def _steps(fingerprint: Mapping[str, Any] | None) -> list[str]:
    return [step["n"] for step in (fingerprint or {}).get("s") or []]


def _position(status: str, next_step: str | None, iteration: int | None) -> str:
    if status == COMPLETED:
        return "—"
    return next_step or "(first incomplete step)"


def _progress(snapshot: WorkflowSnapshot) -> str:
    done = ", ".join(snapshot.completed_steps) or "none"
    return f"completed: {done}; next: {snapshot.next_step or '-'}"


def _attempts(attempts: int) -> str:
    """``1 attempt``, ``3 attempts, 2 retries``."""
    retries = max(0, attempts - 1)
    text = f"{attempts} attempt{'s' if attempts != 1 else ''}"
    return text + (f", {retries} retr{'ies' if retries != 1 else 'y'}" if retries else "")


def _starting(event: Mapping[str, Any]) -> str:
    return f"  step {event['step']} started"


def _completed(event: Mapping[str, Any]) -> str:
    attempts = _attempts(event.get("attempts", 1))
    return f"  step {event['step']} completed in {event['duration_ms']:.0f} ms ({attempts})"


def _retrying(event: Mapping[str, Any]) -> str:
    return (
        f"  step {event['step']} retrying: attempt {event['attempt']} of "
        f"{event['total_attempts']} after: {event['last_error'].message}"
    )


def _skipped(event: Mapping[str, Any]) -> str:
    return f"  step {event['step']} skipped"


def _failed(event: Mapping[str, Any]) -> str:
    took = f" in {event['duration_ms']:.0f} ms" if "duration_ms" in event else ""
    attempts = _attempts(event.get("attempts", 1))
    return f"  step {event['step']} failed{took} ({attempts}): {event['error'].message}"


def _summary(report: Any) -> list[dict[str, Any]]:
    """Each settled step of a workflow report: name, status, duration, attempts, retries."""
    return [
        {
            "name": name,
            "status": record.status,
            "duration_ms": round(record.duration_ms, 3),
            "attempts": record.attempts,
            "retries": max(0, record.attempts - 1),
            "error": record.error.message if record.error is not None else None,
        }
        for name, record in report.steps.items()
    ]


WORKFLOW = register_kind(
    RunKind(
        name="workflow",
        run_id_prefix="wf",
        snapshot_type=WorkflowSnapshot,
        units="steps",
        parts="steps",
        fingerprint_parts=_steps,
        diff=diff_definitions,
        position=_position,
        progress=_progress,
        progress_lines={
            "workflow.step.starting": _starting,
            "workflow.step.retrying": _retrying,
            "workflow.step.completed": _completed,
            "workflow.step.skipped": _skipped,
            "workflow.step.failed": _failed,
        },
        report_summary=_summary,
        migratable=True,
        cancelled_error=WorkflowCancelledError,
    )
)
