"""What an agent execution returns: the result, its report, and one record per trip."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import AIError
from ..runs.results import Settled
from ..runs.snapshots import error_dict
from ..runs.usage import ZERO, Usage
from .messages import Message


@dataclass(frozen=True)
class TripRecord:
    """One model call and the tools it asked for; ``errors`` are the tools that failed;
    ``cached`` says the semantic cache answered instead of the model (``{"tier", "score",
    "key", "usage"}``, ``usage`` being what the original call cost)."""

    index: int
    usage: Usage
    duration_ms: float
    finish_reason: str | None
    tool_calls: tuple[str, ...] = ()
    errors: tuple[AIError, ...] = ()
    cached: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        data = {
            "index": self.index,
            "usage": self.usage.to_dict(),
            "duration_ms": self.duration_ms,
            "finish_reason": self.finish_reason,
            "tool_calls": list(self.tool_calls),
            "errors": [error_dict(e) for e in self.errors],
        }
        if self.cached is not None:
            data["cached"] = dict(self.cached)
        return data


@dataclass(frozen=True)
class AgentReport:
    name: str
    model: dict[str, str]
    trips: list[TripRecord]
    duration_ms: float
    status: str  # "completed" | "failed" | "cancelled"
    session_id: str | None = None
    version: Any = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "model": dict(self.model),
            "status": self.status,
            "duration_ms": self.duration_ms,
            "session_id": self.session_id,
            "version": self.version,
            "trips": [trip.to_dict() for trip in self.trips],
        }


@dataclass(frozen=True, kw_only=True)
class AgentResult(Settled):
    """What ``execute`` returns; ``usage`` is the sum of every trip, ``messages`` the
    transcript (system prompt, history, prompt, tool rounds, final reply)."""

    report: AgentReport
    type: str = "agent"
    text: str | None = None
    data: Any = None
    usage: Usage = ZERO
    error: AIError | None = None
    messages: list[Message] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (for snapshots and API responses)."""
        return {
            "type": self.type,
            "text": self.text,
            "data": self.data,
            "usage": self.usage.to_dict(),
            "error": error_dict(self.error),
            "report": self.report.to_dict(),
            "messages": [m.to_dict() for m in self.messages],
        }
