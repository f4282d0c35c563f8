"""The REST API (the ``api`` extra): thin DRF views over the operations the commands and the
admin use. Mounted by a project with ``path("api/warlock/", include("warlock_ai.api.urls"))``;
see docs/api.md."""
