"""Changelist filters of the runs and sessions admins. Each is one WHERE clause; none queries
per row."""

from __future__ import annotations

from typing import Any

from django.contrib import admin

from ..models import VERDICTS
from ..presentation import CURRENT, DRIFTED, UNREGISTERED
from ..registry import registry


class FlowFilter(admin.SimpleListFilter):
    """Registered flows plus any name still stored (a flow removed from the code)."""

    title = "flow"
    parameter_name = "flow"

    def lookups(self, request: Any, model_admin: Any) -> list[tuple[str, str]]:
        stored = model_admin.get_queryset(request).flow_names()
        names = set(stored) | {d.name for d in registry.all()}
        return [(name, name) for name in sorted(names)]

    def queryset(self, request: Any, queryset: Any) -> Any:
        return queryset.for_flow(self.value()) if self.value() else queryset


class DriftFilter(admin.SimpleListFilter):
    """Runs whose stored signature differs from the registered definition's."""

    title = "definition"
    parameter_name = "definition"

    def lookups(self, request: Any, model_admin: Any) -> list[tuple[str, str]]:
        return [
            (DRIFTED, "drifted"),
            (CURRENT, "current"),
            (UNREGISTERED, "flow not registered"),
        ]

    def queryset(self, request: Any, queryset: Any) -> Any:
        value = self.value()
        return queryset.by_definition(value) if value in VERDICTS else queryset


class LeaseFilter(admin.SimpleListFilter):
    """Running runs by lease: a live worker holds them, or the lease went stale."""

    title = "lease"
    parameter_name = "lease"

    def lookups(self, request: Any, model_admin: Any) -> list[tuple[str, str]]:
        return [("stale", "stale (worker gone)"), ("live", "held by a live worker")]

    def queryset(self, request: Any, queryset: Any) -> Any:
        if self.value() == "stale":
            return queryset.stale()
        if self.value() == "live":
            return queryset.leased()
        return queryset


class InterruptedTurnFilter(admin.SimpleListFilter):
    """Sessions whose next turn is stored as an interrupted (``running``) turn snapshot; the
    queryset carries ``CheckpointQuerySet.with_interrupted_turn()``'s annotation."""

    title = "interrupted turn"
    parameter_name = "interrupted"

    def lookups(self, request: Any, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "waiting to be resumed"), ("no", "none")]

    def queryset(self, request: Any, queryset: Any) -> Any:
        if self.value() in ("yes", "no"):
            return queryset.filter(interrupted_run__isnull=self.value() == "no")
        return queryset
