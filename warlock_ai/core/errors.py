"""The error hierarchy: one base ``AIError`` with a ``code`` and a ``category``.

Errors stored in a snapshot are serialised explicitly as
``{name, code, category, message, ...fields}`` and rebuilt with :func:`error_from_dict`.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "AIError",
    "AgentCancelledError",
    "AgentDriftError",
    "AgentExecutionError",
    "AgentMaxTripsError",
    "CacheConfigurationError",
    "CacheUnsupportedError",
    "CheckpointConflictError",
    "DriftError",
    "InterruptedTurnError",
    "LeaseHeldError",
    "LeaseLostError",
    "MaxIterationsError",
    "MaxStepsExceededError",
    "MigrationError",
    "NotPersistedError",
    "NotStartableError",
    "OrchestratorCancelledError",
    "OrchestratorConfigError",
    "OrchestratorDriftError",
    "OrchestratorFailedError",
    "QueueUnavailableError",
    "RoutingError",
    "RunCompletedError",
    "RunExistsError",
    "RunInterruptedError",
    "RunNotRunningError",
    "SchemaValidationError",
    "SessionBusyError",
    "SessionExistsError",
    "SnapshotSerializationError",
    "StepFailedError",
    "StoreError",
    "StoreUnavailableError",
    "SupervisorCancelledError",
    "SupervisorDriftError",
    "SupervisorFailedError",
    "SupervisorRoutingError",
    "ToolExecutionError",
    "UnknownFlowError",
    "UnknownRunError",
    "UnknownSessionError",
    "UnreadableSnapshotError",
    "WorkflowCancelledError",
    "WorkflowDriftError",
    "WorkflowError",
    "error_from_dict",
    "to_ai_error",
]

_REGISTRY: dict[str, type[AIError]] = {}


class AIError(Exception):
    """Base of every error ``warlock_ai`` raises or returns in a result."""

    default_code: ClassVar[str] = "AI_ERROR"
    default_category: ClassVar[str] = "unknown"
    #: Extra attributes serialised with the error (subclasses extend this).
    fields: ClassVar[tuple[str, ...]] = ()
    #: The dict an error was rebuilt from (``error_from_dict``); ``to_dict`` returns it.
    _stored: dict[str, Any] | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _REGISTRY[cls.__name__] = cls

    def __init__(
        self,
        message: str = "",
        *,
        code: str | None = None,
        category: str | None = None,
        cause: BaseException | None = None,
        context: dict[str, Any] | None = None,
        **fields: Any,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.category = category or self.default_category
        self.context = context
        self.__cause__ = cause
        for name in self.fields:
            setattr(self, name, fields.pop(name, None))
        if fields:
            raise TypeError(f"{type(self).__name__} got unexpected fields: {sorted(fields)}")

    @property
    def cause(self) -> BaseException | None:
        return self.__cause__

    @property
    def name(self) -> str:
        return type(self).__name__

    def to_dict(self) -> dict[str, Any]:
        """The JSON form stored in snapshots (a rebuilt error gives back what was stored)."""
        if self._stored is not None:
            return dict(self._stored)
        data: dict[str, Any] = {
            "name": self.name,
            "code": self.code,
            "category": self.category,
            "message": self.message,
        }
        for name in self.fields:
            value = getattr(self, name, None)
            if value is not None:
                data[name] = value
        if self.context:
            data["context"] = self.context
        cause = self.__cause__
        if isinstance(cause, AIError):
            data["cause"] = cause.to_dict()
        elif cause is not None:
            data["cause"] = {"name": type(cause).__name__, "message": str(cause)}
        return data

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AIError):
            return NotImplemented
        return type(self) is type(other) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.code, self.message))

    def __reduce__(self) -> tuple[Any, ...]:
        # keeps errors copyable (copy.deepcopy) despite keyword fields
        return (_rebuild, (type(self), self.to_dict()))


def _rebuild(cls: type[AIError], data: dict[str, Any]) -> AIError:
    return error_from_dict(data, default=cls)


def error_from_dict(data: dict[str, Any], default: type[AIError] | None = None) -> AIError:
    """Rebuild an error stored by :meth:`AIError.to_dict` (unknown names become ``AIError``).

    The rebuilt error keeps the stored dict, so saving a loaded snapshot again (migrate,
    restore) writes back exactly what was there: a plain exception's name in a ``cause``, or
    fields of an error class this process does not know, are not lost.
    """
    cls = _REGISTRY.get(data.get("name", ""), default or AIError)
    fields = {k: data[k] for k in cls.fields if k in data}
    cause = data.get("cause")
    error = cls(
        data.get("message", ""),
        code=data.get("code"),
        category=data.get("category"),
        context=data.get("context"),
        cause=error_from_dict(cause) if isinstance(cause, dict) else None,
        **fields,
    )
    error._stored = dict(data)
    return error


def to_ai_error(err: BaseException, wrap_as: type[AIError] | None = None) -> AIError:
    """Return ``err`` if it is an ``AIError``, else wrap it keeping the original as the cause."""
    if isinstance(err, AIError):
        return err
    text = str(err) or type(err).__name__
    return (wrap_as or AIError)(f"{type(err).__name__}: {text}", cause=err)


class RunInterruptedError(AIError):
    """The process was asked to stop (SIGINT, SIGTERM): the run stopped at a check point,
    its snapshot is stored and its lease released; it is still ``running`` and resumes where
    it stopped."""

    default_code = "INTERRUPTED"
    default_category = "interrupted"
    fields: ClassVar[tuple[str, ...]] = ("run_id", "signal")

    run_id: str | None
    signal: str | None


class DriftError(AIError):
    """A stored run or session was written by another definition of its flow. Every kind's
    drift error is one, so ``except DriftError`` catches them all."""

    default_code = "DRIFT"
    default_category = "drift"
    fields: ClassVar[tuple[str, ...]] = ("saved_signature", "current_signature")

    saved_signature: str | None
    current_signature: str | None


# --- workflow ---------------------------------------------------------------------------


class WorkflowError(AIError):
    default_code = "WORKFLOW_ERROR"


class StepFailedError(WorkflowError):
    default_code = "STEP_FAILED"
    fields = ("step_name", "attempts")


class WorkflowDriftError(WorkflowError, DriftError):
    default_code = "WORKFLOW_DRIFT"
    default_category = "drift"
    fields = ("saved_signature", "current_signature", "run_id", "completed_steps", "pending_step")


class WorkflowCancelledError(WorkflowError):
    default_code = "WORKFLOW_CANCELLED"
    default_category = "cancelled"
    fields = ("cancelled_at", "reason")


class MaxStepsExceededError(WorkflowError):
    default_code = "WORKFLOW_MAX_STEPS"
    default_category = "max-steps"
    fields = ("max_steps",)


class RoutingError(WorkflowError):
    default_code = "WORKFLOW_INVALID_GOTO"
    default_category = "routing"
    fields = ("step_name", "target_name")


# --- run operations (the commands, the admin, the jobs and the API raise these) ---------


class UnknownRunError(WorkflowError, LookupError):
    """No snapshot exists for that run id."""

    default_code = "UNKNOWN_RUN"


class UnknownFlowError(WorkflowError, LookupError):
    """No flow is registered under that name."""

    default_code = "UNKNOWN_FLOW"


class NotStartableError(WorkflowError):
    """The flow is registered, but its runs are not started by name (an orchestrator's turns
    are started with a session id)."""

    default_code = "NOT_STARTABLE"


class RunExistsError(WorkflowError):
    """A run with that id is already stored."""

    default_code = "RUN_EXISTS"


class RunNotRunningError(WorkflowError):
    """The operation needs a running run."""

    default_code = "RUN_NOT_RUNNING"


class RunCompletedError(WorkflowError):
    """The operation needs a run that has not completed."""

    default_code = "RUN_COMPLETED"


class QueueUnavailableError(WorkflowError):
    """A background queue is configured but the job could not be enqueued (Redis down, ...)."""

    default_code = "QUEUE_UNAVAILABLE"


class ConcurrencyLimitError(WorkflowError):
    """A flow or a queue had its limit of runs at once (``WARLOCK_AI["CONCURRENCY"]``) for the
    whole wait: the job goes back on its queue, and the run is not started or resumed yet."""

    default_code = "CONCURRENCY_LIMIT"
    default_category = "busy"
    fields = ("scope", "limit", "waited_seconds")


class MigrationError(WorkflowError):
    """A migration mapping does not fit the run or the current definition."""

    default_code = "MIGRATION_INVALID"


# --- supervisor -------------------------------------------------------------------------


class SupervisorFailedError(AIError):
    default_code = "SUPERVISOR_FAILED"


class MaxIterationsError(SupervisorFailedError):
    default_code = "SUPERVISOR_MAX_ITERATIONS"
    default_category = "max-iterations"
    fields = ("max_iterations",)


class SupervisorRoutingError(SupervisorFailedError):
    default_code = "SUPERVISOR_INVALID_ROUTE"
    default_category = "routing"
    fields = ("returned", "available_keys")


class SupervisorCancelledError(SupervisorFailedError):
    default_code = "SUPERVISOR_CANCELLED"
    default_category = "cancelled"
    fields = ("cancelled_at", "reason")


class SupervisorDriftError(SupervisorFailedError, DriftError):
    default_code = "SUPERVISOR_DRIFT"
    default_category = "drift"
    fields = ("saved_signature", "current_signature", "run_id")


# --- orchestrator -----------------------------------------------------------------------


class OrchestratorFailedError(AIError):
    default_code = "ORCHESTRATOR_FAILED"


class OrchestratorConfigError(OrchestratorFailedError):
    default_code = "ORCHESTRATOR_CONFIG"
    default_category = "validation"


class OrchestratorDriftError(OrchestratorFailedError, DriftError):
    default_code = "ORCHESTRATOR_DRIFT"
    default_category = "drift"
    fields = ("saved_signature", "current_signature", "session_id")


class OrchestratorCancelledError(OrchestratorFailedError):
    default_code = "ORCHESTRATOR_CANCELLED"
    default_category = "cancelled"
    fields = ("cancelled_at", "session_id", "reason")


class SessionBusyError(OrchestratorFailedError):
    """Another turn of the session held its lock for the whole wait (``lock_timeout``)."""

    default_code = "ORCHESTRATOR_SESSION_BUSY"
    default_category = "busy"
    fields = ("orchestrator_name", "session_id", "waited_seconds", "holder")


class InterruptedTurnError(OrchestratorFailedError):
    """``execute`` was given a new input while the session's next turn is an interrupted
    one (``iterate=True``): finish it with ``resume``, or discard it explicitly."""

    default_code = "ORCHESTRATOR_TURN_INTERRUPTED"
    default_category = "validation"
    fields = ("orchestrator_name", "session_id", "turn_index", "run_id")


class UnknownSessionError(OrchestratorFailedError, LookupError):
    """The orchestrator has no stored session (no checkpoint row, no turn snapshot) by that id."""

    default_code = "ORCHESTRATOR_UNKNOWN_SESSION"
    default_category = "validation"
    fields = ("orchestrator_name", "session_id")


class SessionExistsError(OrchestratorFailedError):
    """A session that must be new (a fork's target) is already stored."""

    default_code = "ORCHESTRATOR_SESSION_EXISTS"
    default_category = "validation"
    fields = ("orchestrator_name", "session_id")


# --- agents, tools, schemas -------------------------------------------------------------


class AgentExecutionError(AIError):
    default_code = "AGENT_EXEC_FAILED"


class AgentCancelledError(AgentExecutionError):
    default_code = "AGENT_CANCELLED"
    default_category = "cancelled"
    fields = ("cancelled_at", "reason")


class AgentDriftError(AgentExecutionError):
    default_code = "AGENT_DRIFT"
    default_category = "drift"
    fields = ("saved_signature", "current_signature", "run_id")


class AgentMaxTripsError(AgentExecutionError):
    default_code = "AGENT_MAX_TRIPS"
    default_category = "max-trips"
    fields = ("max_trips",)


class SchemaValidationError(AIError):
    default_code = "SCHEMA_VALIDATION_FAILED"
    default_category = "schema"
    fields = ("issues",)


class ToolExecutionError(AIError):
    default_code = "TOOL_EXEC_FAILED"
    default_category = "tool"
    fields = ("tool_name", "trip_index")


class ModelCallError(AIError):
    """A model or embedder call failed (HTTP error, timeout, malformed reply)."""

    default_code = "MODEL_CALL_FAILED"
    default_category = "provider"
    fields = ("provider", "model", "status", "retryable")


# --- cache ------------------------------------------------------------------------------


class CacheUnsupportedError(AIError):
    default_code = "CACHE_UNSUPPORTED"
    default_category = "cache"


class CacheConfigurationError(AIError):
    default_code = "CACHE_CONFIGURATION"
    default_category = "cache"


# --- persistence ------------------------------------------------------------------------


class SnapshotSerializationError(AIError):
    """A value headed for a snapshot is not JSON; ``path`` names where it is."""

    default_code = "SNAPSHOT_NOT_JSON"
    default_category = "serialization"
    fields = ("path", "type_name", "step_name")

    path: str | None
    type_name: str | None
    step_name: str | None


class StoreError(AIError):
    """A store could not complete an operation (connection lost, bad data, ...)."""

    default_code = "STORE_ERROR"
    default_category = "store"


class StoreUnavailableError(StoreError):
    """The store could not be reached (a dropped connection, a server restarting): a write
    that failed with it may succeed when retried, and the run writer retries it."""

    default_code = "STORE_UNAVAILABLE"


class NotPersistedError(StoreError):
    """A run ended, but its store does not hold its last snapshot (its writes failed even
    after their retries): what is stored is behind what the run did. Raised by what must not
    report such a run as done (an rq job); ``execute()`` itself says it in
    ``result.report.persisted``."""

    default_code = "NOT_PERSISTED"


class UnreadableSnapshotError(StoreError):
    """A stored snapshot has a shape this version cannot read (a hand edit, a row written by
    another version of the library): ``field`` names what is wrong. The row can still be
    listed and discarded; ``flow`` and ``status`` are what it says, when it says it, and
    ``problem`` is what is wrong, without the run id and the advice around it."""

    default_code = "UNREADABLE_SNAPSHOT"
    fields = ("run_id", "field", "problem", "flow", "status")

    run_id: str | None
    field: str | None
    problem: str | None
    flow: str | None
    status: str | None


class CheckpointConflictError(StoreError):
    default_code = "CHECKPOINT_CONFLICT"
    fields = ("orchestrator_name", "session_id", "turn_index")


class LeaseHeldError(StoreError):
    """Another worker holds a live lease on the run."""

    default_code = "LEASE_HELD"
    default_category = "lease"
    fields = ("run_id", "owner", "expires_at")


class LeaseLostError(StoreError):
    """This worker's lease expired and another worker took the run over."""

    default_code = "LEASE_LOST"
    default_category = "lease"
    fields = ("run_id", "owner")
