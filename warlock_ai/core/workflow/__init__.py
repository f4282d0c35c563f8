"""Workflows: an ordered list of steps whose state is snapshotted after every step."""

from .definition import Workflow, workflow
from .kind import WORKFLOW
from .results import WorkflowContext, WorkflowReport, WorkflowResult
from .retry import Retry
from .snapshot import AttemptRecord, StepRecord, WorkflowSnapshot
from .steps import Output, Step, parallel, step

__all__ = [
    "WORKFLOW",
    "AttemptRecord",
    "Output",
    "Retry",
    "Step",
    "StepRecord",
    "Workflow",
    "WorkflowContext",
    "WorkflowReport",
    "WorkflowResult",
    "WorkflowSnapshot",
    "parallel",
    "step",
    "workflow",
]
