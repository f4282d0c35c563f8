"""What a run hands back: the context steps see, the report, and the result envelope."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..runs.cancel import CancelToken
from ..runs.results import REPORT_SCHEMA_VERSION, RunReport, RunResult
from .snapshot import StepRecord


class WorkflowContext:
    """What a step sees: ``input``, ``state``, ``context``, ``steps``, ``run_id``, ``cancel``...

    ``input`` is replayed verbatim on resume; ``state`` is the mutable dict that is persisted;
    ``context`` is a read-only mapping supplied fresh on every call and never persisted.
    """

    __slots__ = (
        "agent_result",
        "cancel",
        "context",
        "input",
        "run_id",
        "session_id",
        "started_at",
        "state",
        "steps",
        "workflow_name",
    )

    def __init__(
        self,
        *,
        input: Any,
        state: dict[str, Any],
        context: Mapping[str, Any],
        steps: dict[str, StepRecord],
        run_id: str,
        started_at: datetime,
        cancel: CancelToken,
        session_id: str | None,
        workflow_name: str,
        agent_result: Any = None,
    ) -> None:
        self.input = input
        self.state = state
        self.context = context
        self.steps = steps
        self.run_id = run_id
        self.started_at = started_at
        self.cancel = cancel
        self.session_id = session_id
        self.workflow_name = workflow_name
        self.agent_result = agent_result

    def with_state(self, state: dict[str, Any], agent_result: Any = None) -> WorkflowContext:
        """A sibling context over another state dict (one per attempt, one per parallel child)."""
        ctx = WorkflowContext.__new__(WorkflowContext)
        ctx.input = self.input
        ctx.state = state
        ctx.context = self.context
        ctx.steps = self.steps
        ctx.run_id = self.run_id
        ctx.started_at = self.started_at
        ctx.cancel = self.cancel
        ctx.session_id = self.session_id
        ctx.workflow_name = self.workflow_name
        ctx.agent_result = agent_result
        return ctx

    def __repr__(self) -> str:
        return f"<WorkflowContext run_id={self.run_id!r} workflow={self.workflow_name!r}>"


@dataclass
class WorkflowReport(RunReport):
    """The report of a workflow run (also built for a resumed run, covering the whole run)."""

    steps: dict[str, StepRecord] = field(default_factory=dict)
    children: list[Any] = field(default_factory=list)
    root_run_id: str | None = None
    parent_run_id: str | None = None
    type: str = "workflow"
    report_schema_version: int = REPORT_SCHEMA_VERSION

    @property
    def workflow_name(self) -> str:
        return self.name


@dataclass
class WorkflowResult(RunResult[WorkflowReport]):
    """``execute`` never raises for a failing step: the error comes back in ``error``."""

    type: str = "workflow"
