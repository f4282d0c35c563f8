"""The runs admin (``Snapshot``): what is stuck, where and why, and the five fixes.

Read-only as a model admin: rows change only through the run actions (resume,
force-resume, discard, cancel, migrate), each behind its own permission, each logged.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.models import CHANGE, DELETION
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.timesince import timesince

from .. import operations, presentation
from ..audit import log_action
from ..core.errors import AIError
from ..models import Snapshot, snapshot_rows
from .actions import ACTIONS, RunAction
from .dates import drill_down
from .detail import bulk_migrate_form, detail_context, migrate_form
from .filters import DriftFilter, FlowFilter, LeaseFilter

_VERDICT_LABELS = {
    presentation.CURRENT: "current",
    presentation.DRIFTED: "drifted",
    presentation.UNREGISTERED: "not registered",
}


def _confirm_row(spec: RunAction, row: Snapshot) -> tuple[Snapshot, str | None, Any]:
    lease = presentation.lease_of(row)
    return row, spec.unavailable(row, lease), lease


def _drift_lines(row: Snapshot) -> list[str]:
    if presentation.unreadable(row):
        return []
    diff = presentation.drift_diff(row)
    return diff.lines() if diff is not None else []


def _commands_message(spec: RunAction, commands: list[str]) -> str:
    """Nothing ran: why, and the command of each run, one per line, to copy."""
    runs = "1 run" if len(commands) == 1 else f"{len(commands)} runs"
    lines = format_html_join(
        "", '<br><code class="warlock-command">{}</code>', ((c,) for c in commands)
    )
    return format_html(
        "{}: nothing was run or changed for {} ({}). Run on a server:{}",
        spec.label,
        runs,
        operations.NO_WORKER,
        lines,
    )


def _bulk(spec: RunAction) -> Any:
    def action(modeladmin: SnapshotAdmin, request: Any, queryset: Any) -> Any:
        return modeladmin.run_bulk(request, spec, queryset)

    action.__name__ = f"{spec.name.replace('-', '_')}_selected"
    action.short_description = f"{spec.label} selected runs"  # type: ignore[attr-defined]
    action.allowed_permissions = (spec.permission,)  # type: ignore[attr-defined]
    return action


@admin.register(Snapshot)
class SnapshotAdmin(admin.ModelAdmin):
    list_display = ["run_id", "flow", "status_badge", "position", "age", "lease", "definition"]
    list_filter = ["status", "kind", FlowFilter, DriftFilter, LeaseFilter]
    search_fields = ["run_id"]
    search_help_text = "A run id or its beginning (case-sensitive)."
    date_hierarchy = "saved_at"
    ordering = ["-saved_at"]
    list_per_page = 50
    # The exact count of an unfiltered 100k-row table costs more than the page itself.
    show_full_result_count = False
    actions = [_bulk(spec) for spec in ACTIONS.values()]
    fieldsets = [
        (None, {"fields": [("run_id", "flow", "status_badge"), ("position", "age", "duration")]}),
        (
            "Timing and definition",
            {"fields": [("started_at", "saved_at", "finished_at"), ("signature", "definition")]},
        ),
        ("Lease and cancellation", {"fields": ["lease", ("cancel_requested_at", "cancel_reason")]}),
    ]
    readonly_fields = ["flow", "status_badge", "position", "age", "duration", "lease", "definition"]

    class Media:
        css = {"all": ["warlock_ai/admin.css"]}

    # Rows are written by runs, never by hand.
    def has_add_permission(self, request: Any) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: Any, obj: Any = None) -> bool:
        return False  # discard instead: it refuses a run a live worker holds

    def has_resume_snapshot_permission(self, request: Any) -> bool:
        return request.user.has_perm(ACTIONS["resume"].perm)

    def has_force_resume_snapshot_permission(self, request: Any) -> bool:
        return request.user.has_perm(ACTIONS["force-resume"].perm)

    def has_discard_snapshot_permission(self, request: Any) -> bool:
        return request.user.has_perm(ACTIONS["discard"].perm)

    def has_cancel_snapshot_permission(self, request: Any) -> bool:
        return request.user.has_perm(ACTIONS["cancel"].perm)

    def has_migrate_snapshot_permission(self, request: Any) -> bool:
        return request.user.has_perm(ACTIONS["migrate"].perm)

    def get_search_results(self, request: Any, queryset: Any, search_term: str) -> Any:
        # Case-sensitive like run ids; Django's default would compare UPPER(run_id) twice.
        term = search_term.strip()
        return (queryset.filter(run_id__startswith=term) if term else queryset), False

    def get_queryset(self, request: Any) -> Any:
        queryset = snapshot_rows()
        match = getattr(request, "resolver_match", None)
        if match and match.url_name == "warlock_ai_snapshot_changelist":
            queryset = drill_down(queryset.summaries())
        return queryset

    # Columns and read-only fields.
    @admin.display(description="flow", ordering="name")
    def flow(self, row: Snapshot) -> str:
        version = f" v{row.version}" if row.version else ""
        return format_html('{}{} <span class="warlock-kind">{}</span>', row.name, version, row.kind)

    @admin.display(description="status", ordering="status")
    def status_badge(self, row: Snapshot) -> str:
        label = row.get_status_display()
        badge = format_html('<span class="warlock-status warlock-{}">{}</span>', row.status, label)
        problem = presentation.unreadable(row)
        if problem is None:
            return badge
        return format_html(
            '{} <span class="warlock-unreadable" title="{}">unreadable</span>', badge, problem
        )

    @admin.display(description="next step")
    def position(self, row: Snapshot) -> str:
        return presentation.position(row)

    @admin.display(description="last saved", ordering="saved_at")
    def age(self, row: Snapshot) -> str:
        return f"{timesince(row.saved_at)} ago"

    @admin.display(description="duration")
    def duration(self, row: Snapshot) -> str:
        end = row.finished_at or row.saved_at
        return f"{(end - row.started_at).total_seconds():.1f} s"

    @admin.display(description="lease")
    def lease(self, row: Snapshot) -> str:
        lease = presentation.lease_of(row)
        if lease.state == "none":
            return "—"
        return format_html(
            '<span class="warlock-lease warlock-lease-{}" title="{}">{}</span> '
            '<span class="warlock-quiet">{}</span>',
            lease.state,
            lease.describe(),
            lease.state,
            lease.when(),
        )

    @admin.display(description="definition")
    def definition(self, row: Snapshot) -> str:
        verdict = presentation.verdict(row)
        return format_html(
            '<span class="warlock-verdict warlock-{}">{}</span>', verdict, _VERDICT_LABELS[verdict]
        )

    def changelist_view(self, request: Any, extra_context: Any = None) -> Any:
        extra_context = {"title": "Runs", **(extra_context or {})}
        return super().changelist_view(request, extra_context)

    # The detail page.
    def render_change_form(
        self,
        request: Any,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Any = None,
    ) -> Any:
        # The row Django already fetched for the page: no second query for the panels.
        if obj is not None:
            context.update(detail_context(request, obj, self))
        return super().render_change_form(request, context, add, change, form_url, obj)

    def get_urls(self) -> list[Any]:
        view = self.admin_site.admin_view(self.run_action_view)
        name = f"{self.opts.app_label}_{self.opts.model_name}_action"
        return [
            path("<path:object_id>/actions/<slug:action>/", view, name=name),
            *super().get_urls(),
        ]

    def action_url(self, row: Snapshot, spec: RunAction) -> str:
        name = f"admin:{self.opts.app_label}_{self.opts.model_name}_action"
        return reverse(name, args=[quote(row.pk), spec.name], current_app=self.admin_site.name)

    def detail_url(self, run_id: str) -> str:
        name = f"admin:{self.opts.app_label}_{self.opts.model_name}_change"
        return reverse(name, args=[quote(run_id)], current_app=self.admin_site.name)

    def changelist_url(self) -> str:
        name = f"admin:{self.opts.app_label}_{self.opts.model_name}_changelist"
        return reverse(name, current_app=self.admin_site.name)

    # The run actions: one run from its page, or many from the list.
    def run_action_view(self, request: Any, object_id: str, action: str) -> Any:
        spec = ACTIONS.get(action)
        if spec is None:
            raise Http404(f"no run action {action!r}; known: {', '.join(ACTIONS)}")
        self._require(request, spec)
        row = self.get_object(request, unquote(object_id))
        if row is None:
            # Django's own "does not exist" redirect: a private ModelAdmin method django-stubs
            # does not declare.
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)  # type: ignore[attr-defined]
        form = self._form(spec, [row], request)
        if form is None:
            return HttpResponseRedirect(self.detail_url(row.run_id))
        if form.is_bound and form.is_valid():
            outcomes = self._perform(request, spec, [row], form)
            gone = spec.deletes and not form.cleaned_data.get("restart")
            if gone and outcomes:
                return HttpResponseRedirect(self.changelist_url())
            return HttpResponseRedirect(self.detail_url(row.run_id))
        return self._confirmation(request, spec, [row], form, single=True)

    def run_bulk(self, request: Any, spec: RunAction, queryset: Any) -> Any:
        self._require(request, spec)
        rows = list(queryset.defer(None))
        if not rows:
            self.message_user(
                request, "None of the selected runs exist; nothing changed.", messages.ERROR
            )
            return None
        form = self._form(spec, rows, request)
        if form is None:
            return None
        if not spec.confirm or (form.is_bound and form.is_valid()):
            self._perform(request, spec, rows, form)
            return None
        return self._confirmation(request, spec, rows, form, single=False)

    def _require(self, request: Any, spec: RunAction) -> None:
        if not request.user.has_perm(spec.perm):
            raise PermissionDenied(f"{spec.label.lower()} needs the permission {spec.perm}")

    def _form(self, spec: RunAction, rows: list[Snapshot], request: Any) -> Any:
        data = request.POST if request.method == "POST" and request.POST.get("post") else None
        if spec.name != "migrate":
            return spec.form(data)
        unreadable = [row.run_id for row in rows if presentation.unreadable(row)]
        if unreadable:
            message = f"Cannot migrate {', '.join(unreadable)}: the snapshot cannot be read."
            self.message_user(request, message, messages.ERROR)
            return None
        kinds = sorted({row.kind for row in rows} - {"workflow"})
        if kinds:
            others = " and ".join(kinds)
            message = f"Only workflow runs can be migrated; {others} runs have no step records."
            self.message_user(request, message, messages.ERROR)
            return None
        if len(rows) == 1:
            return migrate_form(rows[0], data)
        form, problem = bulk_migrate_form(rows, data)
        if problem:
            self.message_user(request, problem, messages.ERROR)
        return form

    def _perform(self, request: Any, spec: RunAction, rows: list[Snapshot], form: Any) -> list:
        done, commands = [], []
        for row in rows:
            try:
                outcome = spec.perform(row, form)
            except AIError as exc:
                self.message_user(request, f"{row.run_id}: {exc.message}", messages.ERROR)
                continue
            if outcome.command is not None:  # nothing happened: nothing to log
                commands.append(outcome.command)
                continue
            level = messages.SUCCESS if outcome.ok else messages.WARNING
            self.message_user(request, f"{spec.label}: {outcome.message}", level)
            deleted = spec.deletes and not form.cleaned_data.get("restart")
            self._log(request, spec, row, outcome, deleted)
            done.append(outcome)
        if commands:
            self.message_user(request, _commands_message(spec, commands), messages.WARNING)
        return done

    def _log(
        self, request: Any, spec: RunAction, row: Snapshot, outcome: Any, deleted: bool
    ) -> None:
        flag = DELETION if deleted else CHANGE
        log_action(request.user, row, flag, f"{spec.label}: {outcome.message}")

    def _confirmation(
        self, request: Any, spec: RunAction, rows: list[Snapshot], form: Any, single: bool
    ) -> Any:
        context = {
            **self.admin_site.each_context(request),
            "title": f"{spec.label} {'run' if single else f'{len(rows)} runs'}",
            "opts": self.opts,
            "spec": spec,
            "rows": [_confirm_row(spec, row) for row in rows],
            "drift_lines": _drift_lines(rows[0]) if single else [],
            "form": form,
            "single": single,
            "post_url": self.action_url(rows[0], spec) if single else "",
            "detail_url": self.detail_url(rows[0].run_id) if single else "",
            "action_name": "" if single else _bulk(spec).__name__,
            "action_checkbox_name": ACTION_CHECKBOX_NAME,
            "media": self.media + (form.media if form is not None else forms.Media()),
        }
        request.current_app = self.admin_site.name
        template = "admin/warlock_ai/snapshot/confirm_action.html"
        return TemplateResponse(request, template, context)
