"""``cache/stats/``: the semantic cache and memory entries by namespace."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, Q, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone
from rest_framework.request import Request
from rest_framework.response import Response

from ..models import CacheEntry
from . import permissions as perms
from .base import WarlockView, errors, openapi
from .serializers import CacheStatsSerializer


class CacheStatsView(WarlockView):
    """GET: how many entries, expired entries and hits, in all and by namespace (the
    ``CacheEntry`` table of the ORM cache driver)."""

    permissions = {"GET": (perms.VIEW_CACHE,)}
    doings = {"GET": "reading cache statistics"}
    pagination_class = None  # type: ignore[assignment]  # one object, not a list

    @openapi(responses={200: CacheStatsSerializer, **errors(401, 403)})
    def get(self, request: Request) -> Response:
        """Entries, expired entries and hits of the semantic cache and memory, by namespace."""
        expired = Q(expires_at__lt=timezone.now())
        rows = (
            self.narrow(CacheEntry.objects.all())
            .order_by()
            .values("namespace")
            .annotate(
                entries=Count("pk"),
                expired=Count("pk", filter=expired),
                hits=Coalesce(Sum("hits"), 0),
                with_embedding=Count("pk", filter=Q(embedding__isnull=False)),
            )
            .order_by("namespace")
        )
        namespaces: list[dict[str, Any]] = [dict(row) for row in rows]
        totals = {k: sum(n[k] for n in namespaces) for k in ("entries", "expired", "hits")}
        return Response({**totals, "namespaces": namespaces})
