"""Django settings for the test suite: SQLite as "default", pgserver PostgreSQL 16 as "pg",
PostgreSQL 15 without pgvector as "pg15".

Loading them starts no server: "pg" and "pg15" name theirs only once a collected test asks for
the alias (``pytest.mark.django_db(databases=[...])``); tests/conftest.py then finds or starts
it (tests/services.py) and fills the entry in, before pytest-django creates the test database.
"""

import atexit
import shutil
import tempfile
from pathlib import Path

from example_project import settings as example
from tests.services import unstarted_database_settings

BASE_DIR = Path(__file__).resolve().parent.parent

# A real file, not :memory:, so live_server and sync_to_async threads share one database.
_SQLITE_DIR = Path(tempfile.mkdtemp(prefix="warlock-sqlite-"))
atexit.register(shutil.rmtree, _SQLITE_DIR, ignore_errors=True)

SECRET_KEY = "warlock-ai-tests-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True
TIME_ZONE = "UTC"

# The example project's apps, middleware, URLs and templates: the tests run the same project.
INSTALLED_APPS = list(example.INSTALLED_APPS)
# Django's tasks framework's database backend, for the tests of WARLOCK_AI["BACKGROUND"] =
# "tasks" (the default stays None: django-rq where a test configures it).
INSTALLED_APPS.append("django_tasks_db")
try:
    import django.tasks  # noqa: F401

    _TASKS = "django.tasks"
except ImportError:  # Django 5.2: the django-tasks backport
    INSTALLED_APPS.append("django_tasks")
    _TASKS = "django_tasks"
TASKS = {
    "default": {
        "BACKEND": "django_tasks_db.backend.DatabaseBackend",
        "QUEUES": ["default", "other"],
    },
    # Runs the task inside enqueue (the framework's own backend for tests and development).
    "immediate": {"BACKEND": f"{_TASKS}.backends.immediate.ImmediateBackend"},
}
MIDDLEWARE = list(example.MIDDLEWARE)
ROOT_URLCONF = example.ROOT_URLCONF
TEMPLATES = example.TEMPLATES

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(_SQLITE_DIR / "default.sqlite3"),
        "TEST": {"NAME": str(_SQLITE_DIR / "test_default.sqlite3")},
    },
    # Filled in lazily (tests/conftest.py, LAZY_DATABASES): PostgreSQL 16 + pgvector.
    # (No TEST dependency on "default": a selection of PostgreSQL tests alone sets up.)
    "pg": {
        **unstarted_database_settings("pg"),
        "TEST": {"NAME": "test_warlock_pg", "DEPENDENCIES": []},
    },
    # A PostgreSQL 15 without pgvector (the machine's, or a private cluster started from the
    # installed binaries): the stores and the migrations must work there too (vector parts
    # skipped).
    "pg15": {
        **unstarted_database_settings("pg15"),
        "TEST": {"NAME": "test_warlock_pg15", "DEPENDENCIES": []},
    },
}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
STATIC_URL = "static/"
# Fast hashing: tests create users, they do not need to resist brute force.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"null": {"class": "logging.NullHandler"}},
    "root": {"handlers": ["null"], "level": "WARNING"},
    "loggers": {
        "django": {"handlers": ["null"], "level": "ERROR", "propagate": False},
        "warlock_ai": {"handlers": ["null"], "level": "WARNING", "propagate": True},
    },
}
