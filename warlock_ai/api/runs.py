"""``runs/``: list and start runs; read and discard one; resume, cancel and migrate it.

Each view reads the run through the queryset hook (a run it hides is a 404), calls the
operation the admin and the commands call, and writes the ``LogEntry`` the admin writes.
"""

from __future__ import annotations

from typing import Any

from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import OpenApiResponse
from rest_framework import status
from rest_framework.fields import DateTimeField
from rest_framework.mixins import ListModelMixin
from rest_framework.request import Request
from rest_framework.response import Response

from .. import operations
from ..audit import ADDITION, CHANGE, DELETION, log_action
from ..core.errors import (
    NotStartableError,
    RunExistsError,
    UnknownFlowError,
    UnknownRunError,
    WorkflowError,
)
from ..core.runs.definition import check_run_id
from ..models import Snapshot, snapshot_rows
from . import permissions as perms
from .base import (
    Ordering,
    SubRoute,
    WarlockView,
    errors,
    openapi,
    resume_permissions,
    runs_inline,
)
from .errors import InvalidBody, NoBackgroundWorker
from .filters import RunFilter
from .serializers import (
    ActionResultSerializer,
    CancelBody,
    MigrateBody,
    ResumeBody,
    RunDetailSerializer,
    RunSerializer,
    StartRunBody,
)

START = "Start"


class RunQueryMixin:
    """The runs this request may see (the queryset hook applied)."""

    def runs(self) -> Any:
        return self.narrow(snapshot_rows())  # type: ignore[attr-defined]

    def run_row(self, run_id: str, *, summary: bool = False) -> Snapshot:
        rows = self.runs()
        row = (rows.summaries() if summary else rows).filter(pk=run_id).first()
        if row is None:
            raise UnknownRunError(f'run "{run_id}" is not stored', code="UNKNOWN_RUN")
        return row

    def stored(self, run_id: str) -> dict[str, Any] | None:
        """The run as the list shows it now, None when it is not stored (yet)."""
        row = self.runs().summaries().filter(pk=run_id).first()
        return dict(RunSerializer(row).data) if row is not None else None


class RunsView(RunQueryMixin, ListModelMixin, WarlockView):
    """GET: the runs, newest saved first, filtered and paginated. POST: start a run."""

    serializer_class = RunSerializer
    filter_backends = [DjangoFilterBackend, Ordering]
    filterset_class = RunFilter
    ordering_fields = ["saved_at", "started_at", "finished_at", "run_id", "name", "status"]
    ordering = ["-saved_at"]
    permissions = {"GET": (perms.VIEW_RUNS,), "POST": (perms.START_RUN,)}
    doings = {"GET": "listing runs", "POST": "starting a run"}

    def get_queryset(self) -> Any:
        return self.runs().summaries()

    @openapi(responses={200: RunSerializer(many=True), **errors(400, 401, 403, 404)})
    def get(self, request: Request) -> Response:
        """The runs, newest saved first: filtered, searched, ordered, 50 a page."""
        return self.list(request)

    @openapi(
        request=StartRunBody,
        responses={
            200: OpenApiResponse(ActionResultSerializer, "Started before: nothing new."),
            201: OpenApiResponse(ActionResultSerializer, "Run here, to its end."),
            202: OpenApiResponse(ActionResultSerializer, "Enqueued: a worker runs it."),
            **errors(400, 401, 403, 409, 503),
        },
    )
    def post(self, request: Request) -> Response:
        """Start a registered flow; a run_id of your choosing makes the call idempotent."""
        body = StartRunBody(data=request.data)
        body.is_valid(raise_exception=True)
        flow, input, run_id = (body.validated_data.get(k) for k in ("flow", "input", "run_id"))
        if run_id is not None:
            try:
                check_run_id(run_id)
            except WorkflowError as exc:
                raise InvalidBody("run_id", exc, code="INVALID") from exc
            self._refuse_hidden(run_id)
        try:
            outcome = operations.start_run(flow, input, run_id, inline=runs_inline())
        except (UnknownFlowError, NotStartableError) as exc:
            raise InvalidBody("flow", exc) from exc
        if outcome.command is not None:
            raise NoBackgroundWorker(outcome.message, outcome.command)
        if outcome.created:
            row = self.runs().filter(pk=outcome.run_id).first() or Snapshot(run_id=outcome.run_id)
            log_action(request.user, row, ADDITION, f"{START}: {outcome.message}", repr_=_repr(row))
        code = (
            status.HTTP_200_OK
            if not outcome.created
            else status.HTTP_202_ACCEPTED
            if outcome.job_id
            else status.HTTP_201_CREATED
        )
        data = _result(outcome.run_id, "start", outcome, run=self.stored(outcome.run_id))
        data["created"] = outcome.created
        return Response(data, status=code)

    def _refuse_hidden(self, run_id: str) -> None:
        """A run id taken by a run this user cannot see is refused without saying more."""
        rows = snapshot_rows().filter(pk=run_id)
        if rows.exists() and not self.runs().filter(pk=run_id).exists():
            raise RunExistsError(f'run "{run_id}" already exists; choose another run_id')


