"""``sessions/``: orchestrator sessions, their turns, and sending a turn."""

from __future__ import annotations

import json
from typing import Any

from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import OpenApiResponse
from rest_framework import status
from rest_framework.mixins import ListModelMixin
from rest_framework.request import Request
from rest_framework.response import Response

from .. import operations
from ..audit import ADDITION, CHANGE, DELETION, log_action
from ..core.errors import OrchestratorFailedError, UnknownFlowError, UnknownSessionError
from ..core.orchestrator.checkpoints import check_session_id
from ..models import Checkpoint, snapshot_rows
from ..registry import registry
from ..sessions import discard_session
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
from .filters import SessionFilter
from .serializers import (
    ResumeBody,
    SendTurnBody,
    SessionSerializer,
    TurnResultSerializer,
    TurnSerializer,
)


class SessionsView(ListModelMixin, WarlockView):
    """GET: every session (its latest turn), latest saved first."""

    serializer_class = SessionSerializer
    filter_backends = [DjangoFilterBackend, Ordering]
    filterset_class = SessionFilter
    ordering_fields = ["saved_at", "session_id", "orchestrator_name"]
    ordering = ["-saved_at"]
    permissions = {"GET": (perms.VIEW_SESSIONS,)}
    doings = {"GET": "listing sessions"}

    def get_queryset(self) -> Any:
        return self.narrow(Checkpoint.objects.all()).latest_turns().with_interrupted_turn()

    @openapi(responses={200: SessionSerializer(many=True), **errors(400, 401, 403, 404)})
    def get(self, request: Request) -> Response:
        """Every orchestrator session (its latest turn), latest saved first."""
        return self.list(request)


class SessionMixin:
    """The session the request's path names, as this user may see it."""

    kwargs: dict[str, Any]

    def session_rows(self) -> Any:
        name, session_id = self.kwargs["orchestrator"], self.kwargs["session_id"]
        rows = self.narrow(Checkpoint.objects.for_session(name, session_id))  # type: ignore[attr-defined]
        return rows.order_by("turn_index")

    def _unknown(self) -> UnknownSessionError:
        name, session_id = self.kwargs["orchestrator"], self.kwargs["session_id"]
        return UnknownSessionError(
            f'orchestrator "{name}" has no session "{session_id}"',
            orchestrator_name=name,
            session_id=session_id,
        )

    def latest_row(self) -> Any:
        """The session's latest turn row, annotated as the list's; 404 when none is seen."""
        row = self.session_rows().latest_turns().with_interrupted_turn().first()
        if row is None:
            raise self._unknown()
        return row

    def log(self, request: Any, flag: int, message: str) -> Any:
        """Log on the session's latest row (an unsaved one when it has none); returns it."""
        name, session_id = self.kwargs["orchestrator"], self.kwargs["session_id"]
        row = self.session_rows().last() or Checkpoint(
            orchestrator_name=name, session_id=session_id
        )
        log_action(request.user, row, flag, message, repr_=f"{name} / {session_id}")
        return row

    def turn_answer(self, outcome: Any, turn_index: int | None) -> dict[str, Any]:
        """What sending or resuming a turn did (``outcome.result``: the turn, when it ran here)."""
        result = getattr(outcome, "result", None)
        return {
            "orchestrator": self.kwargs["orchestrator"],
            "session_id": self.kwargs["session_id"],
            "message": outcome.message,
            "ok": outcome.ok,
            "job_id": outcome.job_id,
            "turn_index": turn_index,
            "status": result.report.status if result is not None else None,
            "data": _json(result.data) if result is not None else None,
            "error": result.error.to_dict() if result is not None and result.error else None,
        }


class SessionView(SessionMixin, WarlockView):
    """GET: one session (its latest turn). DELETE: discard it, every turn."""

    serializer_class = SessionSerializer
    permissions = {"GET": (perms.VIEW_SESSIONS,), "DELETE": (perms.DISCARD_SESSION,)}
    doings = {"GET": "reading a session", "DELETE": "discarding a session"}

    @openapi(responses={200: SessionSerializer, **errors(401, 403, 404)})
    def get(self, request: Request, orchestrator: str, session_id: str) -> Response:
        """One session: its latest turn, how many are stored, an interrupted turn."""
        return Response(SessionSerializer(self.latest_row()).data)

    @openapi(
        responses={204: OpenApiResponse(description="Discarded."), **errors(401, 403, 404, 409)}
    )
    def delete(self, request: Request, orchestrator: str, session_id: str) -> Response:
        """Discard the session: every turn and turn snapshot (under the session lock)."""
        latest = self.latest_row()
        removed = discard_session(orchestrator, session_id)
        message = (
            f"Discarded session “{session_id}” of orchestrator “{orchestrator}”: "
            f"{removed} rows and turn snapshots."
        )
        log_action(request.user, latest, DELETION, message, repr_=f"{orchestrator} / {session_id}")
        return Response(status=status.HTTP_204_NO_CONTENT)


