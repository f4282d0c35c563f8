"""Settings of the ``manage.py`` children of the tasks-framework worker tests.

The rq workers' settings (``tests.workers.settings``: the example project on
``$WARLOCK_DB_URL``, the test flows and orchestrators) with django-tasks-db as the ``TASKS``
backend and ``WARLOCK_AI["BACKGROUND"] = "tasks"``: ``manage.py db_worker`` runs the runs.
Each test has its own queue, ``$WARLOCK_TEST_TASKS_QUEUE``.
"""

import os

from tests.workers.settings import *  # noqa: F403
from tests.workers.settings import INSTALLED_APPS, WARLOCK_AI

INSTALLED_APPS = [*INSTALLED_APPS, "django_tasks_db"]
if "django_tasks" not in INSTALLED_APPS:  # the backport's app, on Django 5.2
    try:
        import django.tasks  # noqa: F401
    except ImportError:
        INSTALLED_APPS.append("django_tasks")

TASKS_QUEUE = os.environ.get("WARLOCK_TEST_TASKS_QUEUE", "default")
TASKS = {
    "default": {
        "BACKEND": "django_tasks_db.backend.DatabaseBackend",
        "QUEUES": sorted({"default", TASKS_QUEUE}),
    }
}
WARLOCK_AI = {**WARLOCK_AI, "BACKGROUND": "tasks", "TASKS_QUEUE": TASKS_QUEUE}
