"""The ``WARLOCK_AI`` settings dict, read through one accessor with documented defaults.

``from warlock_ai.conf import warlock_settings``; ``warlock_settings.LEASE_SECONDS``. Values are
read lazily, cached, and re-read when a test changes ``settings.WARLOCK_AI``. Unknown keys are
refused so a typo fails loudly instead of silently doing nothing.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed

ORM_SNAPSHOT_STORE = "warlock_ai.stores.orm.DatabaseSnapshotStore"
ORM_CHECKPOINT_STORE = "warlock_ai.stores.orm_checkpoints.DatabaseCheckpointStore"

DEFAULTS: dict[str, Any] = {
    # Where workflow and supervisor snapshots go: a dotted path to a SnapshotStore class and
    # its keyword arguments, like Django's CACHES. The default is the Django ORM store on the
    # "default" database.
    "SNAPSHOT_STORE": {"BACKEND": ORM_SNAPSHOT_STORE, "OPTIONS": {}},
    # Where orchestrator checkpoints go (append-only, one row per turn).
    "CHECKPOINT_STORE": {"BACKEND": ORM_CHECKPOINT_STORE, "OPTIONS": {}},
    # The cache driver for the semantic cache and agent memory (None: no cache configured).
    # OPTIONS["dimensions"] (default 1536) also sizes the cache table's pgvector column, read
    # when `migrate` creates it.
    "CACHE": None,
    # Module names autodiscovered in every installed app to register flows.
    "FLOW_MODULES": ["flows"],
    # How long a worker's lease on a run lasts without a renewal: snapshot writes and a
    # heartbeat every third of it renew it, so this is how long a dead worker's run waits.
    "LEASE_SECONDS": 300,
    # How often every worker (warlock_ai.worker.Worker, manage.py warlock_db_worker) sweeps
    # for what dead workers left: runs whose lease expired or whose holder died, and jobs or
    # tasks a dead worker held, which it puts back on the queue. Each sweep is jittered by
    # +/-20% so hosts do not sweep together. A dead host's runs resume within LEASE_SECONDS
    # plus this. 0 turns sweeping off (then run drain_runs --enqueue yourself).
    "SWEEP_SECONDS": 30,
    # At most this many runs at once across all hosts, per flow (a workflow's or supervisor's
    # name) and per background queue: {"FLOWS": {"support-triage": 3}, "QUEUES": {"bulk": 10}}
    # (for a rate-limited model provider). Enforced in the database the runs' leases live in,
    # when a worker starts or resumes a run; a job over a limit waits for a slot up to
    # CONCURRENCY_WAIT_SECONDS, then goes back on its queue (as often as needed).
    "CONCURRENCY": {},
    "CONCURRENCY_WAIT_SECONDS": 5,
    # After SIGINT/SIGTERM, how long a command or worker lets the current step finish before
    # interrupting it (keep it below the platform's own kill delay: Kubernetes waits 30 s).
    "SHUTDOWN_GRACE_SECONDS": 20,
    # What runs runs, resumes and turns in the background: "rq" (django-rq), "tasks" (Django's
    # tasks framework: the TASKS backend TASKS_BACKEND), or None: django-rq when it is
    # installed and RQ_QUEUE is one of its RQ_QUEUES, else nothing (the admin offers commands).
    "BACKGROUND": None,
    # The django-rq queue background runs are enqueued on.
    "RQ_QUEUE": "default",
    # With BACKGROUND "tasks": the alias in settings.TASKS and the queue name tasks go to.
    "TASKS_BACKEND": "default",
    "TASKS_QUEUE": "default",
    # Without django-rq, the admin's resume, force-resume and restart run nothing: they show
    # the command to run on a server. True runs them inside the web request instead, as a
    # development convenience (a long run is killed by the web server's timeout mid-step).
    "ADMIN_RUNS_INLINE": False,
    # DRF permission classes guarding the API (warlock_ai.api). The default asks what the
    # admin asks: a logged-in user with the permission of what they do (view_snapshot to
    # read runs, resume_snapshot to resume, ...). A list here replaces it.
    "API_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticated",
        "warlock_ai.api.permissions.WarlockPermissions",
    ],
    # A dotted path to a function ``(request, queryset) -> queryset`` that narrows every
    # queryset the API reads (runs, checkpoints, cache entries), e.g. to the request user's
    # tenant; None: no narrowing.
    "API_QUERYSET": None,
}

STORE_KEYS = ("SNAPSHOT_STORE", "CHECKPOINT_STORE", "CACHE")


class WarlockSettings:
    """Attribute access to ``settings.WARLOCK_AI`` merged over :data:`DEFAULTS`."""

    def __init__(self) -> None:
        self._cache: dict[str, Any] | None = None

    def _load(self) -> dict[str, Any]:
        user = getattr(settings, "WARLOCK_AI", None) or {}
        if not isinstance(user, dict):
            raise ImproperlyConfigured(
                f"settings.WARLOCK_AI must be a dict, got {type(user).__name__}"
            )
        unknown = sorted(set(user) - set(DEFAULTS))
        if unknown:
            raise ImproperlyConfigured(
                f"settings.WARLOCK_AI has unknown keys {unknown}; known keys: {sorted(DEFAULTS)}"
            )
        merged = {**DEFAULTS, **user}
        for key in STORE_KEYS:
            merged[key] = _store_config(key, merged[key])
        return merged

    def __getattr__(self, name: str) -> Any:
        if name not in DEFAULTS:
            raise AttributeError(f"unknown WARLOCK_AI setting {name!r}")
        if self._cache is None:
            self._cache = self._load()
        return self._cache[name]

    def reload(self) -> None:
        self._cache = None


def _store_config(key: str, value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or "BACKEND" not in value:
        raise ImproperlyConfigured(
            f'settings.WARLOCK_AI["{key}"] must be '
            f'{{"BACKEND": "dotted.path", "OPTIONS": {{...}}}}, got {value!r}'
        )
    unknown = sorted(set(value) - {"BACKEND", "OPTIONS"})
    if unknown:
        raise ImproperlyConfigured(f'settings.WARLOCK_AI["{key}"] has unknown keys {unknown}')
    options = value.get("OPTIONS", {})
    if not isinstance(options, dict):
        raise ImproperlyConfigured(f'settings.WARLOCK_AI["{key}"]["OPTIONS"] must be a dict')
    return {"BACKEND": value["BACKEND"], "OPTIONS": dict(options)}


warlock_settings = WarlockSettings()


def _reload(*, setting: str, **kwargs: Any) -> None:
    if setting == "WARLOCK_AI":
        warlock_settings.reload()


setting_changed.connect(_reload)
