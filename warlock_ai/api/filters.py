"""The query parameters of the lists: each one WHERE clause, as in the admin's filters."""

from __future__ import annotations

from typing import Any

import django_filters
from django.db.models import QuerySet

from ..models import VERDICTS, Checkpoint, Kind, Snapshot, Status


class BooleanFilter(django_filters.ChoiceFilter):
    """``true`` or ``false``, and nothing else is a 400 (django-filter's own ignores what it
    cannot read, so a typo would silently list everything)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, choices=[("true", "true"), ("false", "false")], **kwargs)

    def filter(self, qs: Any, value: Any) -> Any:
        if value in ("", None):
            return qs
        return super().filter(qs, value == "true")


class StrictFilterSet(django_filters.FilterSet):
    """A date, a choice or a boolean given must have a value: ``?saved_after=`` is a 400
    naming it, not the filter silently left out (an empty text, ``?search=``, filters
    nothing, as an empty search box)."""

    def is_valid(self) -> bool:
        valid = bool(super().is_valid())
        for name, field in self.filters.items():
            if type(field) is django_filters.CharFilter:
                continue
            if name in self.data and "" in _values(self.data, name):
                self.form.add_error(name, "must not be empty; leave the parameter out instead")
                valid = False
        return valid


def _values(data: Any, name: str) -> list[Any]:
    return list(data.getlist(name)) if hasattr(data, "getlist") else [data.get(name)]


class RunFilter(StrictFilterSet):
    status = django_filters.MultipleChoiceFilter(
        choices=Status.choices, help_text="Runs with this status (repeat for several)."
    )
    flow = django_filters.CharFilter(field_name="name", help_text="Runs of this flow.")
    kind = django_filters.ChoiceFilter(choices=Kind.choices)
    stale = BooleanFilter(
        method="filter_stale",
        help_text="true: running runs no live worker holds (what drain_runs resumes); "
        "false: every other run.",
    )
    drifted = BooleanFilter(
        method="filter_drifted",
        help_text="true: runs of a registered flow written by another version of it.",
    )
    definition = django_filters.ChoiceFilter(
        choices=[(v, v) for v in VERDICTS],
        method="filter_definition",
        help_text="What wrote the run, compared with the registered definitions.",
    )
    started_after = django_filters.IsoDateTimeFilter(field_name="started_at", lookup_expr="gte")
    started_before = django_filters.IsoDateTimeFilter(field_name="started_at", lookup_expr="lt")
    saved_after = django_filters.IsoDateTimeFilter(field_name="saved_at", lookup_expr="gte")
    saved_before = django_filters.IsoDateTimeFilter(field_name="saved_at", lookup_expr="lt")
    search = django_filters.CharFilter(
        field_name="run_id",
        lookup_expr="startswith",
        help_text="Run ids starting with this (case-sensitive on PostgreSQL).",
    )

    class Meta:
        model = Snapshot
        fields: list[str] = []

    # (A filter with a method gets the value as sent: "true" or "false".)
    def filter_stale(self, queryset: QuerySet[Any], name: str, value: str) -> QuerySet[Any]:
        stale = queryset.stale()  # type: ignore[attr-defined]
        return stale if value == "true" else queryset.exclude(pk__in=stale.values("pk"))

    def filter_drifted(self, queryset: QuerySet[Any], name: str, value: str) -> QuerySet[Any]:
        drifted = queryset.by_definition("drifted")  # type: ignore[attr-defined]
        return drifted if value == "true" else queryset.exclude(pk__in=drifted.values("pk"))

    def filter_definition(self, queryset: QuerySet[Any], name: str, value: str) -> QuerySet[Any]:
        return queryset.by_definition(value)  # type: ignore[attr-defined]


class SessionFilter(StrictFilterSet):
    orchestrator = django_filters.CharFilter(field_name="orchestrator_name")
    interrupted = BooleanFilter(
        field_name="interrupted_run",
        lookup_expr="isnull",
        exclude=True,
        help_text="true: sessions whose next turn was interrupted and waits to be resumed.",
    )
    search = django_filters.CharFilter(
        field_name="session_id",
        lookup_expr="startswith",
        help_text="Session ids starting with this (case-sensitive on PostgreSQL).",
    )

    class Meta:
        model = Checkpoint
        fields: list[str] = []
