"""``schema/``: the OpenAPI 3 schema of this API (drf-spectacular), and ``schema/docs/``: a
page that browses it (Swagger UI; needs ``drf_spectacular`` in ``INSTALLED_APPS``)."""

from __future__ import annotations

import re
from typing import Any

from django.apps import apps
from django.templatetags.static import static
from django.urls import include, path, reverse
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.exceptions import NotFound
from rest_framework.permissions import IsAuthenticated

from .. import __version__
from .errors import exception_handler
from .routes import api_patterns

SCHEMA_SETTINGS = {
    "TITLE": "warlock_ai API",
    "DESCRIPTION": "Durable AI runs: list, start, resume, cancel, migrate and discard runs; "
    "read orchestrator sessions and send turns; cache statistics. Every refusal is "
    '{"code", "message", ...fields}.',
    "COMPONENT_SPLIT_REQUEST": True,
}


def mounted_patterns() -> tuple[list[Any], str]:
    """This API's routes under the prefix the project mounted them at, for the generator
    (which would otherwise describe every DRF view of the project)."""
    prefix = reverse("warlock_ai_api:runs").removesuffix("runs/").lstrip("/")
    return [path(prefix, include((api_patterns(), "warlock_ai_api")))], prefix


class SchemaView(SpectacularAPIView):
    permission_classes = [IsAuthenticated]
    custom_settings = SCHEMA_SETTINGS

    def get(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        self.patterns, prefix = mounted_patterns()
        # Operation ids and tags from the path after the prefix: "runs_list", not
        # "api_warlock_runs_list", wherever the project mounts the API.
        self.custom_settings = {
            **SCHEMA_SETTINGS,
            "VERSION": __version__,
            "SCHEMA_PATH_PREFIX": "/" + re.escape(prefix),
        }
        return super().get(request, *args, **kwargs)

    def get_exception_handler(self) -> Any:
        return exception_handler


class SchemaDocsView(SpectacularSwaggerView):
    """Swagger UI over ``schema/``; its files come from the project's static files when
    ``drf_spectacular_sidecar`` is installed (else from drf-spectacular's CDN default)."""

    permission_classes = [IsAuthenticated]
    url_name = "warlock_ai_api:schema"
    title = "warlock_ai API"

    @staticmethod
    def _swagger_ui_resource(filename: str) -> str:
        if apps.is_installed("drf_spectacular_sidecar"):
            return static(f"drf_spectacular_sidecar/swagger-ui-dist/{filename}")
        return str(SpectacularSwaggerView._swagger_ui_resource(filename))

    @staticmethod
    def _swagger_ui_favicon() -> str:
        if apps.is_installed("drf_spectacular_sidecar"):
            return static("drf_spectacular_sidecar/swagger-ui-dist/favicon-32x32.png")
        return str(SpectacularSwaggerView._swagger_ui_favicon())

    def get(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        if not apps.is_installed("drf_spectacular"):
            raise NotFound(
                'the API docs page needs "drf_spectacular" in INSTALLED_APPS (its templates); '
                "the schema itself is at schema/"
            )
        return super().get(request, *args, **kwargs)

    def get_exception_handler(self) -> Any:
        return exception_handler
