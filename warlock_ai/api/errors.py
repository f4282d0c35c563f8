"""One JSON error shape for every refusal of the API: ``{"code", "message", ...fields}``.

``code`` is the library's error code (``UNKNOWN_RUN``, ``LEASE_HELD``, ``WORKFLOW_DRIFT``,
...) or, for what DRF refuses itself, its code in capitals (``NOT_AUTHENTICATED``,
``PERMISSION_DENIED``, ``INVALID``, ...); ``message`` is one line saying what was wrong; the
other keys are the error's own fields (a drift error carries both signatures, a lease error
its holder, a bad body ``fields``: each field's messages).
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from ..core.errors import (
    AIError,
    CheckpointConflictError,
    DriftError,
    InterruptedTurnError,
    LeaseHeldError,
    LeaseLostError,
    QueueUnavailableError,
    RunCompletedError,
    RunExistsError,
    RunNotRunningError,
    SessionBusyError,
    SessionExistsError,
    StoreError,
    StoreUnavailableError,
    UnknownFlowError,
    UnknownRunError,
    UnknownSessionError,
    UnreadableSnapshotError,
)

#: The HTTP status of each library error, the first match winning (subclasses first). An
#: error not listed is a refusal of what was asked: 400.
STATUS_OF: tuple[tuple[type[AIError], int], ...] = (
    (UnknownRunError, status.HTTP_404_NOT_FOUND),
    (UnknownSessionError, status.HTTP_404_NOT_FOUND),
    (UnknownFlowError, status.HTTP_404_NOT_FOUND),
    (QueueUnavailableError, status.HTTP_503_SERVICE_UNAVAILABLE),
    (StoreUnavailableError, status.HTTP_503_SERVICE_UNAVAILABLE),
    (LeaseHeldError, status.HTTP_409_CONFLICT),
    (LeaseLostError, status.HTTP_409_CONFLICT),
    (DriftError, status.HTTP_409_CONFLICT),
    (RunExistsError, status.HTTP_409_CONFLICT),
    (RunCompletedError, status.HTTP_409_CONFLICT),
    (RunNotRunningError, status.HTTP_409_CONFLICT),
    (SessionExistsError, status.HTTP_409_CONFLICT),
    (SessionBusyError, status.HTTP_409_CONFLICT),
    (InterruptedTurnError, status.HTTP_409_CONFLICT),
    (CheckpointConflictError, status.HTTP_409_CONFLICT),
    (UnreadableSnapshotError, status.HTTP_409_CONFLICT),
    (StoreError, status.HTTP_409_CONFLICT),
)

#: Keys of a library error's dict that are not its fields.
_NOT_FIELDS = ("name", "category", "cause", "context")


class NoBackgroundWorker(exceptions.APIException):
    """Nothing was run or changed: no background worker is configured and the API does not
    run a run inside a request (``WARLOCK_AI["ADMIN_RUNS_INLINE"]`` opts in). The body
    carries the command that does it on a server."""

    status_code = status.HTTP_409_CONFLICT
    default_code = "no_background_worker"

    def __init__(self, message: str, command: str) -> None:
        super().__init__(message)
        self.command = command


class InvalidBody(exceptions.ValidationError):
    """A bad body field the library found (an unknown flow, a mapping that does not fit):
    reported as DRF reports a serializer's, naming the field."""

    def __init__(self, field: str, error: AIError, code: str | None = None) -> None:
        super().__init__({field: [error.message]})
        self.error, self.error_code = error, code or error.code


#: Codes of generic errors that are refusals in the present state, not bad requests.
CONFLICT_CODES = frozenset({"ORCHESTRATOR_NOTHING_TO_RESUME"})


def status_of(error: AIError) -> int:
    if error.code in CONFLICT_CODES:
        return status.HTTP_409_CONFLICT
    for cls, code in STATUS_OF:
        if isinstance(error, cls):
            return code
    return status.HTTP_400_BAD_REQUEST


def error_body(error: AIError) -> dict[str, Any]:
    data = {k: v for k, v in error.to_dict().items() if k not in _NOT_FIELDS}
    data["code"], data["message"] = error.code, _one_line(error.message)
    return data


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's exception handler, with every answer in the one shape (None: a server error,
    which DRF re-raises)."""
    if isinstance(exc, AIError):
        return Response(error_body(exc), status=status_of(exc))
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) or None)
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    response = drf_exception_handler(exc, context)
    if response is None or not isinstance(exc, exceptions.APIException):
        return response
    response.data = _api_error_body(exc)
    return response


def _api_error_body(exc: exceptions.APIException) -> dict[str, Any]:
    if isinstance(exc, exceptions.ValidationError):
        fields = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        return {
            "code": getattr(exc, "error_code", "INVALID"),
            "message": _first_problem(fields),
            "fields": fields,
        }
    body: dict[str, Any] = {
        "code": str(exc.default_code).upper(),
        "message": _one_line(str(exc.detail)),
    }
    if isinstance(exc, NoBackgroundWorker):
        body["code"] = "NO_BACKGROUND_WORKER"
        body["command"] = exc.command
    return body


def _first_problem(detail: Any, path: str = "") -> str:
    """The first message of a DRF error tree, prefixed with where it is ("input: ...",
    "rename.old: ...")."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = "body" if key == "non_field_errors" else str(key)
            return _first_problem(value, f"{path}.{name}" if path else name)
    if isinstance(detail, list):
        for index, value in enumerate(detail):
            if isinstance(value, (dict, list)):
                return _first_problem(value, f"{path}[{index}]")
            return _first_problem(value, path)
    text = _one_line(str(detail))
    return f"{path}: {text}" if path else text


def _one_line(text: str) -> str:
    return " ".join(text.split())


def not_found(request: Any, *args: Any, **kwargs: Any) -> Any:
    """The answer to a path under the API's prefix that names nothing."""
    from django.http import JsonResponse

    body = {"code": "NOT_FOUND", "message": f"no API route {request.path_info!r}"}
    return JsonResponse(body, status=404)
