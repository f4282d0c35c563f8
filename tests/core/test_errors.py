"""Error classes: codes, categories, fields and their JSON round trip (SPEC 1.6, reference 9)."""

import copy

import pytest

import warlock_ai as ai
from warlock_ai.core.errors import error_from_dict, to_ai_error

CODES = [
    (ai.WorkflowError, "WORKFLOW_ERROR", "unknown"),
    (ai.StepFailedError, "STEP_FAILED", "unknown"),
    (ai.WorkflowDriftError, "WORKFLOW_DRIFT", "drift"),
    (ai.WorkflowCancelledError, "WORKFLOW_CANCELLED", "cancelled"),
    (ai.MaxStepsExceededError, "WORKFLOW_MAX_STEPS", "max-steps"),
    (ai.RoutingError, "WORKFLOW_INVALID_GOTO", "routing"),
    (ai.SupervisorFailedError, "SUPERVISOR_FAILED", "unknown"),
    (ai.MaxIterationsError, "SUPERVISOR_MAX_ITERATIONS", "max-iterations"),
    (ai.SupervisorRoutingError, "SUPERVISOR_INVALID_ROUTE", "routing"),
    (ai.SupervisorCancelledError, "SUPERVISOR_CANCELLED", "cancelled"),
    (ai.SupervisorDriftError, "SUPERVISOR_DRIFT", "drift"),
    (ai.OrchestratorFailedError, "ORCHESTRATOR_FAILED", "unknown"),
    (ai.OrchestratorConfigError, "ORCHESTRATOR_CONFIG", "validation"),
    (ai.OrchestratorDriftError, "ORCHESTRATOR_DRIFT", "drift"),
    (ai.OrchestratorCancelledError, "ORCHESTRATOR_CANCELLED", "cancelled"),
    (ai.AgentExecutionError, "AGENT_EXEC_FAILED", "unknown"),
    (ai.AgentCancelledError, "AGENT_CANCELLED", "cancelled"),
    (ai.AgentDriftError, "AGENT_DRIFT", "drift"),
    (ai.AgentMaxTripsError, "AGENT_MAX_TRIPS", "max-trips"),
    (ai.SchemaValidationError, "SCHEMA_VALIDATION_FAILED", "schema"),
    (ai.ToolExecutionError, "TOOL_EXEC_FAILED", "tool"),
    (ai.SnapshotSerializationError, "SNAPSHOT_NOT_JSON", "serialization"),
    (ai.LeaseLostError, "LEASE_LOST", "lease"),
    (ai.LeaseHeldError, "LEASE_HELD", "lease"),
]


@pytest.mark.parametrize(("cls", "code", "category"), CODES)
def test_error_codes_and_categories(cls, code, category):
    err = cls("boom")
    assert isinstance(err, ai.AIError)
    assert (err.code, err.category, err.name, err.message) == (code, category, cls.__name__, "boom")


def test_hierarchy_matches_reference():
    assert issubclass(ai.StepFailedError, ai.WorkflowError)
    assert issubclass(ai.WorkflowDriftError, ai.WorkflowError)
    assert issubclass(ai.SupervisorDriftError, ai.SupervisorFailedError)
    assert issubclass(ai.MaxIterationsError, ai.SupervisorFailedError)
    assert issubclass(ai.OrchestratorDriftError, ai.OrchestratorFailedError)
    assert issubclass(ai.AgentCancelledError, ai.AgentExecutionError)


def test_error_serialises_explicitly_with_message_fields_and_cause():
    cause = ai.SchemaValidationError("bad shape", issues=["x is required"])
    err = ai.StepFailedError("step failed", step_name="fetch", attempts=3, cause=cause)
    data = err.to_dict()
    assert data == {
        "name": "StepFailedError",
        "code": "STEP_FAILED",
        "category": "unknown",
        "message": "step failed",
        "step_name": "fetch",
        "attempts": 3,
        "cause": {
            "name": "SchemaValidationError",
            "code": "SCHEMA_VALIDATION_FAILED",
            "category": "schema",
            "message": "bad shape",
            "issues": ["x is required"],
        },
    }
    rebuilt = error_from_dict(data)
    assert type(rebuilt) is ai.StepFailedError
    assert (rebuilt.step_name, rebuilt.attempts, rebuilt.message) == ("fetch", 3, "step failed")
    assert type(rebuilt.cause) is ai.SchemaValidationError
    assert rebuilt.cause.issues == ["x is required"]


def test_foreign_exception_is_wrapped_with_its_type_and_message():
    wrapped = to_ai_error(ValueError("nope"))
    assert isinstance(wrapped, ai.AIError)
    assert wrapped.message == "ValueError: nope"
    assert isinstance(wrapped.cause, ValueError)
    assert wrapped.to_dict()["cause"] == {"name": "ValueError", "message": "nope"}


def test_unknown_error_name_rebuilds_as_base_class():
    err = error_from_dict({"name": "SomethingNew", "code": "X", "message": "m"})
    assert type(err) is ai.AIError
    assert (err.code, err.message) == ("X", "m")


def test_unexpected_field_is_refused():
    with pytest.raises(TypeError, match="unexpected fields"):
        ai.StepFailedError("x", not_a_field=1)


def test_errors_survive_deepcopy():
    err = ai.WorkflowDriftError("d", saved_signature="a", current_signature="b", run_id="r")
    copied = copy.deepcopy(err)
    assert type(copied) is ai.WorkflowDriftError
    assert (copied.saved_signature, copied.run_id) == ("a", "r")


def test_a_rebuilt_error_gives_back_exactly_what_was_stored():
    from warlock_ai.core.errors import StepFailedError

    original = StepFailedError(
        "step failed", step_name="x", attempts=1, cause=to_ai_error(ValueError("no price"))
    ).to_dict()
    original["from_another_version"] = {"kept": True}
    rebuilt = error_from_dict(original)
    assert isinstance(rebuilt, StepFailedError)
    assert rebuilt.to_dict() == original
    assert rebuilt.to_dict()["cause"]["cause"] == {"name": "ValueError", "message": "no price"}
