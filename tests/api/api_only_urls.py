"""URLs of a project that serves only warlock_ai's API (tests/api/test_without_admin.py)."""

from django.urls import include, path

urlpatterns = [path("api/", include("warlock_ai.api.urls"))]