class SessionResumeView(SubRoute, SessionMixin, WarlockView):
    """POST: finish the session's interrupted turn."""

    doings = {"POST": "resuming a turn"}

    sub_route = ("session_id", "resume", frozenset({"POST"}), lambda: SessionView)

    def required_permissions(self, request: Any) -> tuple[str, ...]:
        return resume_permissions(request)

    @openapi(
        request=ResumeBody,
        responses={
            200: OpenApiResponse(TurnResultSerializer, "Finished here."),
            202: OpenApiResponse(TurnResultSerializer, "Enqueued: a worker finishes it."),
            **errors(400, 401, 403, 404, 409, 503),
        },
    )
    def post(self, request: Request, orchestrator: str, session_id: str) -> Response:
        """Finish the session's interrupted turn (force: past a changed orchestrator)."""
        body = ResumeBody(data=request.data)
        body.is_valid(raise_exception=True)
        force = body.validated_data["force"]
        if not self.session_rows().exists() and not self._first_turn_visible():
            raise self._unknown()
        outcome = operations.start_resume_turn(
            orchestrator, session_id, force=force, inline=runs_inline()
        )
        if outcome.command is not None:
            raise NoBackgroundWorker(outcome.message, outcome.command)
        label = "Force-resume" if force else "Resume"
        latest = self.log(request, CHANGE, f"{label}: {outcome.message}")
        data = self.turn_answer(outcome, latest.turn_index if latest.pk is not None else None)
        code = status.HTTP_202_ACCEPTED if outcome.job_id else status.HTTP_200_OK
        return Response(data, status=code)

    def _first_turn_visible(self) -> bool:
        """A session whose first turn was interrupted has no rows yet: it is this user's if
        that turn's snapshot is (and no other user's rows hold the id)."""
        name, session_id = self.kwargs["orchestrator"], self.kwargs["session_id"]
        if Checkpoint.objects.for_session(name, session_id).exists():
            return False
        turns = self.narrow(snapshot_rows()).filter(
            kind="orchestrator", name=name, run_id__startswith=f"{session_id}."
        )
        return bool(turns.exists())


class TurnsView(SubRoute, SessionMixin, ListModelMixin, WarlockView):
    """GET: a session's turns, oldest first. POST: send it a turn."""

    serializer_class = TurnSerializer
    permissions = {"GET": (perms.VIEW_SESSIONS,), "POST": (perms.SEND_TURN,)}
    doings = {"GET": "reading a session", "POST": "sending a turn"}

    sub_route = ("session_id", "turns", frozenset({"GET", "HEAD", "POST"}), lambda: SessionView)

    def get_queryset(self) -> Any:
        return self.session_rows()

    @openapi(responses={200: TurnSerializer(many=True), **errors(400, 401, 403, 404)})
    def get(self, request: Request, orchestrator: str, session_id: str) -> Response:
        """A session's stored turns, oldest first."""
        if not self.get_queryset().exists():
            raise self._unknown()
        return self.list(request)

    @openapi(
        request=SendTurnBody,
        responses={
            201: OpenApiResponse(TurnResultSerializer, "Run here: the turn is stored."),
            202: OpenApiResponse(TurnResultSerializer, "Enqueued: a worker runs it."),
            **errors(400, 401, 403, 404, 409, 503),
        },
    )
    def post(self, request: Request, orchestrator: str, session_id: str) -> Response:
        """Send the session its next turn (a new session id starts a session)."""
        if registry.lookup("orchestrator", orchestrator) is None:
            raise UnknownFlowError(
                f'orchestrator "{orchestrator}" is not registered', code="UNKNOWN_ORCHESTRATOR"
            )
        try:
            check_session_id(session_id)
        except OrchestratorFailedError as exc:
            raise InvalidBody("session_id", exc, code="INVALID") from exc
        body = SendTurnBody(data=request.data)
        body.is_valid(raise_exception=True)
        every = Checkpoint.objects.for_session(orchestrator, session_id)
        if every.exists() and not self.get_queryset().exists():
            raise self._unknown()  # another tenant's session
        outcome = operations.send_turn(
            orchestrator,
            session_id,
            body.validated_data["input"],
            turn_key=body.validated_data.get("turn_key"),
            inline=runs_inline(),
        )
        if outcome.command is not None:
            raise NoBackgroundWorker(outcome.message, outcome.command)
        self.log(request, ADDITION, f"Turn: {outcome.message}")
        data = self.turn_answer(outcome, getattr(outcome.result, "turn_index", None))
        code = status.HTTP_202_ACCEPTED if outcome.job_id else status.HTTP_201_CREATED
        return Response(data, status=code)


def _json(value: Any) -> Any:
    """A turn's answer as JSON (what is not JSON becomes its text)."""
    return json.loads(json.dumps(value, default=str))
