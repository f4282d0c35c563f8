"""warlock_ai: durable AI runs for Django.

``import warlock_ai as ai`` gives the whole public API: ``ai.workflow``, ``ai.step``,
``ai.parallel``, ``ai.Retry``, ``ai.END``, ``ai.snapshot.memory()``, ``ai.config``, the errors.
Importing this package does not import Django.
"""

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _version

from . import checkpoint, snapshot
from .core.agents.agent import Agent, AgentReport, AgentResult, TripRecord, agent
from .core.agents.messages import Embedding, Embeddings, Message, ModelResponse, Price, ToolCall
from .core.agents.middleware import Hooks, Middleware, PipelineContext
from .core.agents.tools import Tool, tool
from .core.errors import (
    AgentCancelledError,
    AgentDriftError,
    AgentExecutionError,
    AgentMaxTripsError,
    AIError,
    CacheConfigurationError,
    CacheUnsupportedError,
    CheckpointConflictError,
    DriftError,
    LeaseHeldError,
    LeaseLostError,
    MaxIterationsError,
    MaxStepsExceededError,
    ModelCallError,
    NotPersistedError,
    OrchestratorCancelledError,
    OrchestratorConfigError,
    OrchestratorDriftError,
    OrchestratorFailedError,
    RoutingError,
    RunInterruptedError,
    SchemaValidationError,
    SnapshotSerializationError,
    StepFailedError,
    StoreError,
    StoreUnavailableError,
    SupervisorCancelledError,
    SupervisorDriftError,
    SupervisorFailedError,
    SupervisorRoutingError,
    ToolExecutionError,
    WorkflowCancelledError,
    WorkflowDriftError,
    WorkflowError,
)
from .core.orchestrator.checkpoints import CheckpointRecord
from .core.runs.cancel import CancelToken
from .core.runs.config import config, get_config, reset_config
from .core.runs.routing import END
from .core.runs.usage import Usage
from .core.supervisor import (
    Supervisor,
    SupervisorContext,
    SupervisorReport,
    SupervisorResult,
    SupervisorSnapshot,
    intent,
    supervisor,
)
from .core.workflow import (
    AttemptRecord,
    Output,
    Retry,
    Step,
    StepRecord,
    Workflow,
    WorkflowContext,
    WorkflowReport,
    WorkflowResult,
    WorkflowSnapshot,
    parallel,
    step,
    workflow,
)
from .stores.base import CheckpointStore, SnapshotStore

try:
    __version__ = _version("warlock-ai")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

__all__ = [
    "END",
    "AIError",
    "Agent",
    "AgentCancelledError",
    "AgentDriftError",
    "AgentExecutionError",
    "AgentMaxTripsError",
    "AgentReport",
    "AgentResult",
    "AttemptRecord",
    "CacheConfigurationError",
    "CacheUnsupportedError",
    "CancelToken",
    "CheckpointConflictError",
    "CheckpointRecord",
    "CheckpointStore",
    "DriftError",
    "Embedding",
    "Embeddings",
    "Hooks",
    "LeaseHeldError",
    "LeaseLostError",
    "MaxIterationsError",
    "MaxStepsExceededError",
    "Message",
    "Middleware",
    "ModelCallError",
    "ModelResponse",
    "NotPersistedError",
    "OrchestratorCancelledError",
    "OrchestratorConfigError",
    "OrchestratorDriftError",
    "OrchestratorFailedError",
    "Output",
    "PipelineContext",
    "Price",
    "Retry",
    "RoutingError",
    "RunInterruptedError",
    "SchemaValidationError",
    "SnapshotSerializationError",
    "SnapshotStore",
    "Step",
    "StepFailedError",
    "StepRecord",
    "StoreError",
    "StoreUnavailableError",
    "Supervisor",
    "SupervisorCancelledError",
    "SupervisorContext",
    "SupervisorDriftError",
    "SupervisorFailedError",
    "SupervisorReport",
    "SupervisorResult",
    "SupervisorRoutingError",
    "SupervisorSnapshot",
    "Tool",
    "ToolCall",
    "ToolExecutionError",
    "TripRecord",
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
    "agent",
    "checkpoint",
    "config",
    "get_config",
    "intent",
    "parallel",
    "reset_config",
    "snapshot",
    "step",
    "supervisor",
    "tool",
    "workflow",
]