class RunView(RunQueryMixin, WarlockView):
    """GET: one run with everything stored. DELETE: discard it."""

    serializer_class = RunDetailSerializer
    permissions = {"GET": (perms.VIEW_RUNS,), "DELETE": (perms.DISCARD_RUN,)}
    doings = {"GET": "reading a run", "DELETE": "discarding a run"}

    @openapi(responses={200: RunDetailSerializer, **errors(401, 403, 404)})
    def get(self, request: Request, run_id: str) -> Response:
        """One run with everything stored: state, input, step records, attempts, lease, drift."""
        return Response(RunDetailSerializer(self.run_row(run_id)).data)

    @openapi(
        responses={204: OpenApiResponse(description="Discarded."), **errors(401, 403, 404, 409)}
    )
    def delete(self, request: Request, run_id: str) -> Response:
        """Discard the run (its snapshot is deleted); refused while a live worker holds it."""
        row = self.run_row(run_id, summary=True)
        operations.discard_run(run_id)
        message = f'run "{run_id}" discarded: its snapshot is deleted'
        log_action(request.user, row, DELETION, f"Discard: {message}")
        return Response(status=status.HTTP_204_NO_CONTENT)


class RunActionView(SubRoute, RunQueryMixin, WarlockView):
    """POST ``runs/{run_id}/<action>/``. Any other method names the run whose id ends in
    ``/<action>`` (run ids may hold slashes), so it is that run's GET or DELETE."""

    action_name = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.sub_route = ("run_id", cls.action_name, frozenset({"POST"}), lambda: RunView)

    def respond(self, request: Request, run_id: str, label: str, outcome: Any) -> Response:
        if outcome.command is not None:
            raise NoBackgroundWorker(outcome.message, outcome.command)
        found = self.runs().summaries().filter(pk=run_id).first()
        row = found or Snapshot(run_id=run_id)
        log_action(request.user, row, CHANGE, f"{label}: {outcome.message}", repr_=_repr(row))
        run = dict(RunSerializer(found).data) if found is not None else None
        data = _result(run_id, self.action_name, outcome, run=run)
        code = status.HTTP_202_ACCEPTED if outcome.job_id else status.HTTP_200_OK
        return Response(data, status=code)


_ACTION_ERRORS = errors(400, 401, 403, 404, 409, 503)


class ResumeView(RunActionView):
    action_name = "resume"
    doings = {"POST": "resuming a run"}

    def required_permissions(self, request: Any) -> tuple[str, ...]:
        return resume_permissions(request)

    @openapi(
        request=ResumeBody,
        responses={
            200: OpenApiResponse(ActionResultSerializer, "Resumed here, to its end."),
            202: OpenApiResponse(ActionResultSerializer, "Enqueued: a worker resumes it."),
            **_ACTION_ERRORS,
        },
    )
    def post(self, request: Request, run_id: str) -> Response:
        """Resume the run from its next step (force: past a changed definition)."""
        body = ResumeBody(data=request.data)
        body.is_valid(raise_exception=True)
        force = body.validated_data["force"]
        self.run_row(run_id, summary=True)
        outcome = operations.start_resume(run_id, force=force, inline=runs_inline())
        label = "Force-resume" if force else "Resume"
        return self.respond(request, run_id, label, outcome)


class CancelView(RunActionView):
    action_name = "cancel"
    permissions = {"POST": (perms.CANCEL_RUN,)}
    doings = {"POST": "cancelling a run"}

    @openapi(request=CancelBody, responses={200: ActionResultSerializer, **_ACTION_ERRORS})
    def post(self, request: Request, run_id: str) -> Response:
        """Cancel the run: at once when no live worker holds it, else its worker stops it."""
        body = CancelBody(data=request.data)
        body.is_valid(raise_exception=True)
        self.run_row(run_id, summary=True)
        outcome = operations.request_cancel(run_id, body.validated_data["reason"])
        response = self.respond(request, run_id, "Cancel", outcome)
        when = outcome.requested_at
        response.data["cancel"] = {
            "action": outcome.action,
            "requested_at": DateTimeField().to_representation(when) if when else None,
            "reason": outcome.reason,
            "worker": outcome.worker,
            "within_seconds": outcome.within_seconds,
        }
        return response


class MigrateView(RunActionView):
    action_name = "migrate"
    permissions = {"POST": (perms.MIGRATE_RUN,)}
    doings = {"POST": "migrating a run"}

    @openapi(request=MigrateBody, responses={200: ActionResultSerializer, **_ACTION_ERRORS})
    def post(self, request: Request, run_id: str) -> Response:
        """Rename or drop stored step records and accept the current signature."""
        body = MigrateBody(data=request.data)
        body.is_valid(raise_exception=True)
        renames, drop = body.validated_data["rename"], body.validated_data["drop"]
        accepted = body.validated_data["accept_signature"]
        self.run_row(run_id, summary=True)
        migrated = operations.migrate_run(run_id, renames, accept_signature=accepted, drop=drop)
        outcome = operations.describe_migration(run_id, renames, drop, accepted, migrated)
        return self.respond(request, run_id, "Migrate", outcome)


def _result(run_id: str, action: str, outcome: Any, run: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "action": action,
        "message": outcome.message,
        "ok": outcome.ok,
        "job_id": outcome.job_id,
        "run": run,
    }


def _repr(row: Snapshot) -> str:
    return str(row) if row.name else f"run {row.run_id}"
