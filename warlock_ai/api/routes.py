"""The API's routes the schema describes (``urls`` adds the schema's own and a JSON 404).

Run ids may hold slashes: ``runs/a/b/`` is run ``a/b``. An action's route takes POST only;
any other method on ``runs/x/resume/`` reads run ``x/resume``.
"""

from __future__ import annotations

from typing import Any

from django.urls import path, register_converter

from .cache import CacheStatsView
from .runs import CancelView, MigrateView, ResumeView, RunsView, RunView
from .sessions import SessionResumeView, SessionsView, SessionView, TurnsView


class AnyTextConverter:
    """Like ``path:``, but a newline is text too: every id the API is sent reaches its view
    (and is answered there: a 404 naming it), none falls through to an HTML page."""

    regex = r"[\s\S]+"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(AnyTextConverter, "warlock_text")


def api_patterns() -> list[Any]:
    """The routes the schema describes."""
    return [
        path("runs/", RunsView.as_view(), name="runs"),
        path("runs/<warlock_text:run_id>/resume/", ResumeView.as_view(), name="run-resume"),
        path("runs/<warlock_text:run_id>/cancel/", CancelView.as_view(), name="run-cancel"),
        path("runs/<warlock_text:run_id>/migrate/", MigrateView.as_view(), name="run-migrate"),
        path("runs/<warlock_text:run_id>/", RunView.as_view(), name="run"),
        path("sessions/", SessionsView.as_view(), name="sessions"),
        path(
            "sessions/<str:orchestrator>/<warlock_text:session_id>/turns/",
            TurnsView.as_view(),
            name="turns",
        ),
        path(
            "sessions/<str:orchestrator>/<warlock_text:session_id>/resume/",
            SessionResumeView.as_view(),
            name="session-resume",
        ),
        path(
            "sessions/<str:orchestrator>/<warlock_text:session_id>/",
            SessionView.as_view(),
            name="session",
        ),
        path("cache/stats/", CacheStatsView.as_view(), name="cache-stats"),
    ]
