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
from ..audit import ADDITION, log_action
from ..core.errors import OrchestratorFailedError, UnknownFlowError, UnknownSessionError
from ..core.orchestrator.checkpoints import check_session_id
from ..models import Checkpoint
from ..registry import registry
from . import permissions as perms
from .base import Ordering, WarlockView, errors, openapi, runs_inline
from .errors import InvalidBody, NoBackgroundWorker
from .filters import SessionFilter
from .serializers import SendTurnBody, SessionSerializer, TurnResultSerializer, TurnSerializer


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


class TurnsView(ListModelMixin, WarlockView):
    """GET: a session's turns, oldest first. POST: send it a turn."""

    serializer_class = TurnSerializer
    permissions = {"GET": (perms.VIEW_SESSIONS,), "POST": (perms.SEND_TURN,)}
    doings = {"GET": "reading a session", "POST": "sending a turn"}

    def get_queryset(self) -> Any:
        name, session_id = self.kwargs["orchestrator"], self.kwargs["session_id"]
        rows = self.narrow(Checkpoint.objects.for_session(name, session_id))
        return rows.order_by("turn_index")

    def _unknown(self) -> UnknownSessionError:
        name, session_id = self.kwargs["orchestrator"], self.kwargs["session_id"]
        return UnknownSessionError(
            f'orchestrator "{name}" has no session "{session_id}"',
            orchestrator_name=name,
            session_id=session_id,
        )

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
        latest = self.get_queryset().last()
        row = latest or Checkpoint(orchestrator_name=orchestrator, session_id=session_id)
        what = f"{orchestrator} / {session_id}"
        log_action(request.user, row, ADDITION, f"Turn: {outcome.message}", repr_=what)
        result = outcome.result
        data = {
            "orchestrator": orchestrator,
            "session_id": session_id,
            "message": outcome.message,
            "ok": outcome.ok,
            "job_id": outcome.job_id,
            "turn_index": getattr(result, "turn_index", None),
            "status": result.report.status if result is not None else None,
            "data": _json(result.data) if result is not None else None,
            "error": result.error.to_dict() if result is not None and result.error else None,
        }
        code = status.HTTP_202_ACCEPTED if outcome.job_id else status.HTTP_201_CREATED
        return Response(data, status=code)


def _json(value: Any) -> Any:
    """A turn's answer as JSON (what is not JSON becomes its text)."""
    return json.loads(json.dumps(value, default=str))
