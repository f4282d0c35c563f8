"""warlock_ai: durable AI runs for Django.

``import warlock_ai as ai`` gives the whole public API: ``ai.workflow``, ``ai.step``,
``ai.parallel``, ``ai.Retry``, ``ai.END``, ``ai.snapshot.memory()``, ``ai.config``, the errors.
Importing this package does not import Django.
"""

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _version

from . import checkpoint, snapshot
from .core.cancel import CancelToken
from .core.checkpoints import CheckpointRecord
from .core.config import config, get_config, reset_config
from .core.errors import (
    AgentCancelledError,
    AgentDriftError,
    AgentExecutionError,
    AgentMaxTripsError,
    AIError,
    CacheConfigurationError,
    CacheUnsupportedError,
    CheckpointConflictError,
    LeaseHeldError,
    LeaseLostError,
    MaxIterationsError,
    MaxStepsExceededError,
    OrchestratorCancelledError,
    OrchestratorConfigError,
    OrchestratorDriftError,
    OrchestratorFailedError,
    RoutingError,
    SchemaValidationError,
    SnapshotSerializationError,
    StepFailedError,
    StoreError,
    SupervisorCancelledError,
    SupervisorDriftError,
    SupervisorFailedError,
    SupervisorRoutingError,
    ToolExecutionError,
    WorkflowCancelledError,
    WorkflowDriftError,
    WorkflowError,
)
from .core.results import WorkflowContext, WorkflowReport, WorkflowResult
from .core.retry import Retry
from .core.routing import END
from .core.snapshots import AttemptRecord, StepRecord, WorkflowSnapshot
from .core.steps import Output, Step, parallel, step
from .core.usage import Usage
from .core.workflow import Workflow, workflow
from .stores.base import CheckpointStore, SnapshotStore

try:
    __version__ = _version("warlock-ai")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

__all__ = [
    "END",
    "AIError",
    "AgentCancelledError",
    "AgentDriftError",
    "AgentExecutionError",
    "AgentMaxTripsError",
    "AttemptRecord",
    "CacheConfigurationError",
    "CacheUnsupportedError",
    "CancelToken",
    "CheckpointConflictError",
    "CheckpointRecord",
    "CheckpointStore",
    "LeaseHeldError",
    "LeaseLostError",
    "MaxIterationsError",
    "MaxStepsExceededError",
    "OrchestratorCancelledError",
    "OrchestratorConfigError",
    "OrchestratorDriftError",
    "OrchestratorFailedError",
    "Output",
    "Retry",
    "RoutingError",
    "SchemaValidationError",
    "SnapshotSerializationError",
    "SnapshotStore",
    "Step",
    "StepFailedError",
    "StepRecord",
    "StoreError",
    "SupervisorCancelledError",
    "SupervisorDriftError",
    "SupervisorFailedError",
    "SupervisorRoutingError",
    "ToolExecutionError",
    "Usage",
    "Workflow",
    "WorkflowCancelledError",
    "WorkflowContext",
    "WorkflowDriftError",
    "WorkflowError",
    "WorkflowReport",
    "WorkflowResult",
    "WorkflowSnapshot",
    "__version__",
    "checkpoint",
    "config",
    "get_config",
    "parallel",
    "reset_config",
    "snapshot",
    "step",
    "workflow",
]
