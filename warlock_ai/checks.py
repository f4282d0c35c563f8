"""System checks (``manage.py check``): the stores in ``settings.WARLOCK_AI`` and pgvector.

Ids and what to do about each: docs/checks.md. The pgvector checks query a database, so, like
Django's own database checks, they run only for the databases passed to the check framework
(``manage.py check --database default``; ``migrate`` passes every database it migrates).
"""

from __future__ import annotations

from typing import Any, cast

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, register
from django.core.checks import Warning as CheckWarning
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError, connections
from django.utils.module_loading import import_string

from . import vector
from .conf import STORE_KEYS, warlock_settings

TAG = "warlock_ai"
DOCS = "see docs/checks.md"
BACKEND = '["BACKEND"]'
USING = '["OPTIONS"]["using"]'
_MEMORY_STORES = {
    "SNAPSHOT_STORE": "warlock_ai.stores.memory.MemorySnapshotStore",
    "CHECKPOINT_STORE": "warlock_ai.stores.memory.MemoryCheckpointStore",
}


def _setting(key: str, suffix: str = "") -> str:
    return f'settings.WARLOCK_AI["{key}"]{suffix}'


def _store_configs() -> dict[str, dict[str, Any] | None]:
    """Each store setting merged over its default; ``ImproperlyConfigured`` when malformed."""
    return {key: getattr(warlock_settings, key) for key in STORE_KEYS}


def _backend(config: dict[str, Any] | None) -> type | None:
    """The backend class of a store setting, or ``None`` when it cannot be imported."""
    if config is None or not isinstance(config["BACKEND"], str):
        return None
    try:
        return import_string(config["BACKEND"])
    except Exception:  # reported by check_store_settings (E002)
        return None


@register(TAG)
def check_store_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """E003 malformed settings, E002 a backend that cannot be imported, W001 a memory store
    outside DEBUG."""
    try:
        configs = _store_configs()
    except ImproperlyConfigured as exc:
        return [Error(str(exc), hint=f"Fix settings.WARLOCK_AI; {DOCS}.", id="warlock_ai.E003")]
    messages: list[CheckMessage] = []
    for key, config in configs.items():
        if config is not None:
            messages.extend(_check_store(key, config))
    return messages


def _check_store(key: str, config: dict[str, Any]) -> list[CheckMessage]:
    path = config["BACKEND"]
    if not isinstance(path, str) or not path:
        return [
            Error(
                f"{_setting(key, BACKEND)} must be a dotted path string, got {path!r}",
                hint='For example "warlock_ai.stores.orm.DatabaseSnapshotStore".',
                id="warlock_ai.E003",
            )
        ]
    messages = _check_options(key, config["OPTIONS"])
    try:
        cls = import_string(path)
    except Exception as exc:
        messages.append(
            Error(
                f"{_setting(key, BACKEND)} = {path!r} cannot be imported: {exc}",
                hint="Check the spelling of the dotted path and that its package is installed.",
                id="warlock_ai.E002",
            )
        )
        return messages
    memory = _MEMORY_STORES.get(key)
    if memory and not settings.DEBUG and isinstance(cls, type) and _is_subclass(cls, memory):
        messages.append(
            CheckWarning(
                f"{_setting(key)} is an in-process memory store ({path}) while DEBUG is False: "
                "runs are lost on restart and invisible to other processes.",
                hint="Use the Django ORM store (the default) or Redis in production.",
                id="warlock_ai.W001",
            )
        )
    return messages


def _is_subclass(cls: type, path: str) -> bool:
    return issubclass(cls, import_string(path))


def _check_options(key: str, options: dict[str, Any]) -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    using = options.get("using")
    if using is not None and using not in connections:
        messages.append(
            Error(
                f"{_setting(key, USING)} = {using!r} is not a database alias in settings.DATABASES",
                hint=f"Known aliases: {sorted(connections.settings)}.",
                id="warlock_ai.E003",
            )
        )
    if key == "CACHE" and "dimensions" in options:
        try:
            vector.dimensions()
        except ImproperlyConfigured as exc:
            messages.append(
                Error(str(exc), hint="1536 for text-embedding-3-small.", id="warlock_ai.E003")
            )
    return messages


# --- pgvector ------------------------------------------------------------------------------


def cache_database(config: dict[str, Any] | None) -> str | None:
    """The database alias the configured cache keeps its entries in, or ``None``.

    ``OPTIONS["using"]`` when set; else ``"default"`` for a cache that expects pgvector
    (``OPTIONS`` with ``"vector": True`` or ``"dimensions"``, or a backend class declaring
    ``uses_pgvector = True``, as the ORM cache does).
    """
    if config is None:
        return None
    options = config["OPTIONS"]
    using = options.get("using")
    if isinstance(using, str):
        return using
    if _expects_pgvector(options) or getattr(_backend(config), "uses_pgvector", False):
        return "default"
    return None


def _expects_pgvector(options: dict[str, Any]) -> bool:
    return options.get("vector") is True or "dimensions" in options


