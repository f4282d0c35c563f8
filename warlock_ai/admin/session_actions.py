"""The sessions admin's three actions: resume an interrupted turn, fork a session, discard a
session. Each needs its own permission, changes data on POST only (behind Django's CSRF
check), answers with a message, never a server error, and is written to ``LogEntry``. The
work itself is in ``warlock_ai.sessions``, shared with the commands and the API.

==============  ===================================  ======================================
action          permission                           what it does
==============  ===================================  ======================================
resume turn     ``warlock_ai.resume_snapshot``       finish the interrupted turn (as the
                                                     runs admin's resume: on a django-rq
                                                     worker, else the command to run)
fork            ``warlock_ai.add_checkpoint``        copy turns up to N into a new session
discard         ``warlock_ai.delete_checkpoint``     delete every turn and turn snapshot
==============  ===================================  ======================================
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.models import ADDITION, CHANGE, DELETION
from django.contrib.admin.utils import quote
from django.core.exceptions import PermissionDenied
from django.db import router
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from .. import operations, presentation
from .. import sessions as session_ops
from ..audit import log_action
from ..core.errors import AIError, SessionExistsError
from ..models import Checkpoint, Snapshot
from ..operations import runs_inline
from ..registry import registry
from ..stores.orm_checkpoints import DatabaseCheckpointStore
from .forms import ForkForm

if TYPE_CHECKING:
    _ModelAdmin = admin.ModelAdmin[Any]
else:
    _ModelAdmin = object

RESUME_TURN = "warlock_ai.resume_snapshot"
FORK_SESSION = "warlock_ai.add_checkpoint"
DISCARD_SESSION = "warlock_ai.delete_checkpoint"


def admin_checkpoints() -> DatabaseCheckpointStore:
    """The checkpoint store of the rows the sessions admin shows (the ``Checkpoint`` table)."""
    return DatabaseCheckpointStore(using=router.db_for_write(Checkpoint))


def resume_unavailable(latest: Any, turn: Snapshot) -> str | None:
    """Why the interrupted ``turn`` of the session whose latest row is ``latest`` cannot be
    resumed from the admin now, or None."""
    problem = presentation.unreadable(turn)
    if problem is not None:
        return f"its snapshot cannot be read ({problem})"
    name = latest.orchestrator_name
    orchestrator = registry.lookup("orchestrator", name)
    if orchestrator is None:
        return f'orchestrator "{name}" is not registered in this project'
    lease = presentation.lease_of(turn)
    if lease.blocks:
        return f"a worker is running it now: its lease is {lease.describe()}"
    if orchestrator.signature != latest.signature:
        command = operations.resume_turn_command(name, latest.session_id, force=True)
        return (
            f'orchestrator "{name}" changed since this session was saved (signature '
            f"{latest.signature}, now {orchestrator.signature}): discard the session, or run "
            f"{command} on a server"
        )
    return None


def _log(request: HttpRequest, obj: Any, flag: int, message: str, repr_: str = "") -> None:
    log_action(request.user, obj, flag, message, repr_)


class SessionActions(_ModelAdmin):
    """The actions' views, and finding the session a request names; mixed into
    ``CheckpointAdmin``."""

    # --- the session a request names -----------------------------------------------------

    @staticmethod
    def session_key(data: Any) -> tuple[str, str]:
        return data.get("orchestrator", ""), data.get("session", "")

    def find_session(self, name: str, session_id: str) -> Any | None:
        """The session's latest turn, annotated like a changelist row (``turn_count``,
        ``interrupted_run``); ``None`` if unknown."""
        sessions = Checkpoint.objects.for_session(name, session_id).latest_turns()
        return sessions.with_interrupted_turn().first()

    def missing_session(self, request: HttpRequest, name: str, session_id: str) -> HttpResponse:
        message = _("Session “%(session)s” of orchestrator “%(name)s” does not exist.")
        values = {"session": session_id, "name": name}
        self.message_user(request, message % values, messages.WARNING)
        return HttpResponseRedirect(reverse("admin:warlock_ai_checkpoint_changelist"))

    def session_url(self, name: str, session_id: str, view: str = "session") -> str:
        query = urlencode({"orchestrator": name, "session": session_id})
        return f"{reverse(f'admin:warlock_ai_checkpoint_{view}')}?{query}"

    # --- permissions ---------------------------------------------------------------------

    @staticmethod
    def may(request: HttpRequest, permission: str) -> bool:
        return request.user.has_perm(permission)

    def require(self, request: HttpRequest, permission: str) -> None:
        if not (self.has_view_permission(request) and self.may(request, permission)):
            raise PermissionDenied(f"this needs the permission {permission}")

    def has_delete_session_permission(self, request: HttpRequest) -> bool:
        return self.may(request, DISCARD_SESSION)

    # --- resume an interrupted turn ------------------------------------------------------

    def interrupted_turn(self, latest: Any) -> Snapshot | None:
        """The ``Snapshot`` row of the session's interrupted turn (see
        ``CheckpointQuerySet.with_interrupted_turn``), or None."""
        run_id = getattr(latest, "interrupted_run", None)
        return Snapshot.objects.filter(pk=run_id).first() if run_id else None

    def resume_turn_view(self, request: HttpRequest) -> HttpResponse:
        self.require(request, RESUME_TURN)
        name, session_id = self.session_key(request.POST)
        latest = self.find_session(name, session_id)
        if latest is None:
            return self.missing_session(request, name, session_id)
        back = HttpResponseRedirect(self.session_url(name, session_id))
        turn = self.interrupted_turn(latest)
        if turn is None:
            message = _("Session “%(session)s” has no interrupted turn: nothing to resume.")
            self.message_user(request, message % {"session": session_id}, messages.WARNING)
            return back
        try:
            outcome = operations.start_resume_turn(name, session_id, inline=runs_inline())
        except AIError as exc:
            self.message_user(request, f"Resume: {exc.message}", messages.ERROR)
            return back
        if outcome.command is not None:  # nothing happened: nothing to log
            text = format_html(
                'Resume: nothing was run or changed ({}). Run on a server:<br><code class="'
                'warlock-command">{}</code>',
                operations.NO_WORKER,
                outcome.command,
            )
            self.message_user(request, text, messages.WARNING)
            return back
        level = messages.SUCCESS if outcome.ok else messages.WARNING
        self.message_user(request, f"Resume: {outcome.message}", level)
        _log(request, turn, CHANGE, f"Resume: {outcome.message}")
        return back

    def resume_panel(self, request: HttpRequest, latest: Any, turn: Snapshot) -> dict[str, Any]:
        """What the session page says about its interrupted turn and its Resume button."""
        name = latest.orchestrator_name
        blocked = resume_unavailable(latest, turn)
        allowed = self.may(request, RESUME_TURN)
        no_worker = operations.run_placement(inline=runs_inline()) == operations.COMMAND
        command = ""
        if allowed and blocked is None and no_worker:
            command = operations.resume_turn_command(name, latest.session_id)
        return {
            "row": turn,
            "turn_index": latest.turn_index + 1,
            "lease": presentation.lease_of(turn),
            "position": presentation.position(turn),
            "run_url": reverse("admin:warlock_ai_snapshot_change", args=[quote(turn.pk)]),
            "can_resume": allowed,
            "blocked": blocked,
            "command": command,
            "no_worker": operations.NO_WORKER,
        }

    # --- fork ----------------------------------------------------------------------------

    def fork_view(self, request: HttpRequest) -> HttpResponse:
        self.require(request, FORK_SESSION)
        data = request.POST if request.method == "POST" else request.GET
        name, session_id = self.session_key(data)
        turns = list(
            Checkpoint.objects.for_session(name, session_id)
            .order_by("turn_index")
            .values_list("turn_index", flat=True)
        )
        if not turns:
            return self.missing_session(request, name, session_id)
        initial = {"turn": request.GET.get("turn") or turns[-1]}
        bound = request.POST if request.method == "POST" else None
        form = ForkForm(
            bound, turns=turns, orchestrator_name=name, store=admin_checkpoints(), initial=initial
        )
        if form.is_bound and form.is_valid():
            done = self.fork(request, name, session_id, form)
            if done is not None:
                return HttpResponseRedirect(self.session_url(name, done.new_session_id))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": _("Fork session %(session)s") % {"session": session_id},
            "orchestrator_name": name,
            "session_id": session_id,
            "form": form,
            "first_turn": turns[0],
            "last_turn": turns[-1],
            "cancel_url": self.session_url(name, session_id),
        }
        return TemplateResponse(request, "admin/warlock_ai/checkpoint/fork.html", context)

    def fork(
        self, request: HttpRequest, name: str, session_id: str, form: ForkForm
    ) -> operations.ForkOutcome | None:
        """Copy the turns; a refusal (the new id was taken meanwhile, ...) becomes a form
        error and None."""
        new_session_id, turn = form.cleaned_data["new_session_id"], form.cleaned_data["turn"]
        try:
            outcome = operations.fork_session(
                name, session_id, turn, new_session_id, store=form.store
            )
        except SessionExistsError as exc:
            form.add_error("new_session_id", exc.message)
            return None
        except AIError as exc:
            form.add_error(None, exc.message)
            return None
        self.message_user(request, f"Fork: {outcome.message}", messages.SUCCESS)
        latest = Checkpoint.objects.for_session(name, new_session_id).order_by("-turn_index")[0]
        _log(request, latest, ADDITION, f"Fork: {outcome.message}", f"{name} / {new_session_id}")
        return outcome

    # --- discard -------------------------------------------------------------------------

    def delete_session_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_delete_session_permission(request):
            raise PermissionDenied
        data = request.POST if request.method == "POST" else request.GET
        name, session_id = self.session_key(data)
        latest = self.find_session(name, session_id)
        if latest is None:
            return self.missing_session(request, name, session_id)
        if request.method == "POST":
            if self.discard_sessions(request, [latest]):
                return HttpResponseRedirect(reverse("admin:warlock_ai_checkpoint_changelist"))
            return HttpResponseRedirect(self.session_url(name, session_id))
        hidden = [("orchestrator", name), ("session", session_id)]
        cancel = self.session_url(name, session_id)
        return self.confirm_deletion(request, [latest], hidden, cancel)

    @admin.action(description=_("Discard selected sessions"), permissions=["delete_session"])
    def delete_sessions(self, request: HttpRequest, queryset: Any) -> HttpResponse | None:
        """``queryset`` holds the latest turn of each selected session (see get_queryset)."""
        sessions = list(queryset)
        if not sessions:
            # Tampered or stale ids: none of them is the latest turn of a session any more.
            message = _("None of the selected sessions exists any more; nothing was discarded.")
            self.message_user(request, message, messages.WARNING)
            return None
        if request.POST.get("post") == "yes":
            self.discard_sessions(request, sessions)
            return None
        hidden = [("action", "delete_sessions"), ("post", "yes")]
        hidden += [(ACTION_CHECKBOX_NAME, str(s.pk)) for s in sessions]
        cancel = reverse("admin:warlock_ai_checkpoint_changelist")
        return self.confirm_deletion(request, sessions, hidden, cancel)

    def confirm_deletion(
        self,
        request: HttpRequest,
        sessions: Sequence[Any],
        hidden: list[tuple[str, str]],
        cancel_url: str,
    ) -> HttpResponse:
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": _("Discard sessions"),
            "sessions": sessions,
            "turn_total": sum(s.turn_count for s in sessions),
            "interrupted_total": sum(1 for s in sessions if s.interrupted_run),
            "hidden_fields": hidden,
            "cancel_url": cancel_url,
        }
        template = "admin/warlock_ai/checkpoint/delete_sessions_confirmation.html"
        return TemplateResponse(request, template, context)

    def discard_sessions(self, request: HttpRequest, sessions: Sequence[Any]) -> int:
        """Discard each session (its rows and turn snapshots), log each one discarded, and
        say how many; a session that cannot be discarded now is named with the reason."""
        turns = snapshots = done = 0
        for session in sessions:
            name, session_id = session.orchestrator_name, session.session_id
            try:
                removed = session_ops.discard_session(name, session_id, store=admin_checkpoints())
            except AIError as exc:
                self.message_user(request, f"{name} / {session_id}: {exc.message}", messages.ERROR)
                continue
            # The rows counted when the page was drawn; anything more was a turn snapshot.
            rows = min(removed, session.turn_count)
            turns, snapshots, done = turns + rows, snapshots + removed - rows, done + 1
            what = ngettext("%(count)d turn", "%(count)d turns", rows) % {"count": rows}
            if removed > rows:
                what += f", {_snapshots(removed - rows)}"
            message = f"Discarded session “{session_id}” of orchestrator “{name}”: {what}."
            _log(request, session, DELETION, message, f"{name} / {session_id}")
        if done:
            self.message_user(request, _discarded(done, turns, snapshots))
        return done


def _snapshots(count: int) -> str:
    return ngettext("%(count)d turn snapshot", "%(count)d turn snapshots", count) % {"count": count}


def _discarded(sessions: int, turns: int, snapshots: int) -> str:
    what = ngettext("%(count)d turn", "%(count)d turns", turns) % {"count": turns}
    if snapshots:
        what += f", {_snapshots(snapshots)}"
    message = ngettext(
        "Discarded %(count)d session (%(what)s).",
        "Discarded %(count)d sessions (%(what)s).",
        sessions,
    )
    return message % {"count": sessions, "what": what}
