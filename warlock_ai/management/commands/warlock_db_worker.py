"""``manage.py warlock_db_worker``: django-tasks-db's ``db_worker``, sweeping.

The same options as ``db_worker`` (``--queue-name``, ``--backend``, ``--batch``, ...). Beside
the tasks it runs, a thread sweeps every ``WARLOCK_AI["SWEEP_SECONDS"]`` (jittered), at boot
first: the deliveries of dead workers go back on their queue and every run no live worker
holds is enqueued again (``warlock_ai.sweep``), so a host that dies is recovered by the
others without a restart.
"""

from __future__ import annotations

import signal
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from warlock_ai import background
from warlock_ai.sweep import SweepThread

DBWorker: Any
try:
    from django_tasks_db.management.commands.db_worker import Command as DBWorker
except ImportError:  # django-tasks-db is not installed: the command says so when run
    DBWorker = None

STOP_SIGNALS = [
    signal.SIGINT,
    signal.SIGTERM,
    *([signal.SIGQUIT] if hasattr(signal, "SIGQUIT") else []),
]

NEEDS = (
    "warlock_db_worker needs django-tasks-db: pip install 'warlock-ai[tasks]', add "
    '"django_tasks_db" to INSTALLED_APPS and set WARLOCK_AI["BACKGROUND"] = "tasks"'
)


class Command(DBWorker or BaseCommand):  # type: ignore[misc]
    help = (
        "Run tasks of Django's tasks framework from django-tasks-db's database backend, as "
        "db_worker does, and sweep every WARLOCK_AI['SWEEP_SECONDS'] for the runs and "
        "deliveries of dead workers (they are enqueued again)."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        if DBWorker is None:
            raise CommandError(NEEDS)
        if background.kind() != background.TASKS:
            raise CommandError(
                'warlock_db_worker runs warlock_ai\'s tasks: set WARLOCK_AI["BACKGROUND"] = '
                f'"tasks" (it is {background.kind()!r})'
            )
        sweeping = SweepThread()
        if sweeping.sweeper.enabled:
            sweeping.start()
        # db_worker installs its own SIGINT/SIGTERM handlers and leaves them when it returns
        # (--batch): put back the caller's, for call_command in a process that goes on.
        handlers = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
        try:
            super().handle(*args, **options)
        finally:
            sweeping.stop(timeout=5)
            for sig, handler in handlers.items():
                if handler is not None:
                    signal.signal(sig, handler)
