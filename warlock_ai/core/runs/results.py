"""What every run hands back: a report and a result envelope (each kind adds its fields)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

from ..errors import AIError
from .usage import ZERO, Usage

REPORT_SCHEMA_VERSION = 1


class Settled:
    """``ok`` and ``status`` of anything that carries a ``report`` and an ``error``."""

    report: Any
    error: AIError | None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def status(self) -> str:
        status: str = self.report.status
        return status


@dataclass
class RunReport:
    """The report of one execution (a resumed one covers the whole run)."""

    run_id: str
    name: str
    status: str
    started_at: datetime
    ended_at: datetime
    duration_ms: float
    signature: str
    version: str | None = None
    session_id: str | None = None
    error: AIError | None = None
    usage: Usage = ZERO
    state: dict[str, Any] = field(default_factory=dict)
    cancelled_at: datetime | None = None
    type: str = ""
    #: Whether the store holds this result's final snapshot: False when the last write
    #: failed even after its retries (or this worker lost the run's lease), so the stored
    #: run is behind what this report says. A run that has no store keeps True.
    persisted: bool = True
    #: Snapshot writes of this execution that failed for good, and the last one's error.
    failed_writes: int = 0
    #: The last of those failures.
    persist_error: AIError | None = None


ReportT = TypeVar("ReportT", bound=RunReport)


@dataclass
class RunResult(Settled, Generic[ReportT]):
    """``execute`` never raises for a failing run: the error comes back in ``error``."""

    report: ReportT
    data: Any = None
    error: AIError | None = None
    usage: Usage = ZERO
    type: str = ""

    @property
    def run_id(self) -> str:
        return self.report.run_id
