"""The API's routes: ``path("api/warlock/", include("warlock_ai.api.urls"))``."""

from __future__ import annotations

from django.urls import path, re_path

from .errors import not_found
from .routes import api_patterns
from .schema import SchemaDocsView, SchemaView

app_name = "warlock_ai_api"

urlpatterns = [
    *api_patterns(),
    path("schema/", SchemaView.as_view(), name="schema"),
    path("schema/docs/", SchemaDocsView.as_view(), name="schema-docs"),
    # Anything else under the API's prefix is a 404 in the API's shape, not an HTML page.
    re_path(r"^[\s\S]*$", not_found, name="not-found"),
]
