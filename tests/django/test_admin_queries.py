"""The runs admin's index-driven queries give exactly what Django's DISTINCT queries give:
the date drill-down buckets and the list of stored flow names, on SQLite and PostgreSQL."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from django.test.utils import override_settings
from django.utils import timezone

from warlock_ai.admin.dates import drill_down
from warlock_ai.models import Snapshot

pytestmark = pytest.mark.django_db(databases=["default", "pg", "pg15"], transaction=True)

DATABASES = ["default", "pg", "pg15"]


def fill(using, count=300):
    rng = random.Random(3)
    start = datetime(2024, 12, 25, tzinfo=UTC)
    rows = []
    for i in range(count):
        saved = start + timedelta(hours=rng.uniform(0, 24 * 500))
        rows.append(
            Snapshot(
                run_id=f"r{i}",
                name=rng.choice(["orders", "invoices", "zeta", "Alpha", "a_b", "ä-flow"]),
                signature="00000000",
                status=rng.choice(["running", "completed", "failed"]),
                started_at=saved,
                saved_at=saved,
            )
        )
    Snapshot.objects.using(using).bulk_create(rows)


@pytest.mark.parametrize("using", DATABASES)
@pytest.mark.parametrize("zone", ["UTC", "America/Chicago", "Asia/Kolkata"])
def test_drill_down_buckets_match_django(using, zone):
    fill(using)
    with override_settings(TIME_ZONE=zone), timezone.override(zone):
        base = Snapshot.objects.using(using).all()
        cases = [
            base,
            base.filter(status="failed"),
            base.filter(saved_at__year=2025),
            base.filter(saved_at__year=2025, saved_at__month=3),
            base.filter(name="nothing-matches"),
        ]
        for queryset in cases:
            for kind in ("year", "month", "day"):
                expected = list(queryset.datetimes("saved_at", kind))
                assert drill_down(queryset).datetimes("saved_at", kind) == expected, kind


@pytest.mark.parametrize("using", DATABASES)
def test_flow_names_match_distinct(using):
    fill(using)
    rows = Snapshot.objects.using(using)
    expected = list(rows.order_by("name").values_list("name", flat=True).distinct())
    assert rows.flow_names() == expected
    rows.all().delete()
    assert rows.flow_names() == []


def test_drill_down_keeps_filters_and_class():
    fill("default", 20)
    queryset = drill_down(Snapshot.objects.all()).filter(status="failed")
    assert type(queryset).__name__ == "DrillDownQuerySet"
    assert queryset.count() == Snapshot.objects.filter(status="failed").count()
