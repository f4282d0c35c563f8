"""URL routes of the example project: the admin, and warlock_ai's API."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/warlock/", include("warlock_ai.api.urls")),
]
