"""What the runs admin and the API show, computed from a ``Snapshot`` row without extra queries:
the definition verdict (current, drifted, unregistered), the lease, the step timeline and
formatted JSON."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone
from django.utils.timesince import timesince, timeuntil

from .core.errors import UnreadableSnapshotError
from .core.runs.drift import DefinitionDiff
from .core.runs.kinds import RunKind, kind_named, kind_names
from .core.runs.leases import LeaseState
from .core.runs.snapshots import JSON_PARTS, parse_iso
from .models import CURRENT, DRIFTED, UNREGISTERED
from .registry import registry
from .stores.base import column_problem

#: Larger JSON documents are cut in the page (the full value stays in the database).
JSON_DISPLAY_LIMIT = 200_000


def definition_of(row: Any) -> Any | None:
    return registry.lookup(row.kind, row.name)


def verdict(row: Any) -> str:
    """Whether the run was written by the definition registered now."""
    definition = definition_of(row)
    if definition is None:
        return UNREGISTERED
    return CURRENT if definition.signature == row.signature else DRIFTED


def kind_of(row: Any) -> RunKind:
    return kind_named(row.kind)


def drift_diff(row: Any) -> DefinitionDiff | None:
    """What changed between the run's stored definition and the registered one."""
    definition = definition_of(row)
    if definition is None or definition.signature == row.signature:
        return None
    return kind_of(row).diff(row.fingerprint, definition.fingerprint)


def step_lists(row: Any) -> tuple[list[str], list[str]]:
    """What the stored definition and the current one list (steps, or a supervisor's
    intents), in order."""
    definition = definition_of(row)
    parts = kind_of(row).fingerprint_parts
    return parts(row.fingerprint), parts(definition.fingerprint) if definition else []


def position(row: Any) -> str:
    """Where the run stands: its next step, its next iteration, "—" once completed."""
    if row.kind not in kind_names():
        return "?"
    return kind_of(row).position(row.status, row.next_step, row.iteration)


#: The columns a snapshot that cannot be read is shown by, as stored: its summary columns,
#: then every JSON part.
RAW_FIELDS = (
    "kind",
    "name",
    "signature",
    "version",
    "status",
    "next_step",
    "iteration",
    *JSON_PARTS,
)


def unreadable(row: Any) -> str | None:
    """Why the row's snapshot cannot be read, or None; worked out once per row. A row of
    the changelist (its JSON columns not fetched) is judged by its kind and status only."""
    if row.get_deferred_fields():
        return column_problem(row.kind, row.status)
    if "_warlock_unreadable" not in row.__dict__:
        try:
            row.to_snapshot()
            row.__dict__["_warlock_unreadable"] = None
        except UnreadableSnapshotError as exc:
            row.__dict__["_warlock_unreadable"] = exc.problem or exc.message
    problem: str | None = row.__dict__["_warlock_unreadable"]
    return problem


def raw_fields(row: Any) -> list[tuple[str, str]]:
    """The row's stored columns as text, for a snapshot that cannot be read."""
    return [(name, pretty_json(getattr(row, name))) for name in RAW_FIELDS]


@dataclass(frozen=True)
class Lease:
    owner: str | None
    expires_at: datetime | None
    state: str  # a LeaseState value: "live", "expired", "dead", "none"

    @property
    def blocks(self) -> bool:
        """A live worker holds the run: resume and discard must wait."""
        return LeaseState(self.state).blocks

    def when(self) -> str:
        """The expiry relative to now: "4 minutes left", "1 hour ago"."""
        if self.expires_at is None:
            return ""
        now = timezone.now()
        if self.expires_at >= now:
            return f"{timeuntil(self.expires_at, now)} left"
        return f"{timesince(self.expires_at, now)} ago"

    def describe(self) -> str:
        if self.state == "none":
            return "no worker holds this run"
        until = self.expires_at.strftime("%Y-%m-%d %H:%M:%S %Z") if self.expires_at else "?"
        return {
            "live": f"held by worker {self.owner} until {until}",
            "expired": f"expired at {until} (worker {self.owner} is gone or stuck)",
            "dead": f"worker {self.owner} is dead (its process is gone on this host)",
        }[self.state]


def lease_of(row: Any, now: datetime | None = None) -> Lease:
    state = row.lease_state(now or timezone.now())
    if state is LeaseState.NONE:
        return Lease(None, None, state.value)
    return Lease(row.lease_owner, row.lease_expires_at, state.value)


@dataclass
class TimelineStep:
    """One step record as the detail page draws it, with its bar on the run's time axis."""

    name: str
    status: str
    started_at: datetime | None
    duration_ms: float
    attempts: int
    error: dict[str, Any] | None
    attempt_history: list[dict[str, Any]]
    output: Any
    children: list[TimelineStep] = field(default_factory=list)
    offset: float = 0.0  # percent of the run's span
    width: float = 0.0

    @property
    def error_message(self) -> str:
        return (self.error or {}).get("message") or ""

    @property
    def output_json(self) -> str:
        return pretty_json(self.output)


def timeline(row: Any) -> list[TimelineStep]:
    """Top-level step records in the order they started, parallel children nested."""
    records: dict[str, Any] = row.steps or {}
    children = {c for r in records.values() for c in (r.get("children") or ())}
    steps = [_step(name, records) for name in records if name not in children]
    steps.sort(key=lambda s: (s.started_at is None, s.started_at or timezone.now()))
    _place(steps, row.started_at, _end_of(row, steps))
    return steps


