"""The sessions browser: ``Checkpoint`` rows grouped into orchestrator sessions.

The changelist shows one row per session (its latest turn, and its interrupted turn if one
waits); a session page lists every turn with its state and what changed since the turn
before. Checkpoints are append-only: nothing here changes a row or deletes a single turn. The
actions (resume an interrupted turn, fork, discard a whole session) are in
``session_actions``, each behind its own permission.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypedDict, cast

from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.utils import quote
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from ..models import Checkpoint, CheckpointQuerySet
from .filters import InterruptedTurnFilter
from .session_actions import FORK_SESSION, SessionActions
from .state_diff import state_changes

if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations

    class _TurnCount(TypedDict):
        turn_count: int
        interrupted_run: str | None

    #: A session's latest turn as ``CheckpointQuerySet.latest_turns()`` gives it, with
    #: ``with_interrupted_turn()``'s annotation.
    SessionRow = WithAnnotations[Checkpoint, _TurnCount]
    _ModelAdmin = admin.ModelAdmin[Any]
else:
    _ModelAdmin = object


#: Changes listed per turn; a larger change says how many more there are.
MAX_CHANGES = 100


def format_route(route: Any) -> str:
    """A stored ``last_route`` for people: agents joined by commas, a dash for none."""
    if isinstance(route, list):
        return ", ".join(str(part) for part in route) or "-"
    return str(route) if route else "-"


def format_json(value: Any) -> str:
    """Indented JSON, non-ASCII kept readable; escaping is left to the template."""
    return json.dumps(value, indent=2, ensure_ascii=False)


class RefuseMalformedSelection(_ModelAdmin):
    """Refuse an action whose selected ids are not primary keys, instead of Django's
    ``ValueError`` (a server error) on ``pk__in=["abc"]``.

    A mixin of ``ModelAdmin`` subclasses (its base is ``ModelAdmin`` for the type checker
    only); arguments newer Djangos add to ``response_action`` are passed on.
    """

    def response_action(
        self, request: HttpRequest, queryset: Any, *args: Any, **kwargs: Any
    ) -> HttpResponse | None:
        try:
            for pk in request.POST.getlist(ACTION_CHECKBOX_NAME):
                self.opts.pk.to_python(pk)
        except ValidationError:
            message = _("The selection is not valid; nothing was changed.")
            self.message_user(request, message, messages.ERROR)
            return None
        return super().response_action(request, queryset, *args, **kwargs)


@admin.register(Checkpoint)
class CheckpointAdmin(SessionActions, RefuseMalformedSelection, admin.ModelAdmin):
    list_display = (
        "orchestrator_name",
        "session_link",
        "turns",
        "latest_turn",
        "last_saved",
        "route",
        "interrupted",
    )
    list_display_links = None
    list_filter = ("orchestrator_name", InterruptedTurnFilter)
    search_fields = ("session_id",)
    date_hierarchy = "saved_at"
    ordering = ("-saved_at",)
    actions = ["delete_sessions"]
    list_per_page = 50

    class Media:
        css = {"all": ("warlock_ai/sessions.css",)}

    # --- read only: the history is append-only ----------------------------------------

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Django's delete view and delete_selected would remove single turns; sessions are
        # discarded whole, through delete_sessions and the session page.
        return False

    def get_actions(self, request: HttpRequest, action_location: Any = None) -> dict[str, Any]:
        # Django 6.1 asks for the actions of a location (the list, the change form); 5.2
        # has no such parameter.
        if action_location is None:
            actions = super().get_actions(request)
        else:
            actions = super().get_actions(request, action_location=action_location)  # type: ignore[call-arg,unused-ignore]
        actions.pop("delete_selected", None)
        return actions

    # --- the changelist: one row per session ----------------------------------------------

    def get_queryset(self, request: HttpRequest) -> Any:
        # States can be large and the list does not show them.
        # Checkpoint's manager makes CheckpointQuerySets (ModelAdmin's type does not say so).
        queryset = cast(CheckpointQuerySet, super().get_queryset(request))
        return queryset.latest_turns().with_interrupted_turn().defer("state")

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        extra = {"title": _("Orchestrator sessions"), **(extra_context or {})}
        return super().changelist_view(request, extra)

    @admin.display(description=_("session id"), ordering="session_id")
    def session_link(self, obj: Checkpoint) -> str:
        url = self.session_url(obj.orchestrator_name, obj.session_id)
        return format_html('<a href="{}">{}</a>', url, obj.session_id)

    @admin.display(description=_("turns"), ordering="turn_count")
    def turns(self, obj: SessionRow) -> int:
        return obj.turn_count

    @admin.display(description=_("latest turn"), ordering="turn_index")
    def latest_turn(self, obj: Checkpoint) -> int:
        return obj.turn_index

    @admin.display(description=_("last saved"), ordering="saved_at")
    def last_saved(self, obj: Checkpoint) -> Any:
        return obj.saved_at

    @admin.display(description=_("last route"))
    def route(self, obj: Checkpoint) -> str:
        return format_route(obj.last_route)

    @admin.display(description=_("interrupted turn"))
    def interrupted(self, obj: SessionRow) -> str:
        if not obj.interrupted_run:
            return "-"
        url = reverse("admin:warlock_ai_snapshot_change", args=[quote(obj.interrupted_run)])
        label = _("turn %(turn)d") % {"turn": obj.turn_index + 1}
        return format_html('<a href="{}" class="warlock-interrupted">{}</a>', url, label)

    # --- URLs ---------------------------------------------------------------------------

    def get_urls(self) -> list[Any]:
        # Query parameters, not path segments: session ids may hold any character, "/" too.
        wrap = self.admin_site.admin_view
        own = [
            path(
                "session/",
                wrap(require_GET(self.session_view)),
                name="warlock_ai_checkpoint_session",
            ),
            path(
                "session/delete/",
                wrap(require_http_methods(["GET", "POST"])(self.delete_session_view)),
                name="warlock_ai_checkpoint_delete_session",
            ),
            path(
                "session/resume/",
                wrap(require_POST(self.resume_turn_view)),
                name="warlock_ai_checkpoint_resume_turn",
            ),
            path(
                "session/fork/",
                wrap(require_http_methods(["GET", "POST"])(self.fork_view)),
                name="warlock_ai_checkpoint_fork",
            ),
        ]
        return own + super().get_urls()

    def change_view(
        self, request: HttpRequest, object_id: str, *args: Any, **kwargs: Any
    ) -> HttpResponse:
        """A turn's own URL (from history or a bookmark) opens its session at that turn."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        turn = get_object_or_404(Checkpoint, pk=object_id if object_id.isdigit() else None)
        url = self.session_url(turn.orchestrator_name, turn.session_id)
        return HttpResponseRedirect(f"{url}#turn-{turn.turn_index}")

    # --- the session page -------------------------------------------------------------------

    @staticmethod
    def turn_rows(turns: Sequence[Checkpoint]) -> list[dict[str, Any]]:
        """Each turn with its state as JSON and what changed since the turn stored before it
        (``changes`` is None for the first stored turn)."""
        rows = []
        for position, turn in enumerate(turns):
            previous = turns[position - 1] if position else None
            changes = state_changes(previous.state, turn.state) if previous else None
            rows.append(
                {
                    "turn": turn,
                    "route": format_route(turn.last_route),
                    "state_json": format_json(turn.state),
                    "state_keys": len(turn.state) if isinstance(turn.state, dict) else None,
                    "changes": changes[:MAX_CHANGES] if changes else changes,
                    "more_changes": max(len(changes or ()) - MAX_CHANGES, 0),
                }
            )
        return rows

    def session_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        name, session_id = self.session_key(request.GET)
        latest = self.find_session(name, session_id)
        if latest is None:
            return self.missing_session(request, name, session_id)
        turns = list(Checkpoint.objects.for_session(name, session_id).order_by("turn_index"))
        interrupted = self.interrupted_turn(latest)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": _("Session %(session)s") % {"session": session_id},
            "orchestrator_name": name,
            "session_id": session_id,
            "rows": self.turn_rows(turns),
            "first_turn": turns[0].turn_index,
            "last_pruned": turns[0].turn_index - 1,
            "first_saved": min(turn.saved_at for turn in turns),
            "last_saved": max(turn.saved_at for turn in turns),
            "interrupted": self.resume_panel(request, latest, interrupted) if interrupted else None,
            "resume_url": reverse("admin:warlock_ai_checkpoint_resume_turn"),
            "can_delete": self.has_delete_session_permission(request),
            "delete_url": self.session_url(name, session_id, "delete_session"),
            "can_fork": self.may(request, FORK_SESSION),
            "fork_url": self.session_url(name, session_id, "fork"),
        }
        return TemplateResponse(request, "admin/warlock_ai/checkpoint/session.html", context)
