"""The cache browser: ``CacheEntry`` rows by namespace, read only, with two purges.

"Purge expired entries" and "purge a namespace" are buttons on the changelist (all namespaces,
or the one filtered) and list actions (the namespaces of the selected entries). Both lead to a
confirmation page counting what goes per namespace, need ``warlock_ai.delete_cacheentry``, and
write one ``LogEntry`` per namespace purged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlencode

from django.contrib import admin, messages
from django.contrib.admin.models import DELETION, LogEntry
from django.contrib.admin.views.main import ChangeList
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied
from django.db import models, router, transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import formats, timezone
from django.utils.html import format_html
from django.utils.timesince import timesince
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_http_methods

from ..models import CacheEntry
from .sessions import RefuseMalformedSelection, format_json

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise

PURGES = {
    "expired": {
        "title": _("Purge expired cache entries"),
        "intro": _("These expired entries will be deleted:"),
    },
    "namespace": {
        "title": _("Purge cache namespaces"),
        "intro": _("Every entry of these namespaces, live or expired, will be deleted:"),
    },
}


def purgeable(kind: str, namespaces: list[str]) -> Any:
    """The entries a purge of ``kind`` deletes: of ``namespaces``, or of all if empty."""
    entries = CacheEntry.objects.expired() if kind == "expired" else CacheEntry.objects.all()
    return entries.filter(namespace__in=namespaces) if namespaces else entries


def namespaces_of(entries: Any) -> list[str]:
    return list(entries.order_by("namespace").values_list("namespace", flat=True).distinct())


def unknown_namespaces(names: list[str]) -> list[str]:
    """The ``names`` no cache entry has (a tampered or stale request)."""
    if not names:
        return []
    return sorted(set(names) - set(namespaces_of(CacheEntry.objects.filter(namespace__in=names))))


def namespace_counts(entries: Any) -> list[tuple[str, int]]:
    """``(namespace, number of entries)`` pairs of ``entries``, by namespace."""
    counted = entries.order_by("namespace").values_list("namespace").annotate(models.Count("pk"))
    return list(counted)


def short_datetime(value: Any) -> str:
    """The locale's short date and time on one line, so an "expired" badge goes below it."""
    text = formats.date_format(timezone.localtime(value), "SHORT_DATETIME_FORMAT")
    return format_html('<span class="warlock-nowrap">{}</span>', text)


class ExpiredFilter(admin.SimpleListFilter):
    title = _("expired")
    parameter_name = "expired"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [("yes", _("Yes")), ("no", _("No"))]

    def queryset(self, request: HttpRequest, queryset: Any) -> Any:
        if self.value() == "yes":
            return queryset.expired()
        if self.value() == "no":
            return queryset.live()
        return queryset


class CacheEntryChangeList(ChangeList):
    def get_queryset(self, request: HttpRequest, exclude_parameters: Any = None) -> Any:
        # Embeddings run to thousands of floats and values to any size: the list shows neither.
        return super().get_queryset(request, exclude_parameters).defer("embedding", "value")