def _step(name: str, records: dict[str, Any]) -> TimelineStep:
    data = records[name]
    status = "skipped" if data.get("skipped") else data.get("status", "?")
    return TimelineStep(
        name=name,
        status=status,
        started_at=parse_iso(data.get("started_at")),
        duration_ms=float(data.get("duration_ms") or 0),
        attempts=int(data.get("attempts") or 0),
        error=data.get("error"),
        attempt_history=list(data.get("attempt_history") or ()),
        output=data.get("output"),
        children=[_step(c, records) for c in data.get("children") or () if c in records],
    )


def _end_of(row: Any, steps: list[TimelineStep]) -> datetime:
    ends = [s.started_at + timedelta(milliseconds=s.duration_ms) for s in steps if s.started_at]
    return max([row.saved_at, *ends])


def _place(steps: list[TimelineStep], start: datetime, end: datetime) -> None:
    span = max((end - start).total_seconds(), 1e-3)
    for step in steps:
        if step.started_at is not None:
            step.offset = min(max((step.started_at - start).total_seconds() / span, 0), 1) * 100
            step.width = max(step.duration_ms / 1000 / span * 100, 0.5)
            step.width = min(step.width, 100 - step.offset)
        _place(step.children, start, end)


def pretty_json(value: Any) -> str:
    """Indented JSON for reading; very large documents are cut with a note."""
    text = json.dumps(value, indent=2, ensure_ascii=False, default=repr)
    if len(text) <= JSON_DISPLAY_LIMIT:
        return text
    return text[:JSON_DISPLAY_LIMIT] + f"\n… cut: {len(text):,} characters in all"


def error_fields(error: dict[str, Any] | None) -> str:
    """A stored error's diagnostic fields (everything but name, code, category, message)."""
    rest = {
        k: v for k, v in (error or {}).items() if k not in ("name", "code", "category", "message")
    }
    return pretty_json(rest) if rest else ""


@dataclass
class IterationRow:
    """One settled supervisor iteration as the detail page draws it."""

    index: int
    source: str
    next: str
    reasoning: str | None
    duration_ms: float
    branches: list[dict[str, Any]]
    verdict: Any
    state_json: str
    ended: bool

    @property
    def failed(self) -> list[str]:
        return [b["intent"] for b in self.branches if b.get("error")]


def iterations(row: Any) -> list[IterationRow]:
    """A supervisor run's iterations, oldest first, with each branch's outcome."""
    out: list[IterationRow] = []
    for record in row.steps if isinstance(row.steps, list) else []:
        decision = record.get("decision") or {}
        raw = decision.get("next")
        branches = [
            {
                **branch,
                "output_json": pretty_json(branch.get("output")),
                "input_text": _compact(branch.get("input")),
            }
            for branch in (record.get("result") or {}).values()
        ]
        out.append(
            IterationRow(
                index=record.get("iteration", len(out)),
                source=decision.get("source") or "?",
                next=", ".join(raw) if isinstance(raw, list) else str(raw),
                reasoning=decision.get("reasoning"),
                duration_ms=float(record.get("duration_ms") or 0),
                branches=branches,
                verdict=record.get("evaluate_verdict"),
                state_json=pretty_json(record.get("state")),
                ended=not branches,
            )
        )
    return out


def _compact(value: Any) -> str:
    if value is None or isinstance(value, str):
        return value or ""
    return json.dumps(value, ensure_ascii=False, default=repr)


@dataclass(frozen=True)
class Panel:
    """How the run page draws a kind's records: a template and the rows it iterates."""

    template: str
    rows: Callable[[Any], list[Any]]


#: One panel per kind of run (a kind without one shows no records panel).
PANELS: dict[str, Panel] = {
    "workflow": Panel("admin/warlock_ai/snapshot/includes/timeline.html", timeline),
    "supervisor": Panel("admin/warlock_ai/snapshot/includes/iterations.html", iterations),
}


# --- attempts: each execution of the run ------------------------------------------------------

#: How each end of an attempt reads on the page (and the CSS class of its badge).
ATTEMPT_ENDS = {
    "completed": ("completed", "warlock-completed"),
    "failed": ("failed", "warlock-failed"),
    "cancelled": ("cancelled", "warlock-cancelled"),
    "max-iterations": ("max iterations", "warlock-failed"),
    "interrupted": ("interrupted", "warlock-pending"),
    "crashed": ("crashed", "warlock-failed"),
    "lease-taken-over": ("lease taken over", "warlock-failed"),
}


@dataclass
class AttemptRow:
    number: int
    worker: str
    started_at: datetime
    resumed_at: str | None
    ended_at: datetime | None
    end: str
    css: str
    detail: str
    duration: str


def attempts(row: Any) -> list[AttemptRow]:
    """The run's attempts, oldest first: who ran it, when, from where, how it ended."""
    from .core.runs.attempts import attempts_from

    rows = []
    running = row.status == "running"
    found = attempts_from(row.attempts)
    for index, attempt in enumerate(found):
        last = index == len(found) - 1
        if attempt.end is None:
            label, css = ("running", "warlock-running") if last and running else ("—", "")
        else:
            label, css = ATTEMPT_ENDS.get(attempt.end, (attempt.end, ""))
        ended = attempt.ended_at
        duration = _seconds((ended - attempt.started_at).total_seconds()) if ended else ""
        rows.append(
            AttemptRow(
                number=attempt.number,
                worker=attempt.worker,
                started_at=attempt.started_at,
                resumed_at=attempt.resumed_at,
                ended_at=ended,
                end=label,
                css=css,
                detail=attempt.detail or "",
                duration=duration,
            )
        )
    return rows


def _seconds(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"
