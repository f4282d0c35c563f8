"""What a turn gives back: ``OrchestratorResult`` with an ``OrchestratorReport``, and the
``Compaction`` a summarised history produces."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import AIError
from ..runs.results import REPORT_SCHEMA_VERSION, RunReport, Settled
from ..runs.usage import ZERO, Usage

#: The report status of a clean turn: the session waits for its next input.
AWAITING_INPUT = "awaiting-input"


@dataclass(frozen=True)
class Compaction:
    """A summary of ``history[replaces_from_index:replaces_to_index + 1]``: ``summary`` is a
    ``{"role": "system", "content": ...}`` message to put in place of that slice."""

    summary: dict[str, Any]
    replaces_from_index: int
    replaces_to_index: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "summary": dict(self.summary),
            "replaces_from_index": self.replaces_from_index,
            "replaces_to_index": self.replaces_to_index,
        }


@dataclass
class OrchestratorReport(RunReport):
    """The report of one turn: ``status`` is ``awaiting-input`` for a clean turn, otherwise
    the turn's own (``failed``, ``cancelled``, ``max-iterations``, ``running`` when it was
    interrupted). ``turns`` holds this turn's record; ``children`` the inner supervisor's
    report."""

    turn_index: int = 0
    terminated_by: str | None = None
    snapshots: list[dict[str, Any]] = field(default_factory=list)
    turns: list[dict[str, Any]] = field(default_factory=list)
    children: list[RunReport] = field(default_factory=list)
    #: Whether this turn's checkpoint row was appended (a clean turn whose append failed
    #: says False, and its error says why).
    checkpointed: bool = False
    type: str = "orchestrator"
    report_schema_version: int = REPORT_SCHEMA_VERSION

    @property
    def iterations(self) -> int:
        return len(self.snapshots)


@dataclass
class OrchestratorResult(Settled):
    """One turn: ``execute`` never raises for a failing turn (see ``error``); it raises
    before anything runs for drift, a busy session, an interrupted turn or a bad option."""

    report: OrchestratorReport
    session_id: str
    turn_index: int
    data: Any = None
    error: AIError | None = None
    usage: Usage = ZERO
    compaction: Compaction | None = None
    type: str = "orchestrator"

    @property
    def run_id(self) -> str:
        return self.report.run_id
