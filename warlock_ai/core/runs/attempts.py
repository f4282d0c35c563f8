"""The attempts of a run: each execution of it (the first, every resume) with who ran it, when,
where it started from and why it ended. Kept with the snapshot, so the admin timeline and
``list_runs --json`` show that a run crashed and was resumed, not a clean run with a gap.

An attempt's ``end`` is one of the run's terminal statuses (``completed``, ``failed``,
``cancelled``, ``max-iterations``), ``interrupted`` (a signal stopped it; the run stays
running), or, written by the next attempt for one that never wrote its end: ``crashed`` (its
process is gone) or ``lease-taken-over`` (its lease expired while it was silent).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from .serialization import dumps
from .snapshots import iso, parse_iso, parse_time

INTERRUPTED = "interrupted"
CRASHED = "crashed"
TAKEN_OVER = "lease-taken-over"


@dataclass(frozen=True, slots=True)
class RunAttempt:
    """One execution of a run."""

    number: int
    #: The worker: ``host:pid:token`` (its lease owner id), or ``host:pid``.
    worker: str
    started_at: datetime
    #: Where it started: None for a fresh run, else the position it resumed at.
    resumed_at: str | None = None
    ended_at: datetime | None = None
    #: Why it ended (see the module's doc); None while it runs.
    end: str | None = None
    #: A word more: the signal, the error code, what the next attempt found.
    detail: str | None = None

    def ended(self, end: str, at: datetime, detail: str | None = None) -> RunAttempt:
        return replace(self, end=end, ended_at=at, detail=detail)

    def to_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "worker": self.worker,
            "started_at": iso(self.started_at),
            "resumed_at": self.resumed_at,
            "ended_at": iso(self.ended_at),
            "end": self.end,
            "detail": self.detail,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunAttempt:
        return cls(
            number=int(data["number"]),
            worker=str(data.get("worker") or ""),
            started_at=parse_time(data["started_at"]),
            resumed_at=data.get("resumed_at"),
            ended_at=parse_iso(data.get("ended_at")),
            end=data.get("end"),
            detail=data.get("detail"),
        )


def attempts_from(value: Any) -> tuple[RunAttempt, ...]:
    """The attempts a stored snapshot holds (none for a snapshot written before attempts)."""
    if not value:
        return ()
    return tuple(RunAttempt.from_dict(item) for item in value)


_last: tuple[tuple[RunAttempt, ...], str] = ((), "[]")


def attempts_json(attempts: tuple[RunAttempt, ...]) -> str:
    """The attempts as JSON; a run passes the same tuple to every save until an attempt
    starts or ends, so the last encoding is reused (an identity check per save)."""
    global _last
    cached, text = _last
    if attempts is cached:
        return text
    text = dumps([attempt.to_dict() for attempt in attempts], path="attempts")
    _last = (attempts, text)
    return text