@admin.register(CacheEntry)
class CacheEntryAdmin(RefuseMalformedSelection, admin.ModelAdmin):
    list_display = ("namespace", "key", "scope", "hits", "age", "expiry")
    list_display_links = ("key",)
    list_filter = ("namespace", ExpiredFilter)
    search_fields = ("key", "scope")
    ordering = ("namespace", "key")
    fields = (
        "namespace",
        "key",
        "scope",
        "hits",
        "expiry",
        "created_at",
        "formatted_value",
        "embedding_size",
    )
    readonly_fields = ("expiry", "formatted_value", "embedding_size")
    actions = ["purge_expired_of_selected", "purge_namespaces_of_selected"]

    class Media:
        css = {"all": ("warlock_ai/sessions.css",)}

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return CacheEntryChangeList

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        extra = {
            "title": _("Cache entries"),
            "can_purge": self.has_delete_permission(request),
            "current_namespace": request.GET.get("namespace", ""),
            **(extra_context or {}),
        }
        return super().changelist_view(request, extra)

    # --- columns and fields -----------------------------------------------------------------

    @admin.display(description=_("expires at"), ordering="expires_at")
    def expiry(self, obj: CacheEntry) -> StrOrPromise:
        if obj.expires_at is None:
            return _("never")
        if obj.expires_at < timezone.now():
            badge = '{} <span class="warlock-badge warlock-expired">{}</span>'
            return format_html(badge, short_datetime(obj.expires_at), _("expired"))
        return short_datetime(obj.expires_at)

    @admin.display(description=_("age"), ordering="created_at")
    def age(self, obj: CacheEntry) -> str:
        """How long ago the entry was written ("3 hours, 5 minutes"), its date on hover."""
        written = formats.date_format(timezone.localtime(obj.created_at), "SHORT_DATETIME_FORMAT")
        return format_html(
            '<span class="warlock-nowrap" title="{}">{}</span>',
            written,
            timesince(obj.created_at, depth=1),
        )

    @admin.display(description=_("value"))
    def formatted_value(self, obj: CacheEntry) -> str:
        return format_html('<pre class="warlock-json">{}</pre>', format_json(obj.value))

    @admin.display(description=_("embedding"))
    def embedding_size(self, obj: CacheEntry) -> StrOrPromise:
        if obj.embedding is None:
            return _("none")
        return _("%(count)d dimensions") % {"count": len(obj.embedding)}

    # --- purges ---------------------------------------------------------------------------

    def get_urls(self) -> list[Any]:
        wrap = self.admin_site.admin_view
        methods = require_http_methods(["GET", "POST"])
        own = [
            path(
                "purge-expired/",
                wrap(methods(self.purge_expired_view)),
                name="warlock_ai_cacheentry_purge_expired",
            ),
            path(
                "purge-namespace/",
                wrap(methods(self.purge_namespace_view)),
                name="warlock_ai_cacheentry_purge_namespace",
            ),
        ]
        return own + super().get_urls()

    def purge_expired_view(self, request: HttpRequest) -> HttpResponse:
        """Expired entries of the namespaces given, or of every namespace if none is."""
        return self.purge_view(request, "expired", self.requested_namespaces(request))

    def purge_namespace_view(self, request: HttpRequest) -> HttpResponse:
        namespaces = self.requested_namespaces(request)
        if not namespaces and request.method == "GET":
            return self.choose_namespace(request)
        if not namespaces:
            return self.refuse(request, _("Choose a namespace to purge; nothing was purged."))
        return self.purge_view(request, "namespace", namespaces)

    @staticmethod
    def requested_namespaces(request: HttpRequest) -> list[str]:
        data = request.POST if request.method == "POST" else request.GET
        return sorted({name for name in data.getlist("namespace") if name})

    def purge_view(self, request: HttpRequest, kind: str, namespaces: list[str]) -> HttpResponse:
        if not self.has_delete_permission(request):
            raise PermissionDenied
        unknown = unknown_namespaces(namespaces)
        if unknown:
            message = _("No namespace %(names)s in the cache; nothing was purged.")
            return self.refuse(request, message % {"names": ", ".join(unknown)})
        entries = purgeable(kind, namespaces)
        if request.method == "POST":
            self.purge(request, kind, entries)
            return HttpResponseRedirect(self.changelist_url())
        return self.confirm_purge(request, kind, entries, namespaces)

    def refuse(self, request: HttpRequest, message: StrOrPromise) -> HttpResponse:
        self.message_user(request, message, messages.ERROR)
        return HttpResponseRedirect(self.changelist_url())

    def changelist_url(self) -> str:
        return reverse("admin:warlock_ai_cacheentry_changelist")

    def page(self, request: HttpRequest, template: str, **context: Any) -> HttpResponse:
        context = {**self.admin_site.each_context(request), "opts": self.opts, **context}
        return TemplateResponse(request, f"admin/warlock_ai/cacheentry/{template}", context)

    def choose_namespace(self, request: HttpRequest) -> HttpResponse:
        if not self.has_delete_permission(request):
            raise PermissionDenied
        counts = namespace_counts(CacheEntry.objects.all())
        return self.page(
            request,
            "choose_namespace.html",
            title=PURGES["namespace"]["title"],
            counts=counts,
        )

    def confirm_purge(
        self, request: HttpRequest, kind: str, entries: Any, namespaces: list[str]
    ) -> HttpResponse:
        counts = namespace_counts(entries)
        return self.page(
            request,
            "purge_confirmation.html",
            title=PURGES[kind]["title"],
            intro=PURGES[kind]["intro"],
            counts=counts,
            total=sum(count for _name, count in counts),
            namespaces=namespaces,
        )

    def purge(self, request: HttpRequest, kind: str, entries: Any) -> None:
        """Delete ``entries`` namespace by namespace, logging each, in one transaction."""
        with transaction.atomic(using=router.db_for_write(CacheEntry)):
            deleted = {
                name: entries.filter(namespace=name).delete()[0] for name in namespaces_of(entries)
            }
            self.log_purges(request, kind, deleted)
        total = sum(deleted.values())
        if not total:
            self.message_user(request, _("Nothing to purge."), messages.WARNING)
            return
        message = _("Purged %(total)d cache entries (namespaces: %(names)s).")
        self.message_user(request, message % {"total": total, "names": ", ".join(deleted)})

    def log_purges(self, request: HttpRequest, kind: str, deleted: dict[str, int]) -> None:
        # A purge removes rows that have no single object to point at: each entry is logged
        # against the CacheEntry content type, without object_id, naming namespace and count.
        content_type = ContentType.objects.get_for_model(CacheEntry)
        what = "expired entries" if kind == "expired" else "entries"
        LogEntry.objects.bulk_create(
            LogEntry(
                # The admin serves logged-in staff only: the user's pk is never None.
                user_id=cast("int | str", request.user.pk),
                content_type=content_type,
                object_id=None,
                object_repr=f"namespace {name}: {count} entries"[:200],
                action_flag=DELETION,
                change_message=f"Purged {count} {what} of namespace “{name}”.",
            )
            for name, count in deleted.items()
            if count
        )

    # --- list actions: the namespaces of the selected entries -----------------------------------

    def redirect_with_namespaces(self, view: str, queryset: Any) -> HttpResponse:
        query = urlencode([("namespace", name) for name in namespaces_of(queryset)])
        return HttpResponseRedirect(f"{reverse(f'admin:warlock_ai_cacheentry_{view}')}?{query}")

    @admin.action(
        description=_("Purge expired entries of the selected namespaces"),
        permissions=["delete"],
    )
    def purge_expired_of_selected(self, request: HttpRequest, queryset: Any) -> HttpResponse:
        return self.redirect_with_namespaces("purge_expired", queryset)

    @admin.action(
        description=_("Purge the selected namespaces entirely"),
        permissions=["delete"],
    )
    def purge_namespaces_of_selected(self, request: HttpRequest, queryset: Any) -> HttpResponse:
        return self.redirect_with_namespaces("purge_namespace", queryset)