@register(Tags.database, TAG)
def check_cache_pgvector(
    app_configs: Any = None, databases: Any = None, **kwargs: Any
) -> list[CheckMessage]:
    """W003 the cache expects pgvector and its database lacks it; W004 exact search only."""
    if not databases:
        return []
    try:
        config = warlock_settings.CACHE
    except ImproperlyConfigured:
        return []  # check_store_settings reports it (E003)
    alias = cache_database(config)
    if alias is None or alias not in databases or alias not in connections:
        return []
    connection = connections[alias]
    explicit = _expects_pgvector(config["OPTIONS"])
    if connection.vendor != "postgresql":
        if config["OPTIONS"].get("vector") is True:
            return [_w003(alias, f"is {connection.vendor}, and pgvector needs PostgreSQL", "")]
        return []
    try:
        return _pgvector_messages(connection, explicit)
    except DatabaseError as exc:
        return [
            CheckWarning(
                f'could not inspect database "{alias}" for pgvector: {exc}',
                hint="Check that the database is reachable, then run the check again.",
                id="warlock_ai.W005",
            )
        ]


def _pgvector_messages(connection: Any, explicit: bool) -> list[CheckMessage]:
    alias = connection.alias
    if vector.pgvector_installed(connection, cached=False):
        return _check_embedding_column(connection)
    if vector.pgvector_available(connection):
        return [
            _w003(
                alias,
                "has no vector extension installed (the server has pgvector available)",
                f'Run "CREATE EXTENSION vector;" in database "{alias}" as a superuser, then '
                "convert the embedding column (docs/checks.md, W003).",
            )
        ]
    if explicit:
        return [
            _w003(
                alias,
                "has no vector extension, and the server does not have pgvector",
                "Install pgvector on the server (apt install postgresql-<version>-pgvector), "
                f'run "CREATE EXTENSION vector;" in database "{alias}" and convert the embedding '
                "column (docs/checks.md, W003); or remove vector/dimensions from the cache "
                "OPTIONS to accept exact search.",
            )
        ]
    return [
        CheckWarning(
            f'pgvector is not available on database "{alias}": cache similarity search will '
            "use exact search",
            hint="Exact search reads every embedding of a namespace; install pgvector on the "
            "server for large caches (docs/checks.md, W004).",
            id="warlock_ai.W004",
        )
    ]


def _check_embedding_column(connection: Any) -> list[CheckMessage]:
    from .models import CacheEntry

    meta = CacheEntry._meta
    column = cast(str, meta.get_field("embedding").column)  # a concrete field: it has one
    found = vector.column_type(connection, meta.db_table, column)
    if found is None or found[0] == "vector":
        return []  # not migrated yet, or already a vector column
    return [
        _w003(
            connection.alias,
            f"has pgvector, but {meta.db_table}.{column} is {found[0]} (it was migrated before "
            "the extension was installed)",
            f"Convert it: ALTER TABLE {meta.db_table} ALTER COLUMN {column} TYPE "
            f"vector({vector.dimensions()}) USING {column}::vector; then create the HNSW index "
            "(docs/checks.md, W003).",
        )
    ]


def _w003(alias: str, problem: str, hint: str) -> CheckWarning:
    return CheckWarning(
        f'settings.WARLOCK_AI["CACHE"] expects pgvector, but database "{alias}" {problem}.',
        hint=hint or "Keep the cache on a PostgreSQL database with pgvector.",
        id="warlock_ai.W003",
    )


