"""What a supervisor run gives back (``SupervisorResult`` / ``SupervisorReport``) and what its
callables receive (``SupervisorContext``)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .cancel import CancelToken
from .errors import AIError
from .snapshots import COMPLETED
from .supervisor_snapshots import SupervisorSnapshot
from .usage import ZERO, Usage

if TYPE_CHECKING:
    from .supervisor import Supervisor


@dataclass
class SupervisorContext:
    """What ``route``, ``evaluate``, ``next`` and callback intents receive.

    ``state`` is the live state (callbacks return a dict to merge instead of mutating it);
    ``results`` holds this iteration's branches (for ``evaluate`` and ``next``); callbacks
    call agents and workflows through ``run`` / ``arun`` so their usage is counted.
    """

    input: Any
    state: dict[str, Any]
    iteration: int
    snapshots: list[dict[str, Any]]
    context: Mapping[str, Any]
    run_id: str
    supervisor_name: str
    cancel: CancelToken
    session_id: str | None = None
    intent: str | None = None
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    usage: Usage = ZERO

    @property
    def last(self) -> dict[str, Any] | None:
        return self.snapshots[-1] if self.snapshots else None

    def _options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"cancel": self.cancel}
        if self.session_id is not None:
            options["session_id"] = self.session_id
        return options

    def run(self, unit: Any, input: Any = None, **options: Any) -> Any:
        """Call an agent (``input`` is the prompt) or a workflow; its usage is counted."""
        result = unit.execute(input, **{**self._options(), **options})
        self.usage = self.usage + Usage.coerce(getattr(result, "usage", None))
        return result

    async def arun(self, unit: Any, input: Any = None, **options: Any) -> Any:
        call = getattr(unit, "aexecute", None)
        if call is None:
            return await asyncio.to_thread(self.run, unit, input, **options)
        result = await call(input, **{**self._options(), **options})
        self.usage = self.usage + Usage.coerce(getattr(result, "usage", None))
        return result


@dataclass
class SupervisorReport:
    run_id: str
    name: str
    status: str
    started_at: datetime
    ended_at: datetime
    duration_ms: float
    signature: str
    terminated_by: str | None = None
    version: str | None = None
    session_id: str | None = None
    error: AIError | None = None
    usage: Usage = ZERO
    snapshots: list[dict[str, Any]] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)
    cancelled_at: datetime | None = None
    type: str = "supervisor"

    @property
    def iterations(self) -> int:
        return len(self.snapshots)

    @property
    def supervisor_name(self) -> str:
        return self.name

    @staticmethod
    def stored_result(
        sup: Supervisor, snap: SupervisorSnapshot, session_id: Any
    ) -> SupervisorResult:
        """A completed run resumes to its stored result and runs nothing."""
        duration = (snap.saved_at - snap.started_at).total_seconds() * 1000.0
        report = SupervisorReport(
            run_id=snap.run_id,
            name=sup.name,
            status=COMPLETED,
            started_at=snap.started_at,
            ended_at=snap.saved_at,
            duration_ms=round(duration, 3),
            signature=snap.signature,
            version=sup.version,
            session_id=session_id,
            usage=snap.usage,
            snapshots=list(snap.snapshots),
            state=dict(snap.state),
        )
        return SupervisorResult(report=report, data=report.state, usage=snap.usage)


@dataclass
class SupervisorResult:
    """``execute`` never raises for a failing run: the error comes back in ``error``."""

    report: SupervisorReport
    data: Any = None
    error: AIError | None = None
    usage: Usage = ZERO
    type: str = "supervisor"

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def status(self) -> str:
        return self.report.status

    @property
    def run_id(self) -> str:
        return self.report.run_id
