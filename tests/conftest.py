"""Shared fixtures: real services (pgserver PostgreSQL, Redis) and fresh project databases.

Every service starts lazily, for the tests that use it: Redis and the URLs through the fixtures
below, the "pg" / "pg15" databases of tests/settings.py through ``django_db_modify_db_settings``.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import services

REPO_ROOT = Path(__file__).resolve().parent.parent

# The database aliases of tests/settings.py that name no server until a test asks for them,
# and the finder of each one's server.
LAZY_DATABASES: dict[str, Callable[[], str]] = {
    "pg": services.postgres_url,
    "pg15": services.postgres15_url,
}


@pytest.fixture(scope="session")
def django_db_modify_db_settings(
    request: pytest.FixtureRequest, django_db_modify_db_settings_parallel_suffix: None
) -> None:
    """Start (or find) the servers of the lazy aliases that the collected tests ask for, and
    only those, before pytest-django creates their test databases (it creates one for every
    alias some collected test asks for, and for no other)."""
    for alias in sorted(_aliases_for_setup(request.session.items) & LAZY_DATABASES.keys()):
        use_database_server(alias, LAZY_DATABASES[alias]())


@pytest.fixture(autouse=True)
def _close_async_connections() -> Iterator[None]:
    """After each test, close the psycopg async connections the ORM store's ``asave`` kept
    open (pytest-django cannot drop a test database that still has connections)."""
    yield
    module = sys.modules.get("warlock_ai.stores.orm_async")
    if module is not None:
        module.close_all()


@pytest.fixture(autouse=True)
def _admin_without_removed_apps() -> Iterator[None]:
    """After each test, unregister from the admin site the models of apps a test installed
    for itself (``settings.INSTALLED_APPS = [..., "django_rq"]`` runs the admin's
    autodiscovery again, and the registration outlives the setting): else the next admin
    page fails with "No installed app with label 'django_rq'"."""
    yield
    if "django.contrib.admin" not in sys.modules:
        return
    from django.apps import apps
    from django.contrib import admin

    for model in list(admin.site._registry):
        if model._meta.app_label not in apps.app_configs:
            admin.site.unregister(model)


def _aliases_for_setup(items: Iterable[pytest.Item]) -> set[str]:
    """The aliases pytest-django sets up for ``items``, computed by pytest-django itself."""
    try:
        from pytest_django.fixtures import _get_databases_for_setup
    except ImportError:  # pytest-django moved it: start every server rather than miss one
        return set(LAZY_DATABASES)
    aliases, _serialized = _get_databases_for_setup(list(items))
    return set(aliases)


def use_database_server(alias: str, url: str) -> None:
    """Point the database ``alias`` at the server of ``url``: its entry in ``settings.DATABASES``,
    in ``django.db.connections`` and in the alias's connection (normally one dict, updated in
    place). Its ``TEST`` settings (the test database's name, any xdist suffix) stay."""
    from django.conf import settings
    from django.db import connections

    server = {key: value for key, value in services.database_settings(url).items() if key != "TEST"}
    entries = (
        settings.DATABASES[alias],
        connections.settings[alias],
        connections[alias].settings_dict,
    )
    for entry in {id(entry): entry for entry in entries}.values():
        entry.update(server)


@pytest.fixture(scope="session")
def pg_url() -> str:
    """URL of the session's PostgreSQL 16 with pgvector (pgserver or ``$WARLOCK_TEST_PG_URL``)."""
    return services.postgres_url()


@pytest.fixture(scope="session")
def redis_url() -> str:
    """URL of the session's Redis (``$WARLOCK_TEST_REDIS_URL``, local, or a started server)."""
    return services.redis_url()


@pytest.fixture
def subprocess_env() -> dict[str, str]:
    """Environment for child processes: the repo importable, no test settings forced on them."""
    env = dict(os.environ)
    env.pop("DJANGO_SETTINGS_MODULE", None)
    paths = [str(REPO_ROOT), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    return env


@pytest.fixture
def fresh_project_db(
    request: pytest.FixtureRequest, tmp_path: Path, subprocess_env: dict[str, str]
) -> Iterator[dict[str, Any]]:
    """A brand-new, empty database for ``manage.py`` subprocesses.

    Parametrise indirectly with ``"sqlite"`` (default) or ``"postgres"``. Yields
    ``{"vendor", "url", "env"}`` where ``env`` is ``subprocess_env`` plus ``WARLOCK_DB_URL``.
    """
    vendor = getattr(request, "param", "sqlite")
    if vendor == "sqlite":
        url = f"sqlite://{tmp_path / 'project.sqlite3'}"  # sqlite:///abs/path
        yield _project_db(vendor, url, subprocess_env)
    elif vendor == "postgres":
        server_url = services.postgres_url()
        name = f"warlock_test_{uuid.uuid4().hex[:12]}"
        url = services.create_database(server_url, name)
        try:
            yield _project_db(vendor, url, subprocess_env)
        finally:
            services.drop_database(server_url, name)
    else:
        raise ValueError(f"fresh_project_db: unknown vendor {vendor!r}; use sqlite or postgres")


def _project_db(vendor: str, url: str, env: dict[str, str]) -> dict[str, Any]:
    return {"vendor": vendor, "url": url, "env": {**env, "WARLOCK_DB_URL": url}}


@pytest.fixture
def runs(transactional_db: None) -> Iterator[Any]:
    """Real runs on the ORM store for the admin tests (see tests/django/admin_runs.py)."""
    from tests.django.admin_runs import RunFactory

    factory = RunFactory()
    yield factory
    factory.close()


@pytest.fixture
def supervised(transactional_db: None) -> Iterator[Any]:
    """Supervisor runs on the ORM store for the admin tests (tests/django/admin_runs.py)."""
    from tests.django.admin_runs import SupervisedRuns

    factory = SupervisedRuns()
    yield factory
    factory.close()


@pytest.fixture
def admin_runs_inline(settings: Any) -> None:
    """The development opt-in ``WARLOCK_AI["ADMIN_RUNS_INLINE"]``: without django-rq, the
    admin's resume and restart run the run inside the request (by default they run nothing
    and show the command to run)."""
    settings.WARLOCK_AI = {
        **(getattr(settings, "WARLOCK_AI", None) or {}),
        "ADMIN_RUNS_INLINE": True,
    }


@pytest.fixture
def chat_sessions(transactional_db: None) -> Iterator[Any]:
    """Orchestrator sessions on the ORM stores for the sessions admin tests (see
    tests/django/admin_sessions.py)."""
    from tests.django.admin_sessions import SessionFactory

    factory = SessionFactory()
    yield factory
    factory.close()