@register(TAG)
def check_rq_queue(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """django-rq is installed but the queue runs are enqueued on is not one of its queues."""
    from django.apps import apps

    if not apps.is_installed("django_rq") or _background_setting() == "tasks":
        return []
    queue = warlock_settings.RQ_QUEUE
    queues = getattr(settings, "RQ_QUEUES", None) or {}
    if queue in queues:
        return []
    known = ", ".join(sorted(queues)) or "none"
    return [
        CheckWarning(
            f'{_setting("RQ_QUEUE")} is "{queue}", which is not in settings.RQ_QUEUES '
            f"(it has: {known})",
            hint="Add the queue to RQ_QUEUES or set WARLOCK_AI['RQ_QUEUE'] to one of them; "
            "until then enqueue_execute/enqueue_resume fail and the admin's resume runs "
            f"nothing but shows the command to run on a server; {DOCS}.",
            id="warlock_ai.W006",
        )
    ]


def _background_setting() -> Any:
    try:
        return warlock_settings.BACKGROUND
    except ImproperlyConfigured:
        return None


@register(TAG)
def check_background(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """``BACKGROUND`` is not one of its values, or is "tasks" with a tasks backend that
    cannot take warlock_ai's tasks (no tasks framework, unknown alias or queue)."""
    from . import background

    if _background_setting() is None:
        return []  # the default, or WARLOCK_AI itself is malformed (E003 says how)
    try:
        chosen = background.kind()
    except ImproperlyConfigured as exc:
        return [Error(str(exc), hint=f"Fix settings.WARLOCK_AI; {DOCS}.", id="warlock_ai.E004")]
    problem = background.tasks_problem() if chosen == background.TASKS else None
    if problem is None:
        return []
    return [
        Error(
            f'{_setting("BACKGROUND")} is "tasks", but {problem}',
            hint="Configure settings.TASKS (django-tasks-db: pip install 'warlock-ai[tasks]', "
            "'django_tasks_db' in INSTALLED_APPS) or set TASKS_BACKEND/TASKS_QUEUE to what "
            f"it has; until then nothing can be enqueued; {DOCS}.",
            id="warlock_ai.E004",
        )
    ]


@register(TAG)
def check_concurrency(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """``CONCURRENCY`` is ``{"FLOWS": {name: n}, "QUEUES": {name: n}}`` with n >= 1."""
    from .concurrency import configured

    try:
        configured()
    except ImproperlyConfigured as exc:
        if "CONCURRENCY" not in str(exc):
            return []  # WARLOCK_AI itself is malformed: check_store_settings says so (E003)
        hint = 'For example {"FLOWS": {"support-triage": 3}, "QUEUES": {"bulk": 10}}'
        return [Error(str(exc), hint=f"{hint}; {DOCS}.", id="warlock_ai.E011")]
    return []


#: The settings that are a number of seconds, and the least each may be.
_SECONDS_SETTINGS = {
    "LEASE_SECONDS": 0.0,
    "SHUTDOWN_GRACE_SECONDS": 0.0,
    "SWEEP_SECONDS": 0.0,
    "CONCURRENCY_WAIT_SECONDS": 0.0,
}


@register(TAG)
def check_seconds_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """``LEASE_SECONDS`` (> 0), ``SHUTDOWN_GRACE_SECONDS`` and ``SWEEP_SECONDS`` (>= 0) are
    numbers of seconds."""
    messages: list[CheckMessage] = []
    for key, least in _SECONDS_SETTINGS.items():
        try:
            value = getattr(warlock_settings, key)
        except ImproperlyConfigured:
            return []  # check_store_settings reports it (E003)
        number = isinstance(value, int | float) and not isinstance(value, bool)
        strict = key == "LEASE_SECONDS"
        if number and (value > least if strict else value >= least) and value < 10**9:
            continue
        bound = "greater than 0" if strict else "0 or more"
        messages.append(
            Error(
                f"{_setting(key)} must be a number of seconds, {bound}; got {value!r}",
                hint=f"{DOCS}.",
                id="warlock_ai.E010",
            )
        )
    return messages


@register(TAG)
def check_admin_runs_inline(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """E003 ``ADMIN_RUNS_INLINE`` not a bool; W007 it is True while ``DEBUG`` is False."""
    try:
        value = warlock_settings.ADMIN_RUNS_INLINE
    except ImproperlyConfigured:
        return []  # check_store_settings reports it (E003)
    if not isinstance(value, bool):
        return [
            Error(
                f"{_setting('ADMIN_RUNS_INLINE')} must be True or False, got {value!r}",
                hint="Leave it out (False): without django-rq the admin shows the command "
                f"to run instead of running a run in the web request; {DOCS}.",
                id="warlock_ai.E003",
            )
        ]
    if value and not settings.DEBUG:
        return [
            CheckWarning(
                f"{_setting('ADMIN_RUNS_INLINE')} is True while DEBUG is False: without "
                "django-rq, the admin's resume and restart run a whole run inside the web "
                "request, where the web server's timeout can kill it mid-step.",
                hint="Configure django-rq (RQ_QUEUES) and run workers, or remove the setting "
                f"so the admin shows the command to run; {DOCS}.",
                id="warlock_ai.W007",
            )
        ]
    return []


@register(TAG)
def check_session_lock(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """W008: the ORM checkpoint store is on a database with no session lock (turns of one
    session from two processes would not wait for each other)."""
    try:
        config = warlock_settings.CHECKPOINT_STORE
    except ImproperlyConfigured:
        return []  # reported by check_store_settings (E003)
    cls = _backend(config)
    if config is None or cls is None:
        return []
    if not _is_subclass(cls, "warlock_ai.stores.orm_checkpoints.DatabaseCheckpointStore"):
        return []
    from .stores.session_locks import LOCK_VENDORS

    using = config["OPTIONS"].get("using", "default")
    if using not in connections or connections[using].vendor in LOCK_VENDORS:
        return []
    vendor = connections[using].vendor
    return [
        CheckWarning(
            f"{_setting('CHECKPOINT_STORE')} is on database {using!r} ({vendor}), which has no "
            "session lock: orchestrator turns of one session sent from two processes at once "
            "would not wait for each other (the second append is refused).",
            hint="Give the orchestrators session_lock=ai.session_lock.redis(url=...), or keep "
            f"checkpoints on {' or '.join(LOCK_VENDORS)}.",
            id="warlock_ai.W008",
        )
    ]
