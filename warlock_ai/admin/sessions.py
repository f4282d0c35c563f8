"""The sessions browser: ``Checkpoint`` rows grouped into orchestrator sessions.

The changelist shows one row per session (its latest turn); a session page lists every turn.
Checkpoints are append-only, so nothing here adds or changes a row, and nothing deletes a
single turn: the only deletion is of a whole session, behind ``warlock_ai.delete_checkpoint``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypedDict, cast
from urllib.parse import urlencode

from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.models import DELETION, LogEntry
from django.contrib.auth import get_permission_codename
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import router, transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_GET, require_http_methods

from ..models import Checkpoint, CheckpointQuerySet

if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations

    class _TurnCount(TypedDict):
        turn_count: int

    #: A session's latest turn as ``CheckpointQuerySet.latest_turns()`` gives it.
    SessionRow = WithAnnotations[Checkpoint, _TurnCount]
    _ModelAdmin = admin.ModelAdmin[Any]
else:
    _ModelAdmin = object


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
class CheckpointAdmin(RefuseMalformedSelection, admin.ModelAdmin):
    list_display = (
        "orchestrator_name",
        "session_link",
        "turns",
        "latest_turn",
        "last_saved",
        "route",
    )
    list_display_links = None
    list_filter = ("orchestrator_name",)
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
        # deleted whole, through delete_sessions and the session page.
        return False

    def has_delete_session_permission(self, request: HttpRequest) -> bool:
        opts = self.opts
        return request.user.has_perm(f"{opts.app_label}.{get_permission_codename('delete', opts)}")

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    # --- the changelist: one row per session ----------------------------------------------

    def get_queryset(self, request: HttpRequest) -> Any:
        # States can be large and the list does not show them.
        # Checkpoint's manager makes CheckpointQuerySets (ModelAdmin's type does not say so).
        queryset = cast(CheckpointQuerySet, super().get_queryset(request))
        return queryset.latest_turns().defer("state")

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

    def session_url(self, name: str, session_id: str, view: str = "session") -> str:
        query = urlencode({"orchestrator": name, "session": session_id})
        return f"{reverse(f'admin:warlock_ai_checkpoint_{view}')}?{query}"

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
    def session_key(data: Any) -> tuple[str, str]:
        return data.get("orchestrator", ""), data.get("session", "")

    def find_session(self, name: str, session_id: str) -> SessionRow | None:
        """The session's latest turn, annotated like a changelist row; ``None`` if unknown."""
        return Checkpoint.objects.for_session(name, session_id).latest_turns().first()

    def missing_session(self, request: HttpRequest, name: str, session_id: str) -> HttpResponse:
        message = _("Session “%(session)s” of orchestrator “%(name)s” does not exist.")
        values = {"session": session_id, "name": name}
        self.message_user(request, message % values, messages.WARNING)
        return HttpResponseRedirect(reverse("admin:warlock_ai_checkpoint_changelist"))

    @staticmethod
    def turn_rows(turns: Iterable[Checkpoint]) -> list[dict[str, Any]]:
        return [
            {
                "turn": turn,
                "route": format_route(turn.last_route),
                "state_json": format_json(turn.state),
                "state_keys": len(turn.state) if isinstance(turn.state, dict) else None,
            }
            for turn in turns
        ]

    def session_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        name, session_id = self.session_key(request.GET)
        turns = list(Checkpoint.objects.for_session(name, session_id).order_by("turn_index"))
        if not turns:
            return self.missing_session(request, name, session_id)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": _("Session %(session)s") % {"session": session_id},
            "orchestrator_name": name,
            "session_id": session_id,
            "rows": self.turn_rows(turns),
            "first_saved": min(turn.saved_at for turn in turns),
            "last_saved": max(turn.saved_at for turn in turns),
            "can_delete": self.has_delete_session_permission(request),
            "delete_url": self.session_url(name, session_id, "delete_session"),
        }
        return TemplateResponse(request, "admin/warlock_ai/checkpoint/session.html", context)

    # --- deleting whole sessions --------------------------------------------------------

    def delete_session_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_delete_session_permission(request):
            raise PermissionDenied
        data = request.POST if request.method == "POST" else request.GET
        name, session_id = self.session_key(data)
        latest = self.find_session(name, session_id)
        if latest is None:
            return self.missing_session(request, name, session_id)
        if request.method == "POST":
            self.delete_whole_sessions(request, [latest])
            return HttpResponseRedirect(reverse("admin:warlock_ai_checkpoint_changelist"))
        hidden = [("orchestrator", name), ("session", session_id)]
        cancel = self.session_url(name, session_id)
        return self.confirm_deletion(request, [latest], hidden, cancel)

    @admin.action(description=_("Delete selected sessions"), permissions=["delete_session"])
    def delete_sessions(self, request: HttpRequest, queryset: Any) -> HttpResponse | None:
        """``queryset`` holds the latest turn of each selected session (see get_queryset)."""
        sessions = list(queryset)
        if not sessions:
            # Tampered or stale ids: none of them is the latest turn of a session any more.
            message = _("None of the selected sessions exists any more; nothing was deleted.")
            self.message_user(request, message, messages.WARNING)
            return None
        if request.POST.get("post") == "yes":
            self.delete_whole_sessions(request, sessions)
            return None
        hidden = [("action", "delete_sessions"), ("post", "yes")]
        hidden += [(ACTION_CHECKBOX_NAME, str(s.pk)) for s in sessions]
        cancel = reverse("admin:warlock_ai_checkpoint_changelist")
        return self.confirm_deletion(request, sessions, hidden, cancel)

    def confirm_deletion(
        self,
        request: HttpRequest,
        sessions: Sequence[SessionRow],
        hidden: list[tuple[str, str]],
        cancel_url: str,
    ) -> HttpResponse:
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": _("Delete sessions"),
            "sessions": sessions,
            "turn_total": sum(s.turn_count for s in sessions),
            "hidden_fields": hidden,
            "cancel_url": cancel_url,
        }
        template = "admin/warlock_ai/checkpoint/delete_sessions_confirmation.html"
        return TemplateResponse(request, template, context)

    def delete_whole_sessions(self, request: HttpRequest, sessions: Sequence[Checkpoint]) -> None:
        """Every turn of each session, and one ``LogEntry`` per session, in one transaction."""
        with transaction.atomic(using=router.db_for_write(Checkpoint)):
            deleted = {
                s.pk: Checkpoint.objects.for_session(s.orchestrator_name, s.session_id).delete()[0]
                for s in sessions
            }
            self.log_session_deletions(request, sessions, deleted)
        turns = sum(deleted.values())
        message = ngettext(
            "Deleted %(count)d session (%(turns)d turns).",
            "Deleted %(count)d sessions (%(turns)d turns).",
            len(sessions),
        )
        self.message_user(request, message % {"count": len(sessions), "turns": turns})

    def log_session_deletions(
        self, request: HttpRequest, sessions: Sequence[Checkpoint], deleted: dict[int, int]
    ) -> None:
        # A session has no row of its own: each entry points at the session's latest turn
        # (object_id, now gone, as with any deletion) and names the session and its turns.
        content_type = ContentType.objects.get_for_model(Checkpoint)
        LogEntry.objects.bulk_create(
            LogEntry(
                # The admin serves logged-in staff only: the user's pk is never None.
                user_id=cast("int | str", request.user.pk),
                content_type=content_type,
                object_id=str(s.pk),
                object_repr=f"{s.orchestrator_name} / {s.session_id}"[:200],
                action_flag=DELETION,
                change_message=f"Deleted session “{s.session_id}” of orchestrator "
                f"“{s.orchestrator_name}”: {deleted[s.pk]} turns.",
            )
            for s in sessions
        )
