"""Background deliveries (``Delivery``): what Django's tasks framework was given to run, read
only. Each row is one run, resume or turn: its state, the process running it and when it was
last seen, its attempts and outcome. ``drain_runs --enqueue`` is what puts back a delivery
whose worker died; the run itself is on the runs page.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from ..models import Delivery
from .sessions import format_json


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = ("key", "task", "state", "attempts", "owner", "enqueued_at")
    list_filter = ("state", "task", "queue")
    search_fields = ("key", "owner")
    ordering = ("-enqueued_at",)
    fields = (
        "key",
        "task",
        "state",
        "backend",
        "queue",
        "result_id",
        "owner",
        "attempts",
        "enqueued_at",
        "started_at",
        "seen_at",
        "finished_at",
        "formatted_arguments",
        "formatted_notes",
        "formatted_outcome",
    )
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # prune_runs removes settled ones; a live one is its run's only record

    @admin.display(description=_("arguments"))
    def formatted_arguments(self, obj: Delivery) -> str:
        return format_html("<pre>{}</pre>", format_json(obj.arguments))

    @admin.display(description=_("notes"))
    def formatted_notes(self, obj: Delivery) -> str:
        return format_html("<pre>{}</pre>", format_json(obj.notes))

    @admin.display(description=_("outcome"))
    def formatted_outcome(self, obj: Delivery) -> str:
        return format_html("<pre>{}</pre>", format_json(obj.outcome))
