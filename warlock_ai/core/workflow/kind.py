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


def _completed(event: Mapping[str, Any]) -> str:
    return f"  {event['step']:<24} completed  {event['duration_ms']:.0f} ms"


def _skipped(event: Mapping[str, Any]) -> str:
    return f"  {event['step']:<24} skipped"


def _failed(event: Mapping[str, Any]) -> str:
    return f"  {event['step']:<24} failed     {event['error'].message}"


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
            "workflow.step.completed": _completed,
            "workflow.step.skipped": _skipped,
            "workflow.step.failed": _failed,
        },
        migratable=True,
        cancelled_error=WorkflowCancelledError,
    )
)
