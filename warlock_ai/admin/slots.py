"""Concurrency slots (``ConcurrencySlot``): which runs hold the slots of each limit of
``WARLOCK_AI["CONCURRENCY"]`` now, read only. A row lives while its run runs on a worker; a
slot whose worker died is freed by the next taker once it expires (at once on its host)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from ..models import ConcurrencySlot


@admin.register(ConcurrencySlot)
class ConcurrencySlotAdmin(admin.ModelAdmin):
    list_display = ("scope", "holder", "owner", "acquired_at", "expires_at")
    list_filter = ("scope",)
    search_fields = ("holder", "owner")
    fields = list_display
    readonly_fields = list_display

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # freed by its worker, or by the next taker once it expires
