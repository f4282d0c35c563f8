"""Settings for the example project: SQLite, no servers needed.

The database is ``BASE_DIR / "db.sqlite3"`` unless ``WARLOCK_DB_URL`` names another one
(``sqlite:///abs/path/db.sqlite3`` or ``postgresql://user:pass@host:5432/db``); the demo points
it at a throw-away SQLite file. ``WARLOCK_DEMO_DB`` (a SQLite path) still works too.
"""

import os
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

BASE_DIR = Path(__file__).resolve().parent.parent


def _env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


SECRET_KEY = os.environ.get(
    "DJANGO_SECRET_KEY", "django-insecure-warlock-ai-example-project-dev-only"
)
DEBUG = _env_bool("DJANGO_DEBUG", True)
ALLOWED_HOSTS = os.environ.get("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]").split(",")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "warlock_ai",
    "example_project.catalog",
    "example_project.support",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "example_project.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "example_project.wsgi.application"
ASGI_APPLICATION = "example_project.asgi.application"


def database_from_url(url: str) -> dict:
    """``sqlite:///abs/path`` or ``postgresql://user:pass@host:port/db?opt=value`` -> a
    ``DATABASES`` entry. A ``host=`` query parameter (a socket directory) overrides the host."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        path = parts.path[1:] if parts.path.startswith("//") else parts.path
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": path or ":memory:"}
    if parts.scheme not in {"postgres", "postgresql"}:
        raise ValueError(f"WARLOCK_DB_URL: unsupported scheme {parts.scheme!r} in {url!r}")
    options = dict(parse_qsl(parts.query))
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(parts.path.lstrip("/")),
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": options.pop("host", None) or unquote(parts.hostname or ""),
        "PORT": str(parts.port or ""),
        "OPTIONS": options,
    }


if os.environ.get("WARLOCK_DB_URL"):
    DATABASES = {"default": database_from_url(os.environ["WARLOCK_DB_URL"])}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ.get("WARLOCK_DEMO_DB", BASE_DIR / "db.sqlite3"),
        }
    }

# warlock_ai's settings: all optional. Empty means snapshots go to the Django ORM store on the
# "default" database and flows are autodiscovered from each app's flows.py. Every key and its
# default: docs/django.md, section "Settings".
WARLOCK_AI = {}

# WARLOCK_SNAPSHOT_REDIS_URL (optional): keep the run snapshots in Redis instead of the
# database (redis://host:port/db; WARLOCK_SNAPSHOT_REDIS_PREFIX picks the key prefix).
# execute_run, resume_run, list_runs, drain_runs, prune_runs, discard_run, cancel_run and
# migrate_run work the same; the runs admin shows the database's Snapshot table only.
if os.environ.get("WARLOCK_SNAPSHOT_REDIS_URL"):
    WARLOCK_AI["SNAPSHOT_STORE"] = {
        "BACKEND": "warlock_ai.stores.redis.RedisSnapshotStore",
        "OPTIONS": {
            "url": os.environ["WARLOCK_SNAPSHOT_REDIS_URL"],
            "prefix": os.environ.get("WARLOCK_SNAPSHOT_REDIS_PREFIX", "warlock:snapshot:"),
        },
    }

# warlock_ai logs on the "warlock_ai" logger (for example a snapshot write that failed while
# the run went on); show its warnings on the console.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "{levelname} {name}: {message}", "style": "{"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {"warlock_ai": {"handlers": ["console"], "level": "WARNING"}},
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
