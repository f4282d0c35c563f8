"""What a supervisor run gives back (``SupervisorResult`` / ``SupervisorReport``) and what its
callables receive (``SupervisorContext``)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..runs.cancel import CancelToken
from ..runs.results import RunReport, RunResult
from ..runs.usage import ZERO, Usage


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
    #: The conversation of an orchestrator turn (its agents' window), else None.
    history: list[Any] | None = None
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
class SupervisorReport(RunReport):
    """The report of a supervisor run; ``terminated_by`` says what ended it."""

    terminated_by: str | None = None
    snapshots: list[dict[str, Any]] = field(default_factory=list)
    type: str = "supervisor"

    @property
    def iterations(self) -> int:
        return len(self.snapshots)

    @property
    def supervisor_name(self) -> str:
        return self.name


@dataclass
class SupervisorResult(RunResult[SupervisorReport]):
    """``execute`` never raises for a failing run: the error comes back in ``error``."""

    type: str = "supervisor"
