from django.contrib import admin

from .models import ModelCall


@admin.register(ModelCall)
class ModelCallAdmin(admin.ModelAdmin):
    """Read-only: the rows are a log written by the agents' middleware."""

    list_display = ["run_id", "iteration", "agent", "status", "total_tokens", "pid", "started_at"]
    list_filter = ["agent", "status"]
    search_fields = ["run_id"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
