"""At most N runs at once, per flow and per queue, across every host.

``WARLOCK_AI["CONCURRENCY"] = {"FLOWS": {"support-triage": 3}, "QUEUES": {"bulk": 10}}``: a
worker that starts or resumes a run of ``support-triage`` first takes one of its 3 slots
(:class:`~warlock_ai.models.ConcurrencySlot` rows, in the database the snapshot rows live in)
and gives it back when the run ends. Taking a slot is one short transaction that serialises
the takers of a scope (an advisory lock on PostgreSQL, which needs Django's default READ
COMMITTED isolation; ``BEGIN IMMEDIATE`` on SQLite), frees the slots of dead or vanished
workers, counts the runs holding one, and inserts; a slot is renewed every third of
``LEASE_SECONDS`` while its run runs, so the slot of a worker that died frees itself as its
run's lease does (at once when the worker was a process of this host).

A run over a limit waits for a slot up to ``CONCURRENCY_WAIT_SECONDS``, then its job goes back
on its queue (:class:`~warlock_ai.core.errors.ConcurrencyLimitError`, which the job bodies turn
into rq's ``Retry`` or a delivery pushed again), as often as it takes, without using one of
its attempts.
"""

from __future__ import annotations

import contextvars
import logging
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError, connections, router
from django.utils import timezone

from .conf import warlock_settings
from .core.errors import ConcurrencyLimitError
from .core.runs.leases import mark_ended, new_owner_id, owner_is_dead
from .db_lock import renewing, write_lock
from .models import ConcurrencySlot

__all__ = ["configured", "current_queue", "limits", "slot"]

logger = logging.getLogger("warlock_ai.concurrency")

#: The background queue of the job being run, set by the tasks framework's task; an rq job
#: knows its own (``rq.get_current_job().origin``).
current_queue: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "warlock_current_queue", default=None
)

_KINDS = {"FLOWS": "flow", "QUEUES": "queue"}


def configured() -> dict[str, dict[str, int]]:
    """``WARLOCK_AI["CONCURRENCY"]``, checked: ``ImproperlyConfigured`` (one line) when it is
    not ``{"FLOWS": {name: n}, "QUEUES": {name: n}}`` with every n an integer of 1 or more."""
    setting = warlock_settings.CONCURRENCY or {}
    if not isinstance(setting, dict) or set(setting) - set(_KINDS):
        raise ImproperlyConfigured(
            'WARLOCK_AI["CONCURRENCY"] must be {"FLOWS": {name: n}, "QUEUES": {name: n}}, '
            f"got {setting!r}"
        )
    for key, names in setting.items():
        if not isinstance(names, dict):
            raise ImproperlyConfigured(
                f'WARLOCK_AI["CONCURRENCY"]["{key}"] must be a dict of names to limits, '
                f"got {names!r}"
            )
        for name, limit in names.items():
            if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
                raise ImproperlyConfigured(
                    f'WARLOCK_AI["CONCURRENCY"]["{key}"]["{name}"] must be an integer of 1 or '
                    f"more, got {limit!r}"
                )
    return setting


def limits(name: str, queue: str | None) -> list[tuple[str, int]]:
    """``(scope, limit)`` of every limit a run of flow ``name`` from ``queue`` is under,
    sorted (every taker locks scopes in the same order)."""
    setting = configured()
    found = []
    for key, value in (("FLOWS", name), ("QUEUES", queue)):
        limit = (setting.get(key) or {}).get(value) if value is not None else None
        if limit is not None:
            found.append((f"{_KINDS[key]}:{value}", limit))
    return sorted(found)


def job_queue() -> str | None:
    """The queue the running job came from: the task's, or the rq job's."""
    queue = current_queue.get()
    if queue is not None:
        return queue
    try:
        from rq import get_current_job
    except ImportError:
        return None
    job = get_current_job()
    return str(job.origin) if job is not None else None


@contextmanager
def slot(name: str, holder: str) -> Iterator[None]:
    """Hold a slot of every limit run ``holder`` of flow ``name`` is under (none: nothing
    to do), renewed while the block runs and freed after it. Raises
    :class:`ConcurrencyLimitError` when one stayed full for ``CONCURRENCY_WAIT_SECONDS``."""
    scopes = limits(name, job_queue())
    if not scopes:
        yield
        return
    owner = new_owner_id()
    wait = float(warlock_settings.CONCURRENCY_WAIT_SECONDS)
    started = time.monotonic()
    while True:
        try:
            full = _take(scopes, holder, owner)
            problem = None
        except DatabaseError as exc:  # the database away: wait, then go back on the queue
            full, problem = scopes[0], f"{type(exc).__name__}: {exc}"
            connections[_db()].close_if_unusable_or_obsolete()
        if full is None:
            break
        waited = time.monotonic() - started
        if waited >= wait:
            scope, limit = full
            why = (
                f"could not take a slot of {scope} ({problem})"
                if problem
                else f"{scope} has its {limit} run(s) at once"
            )
            raise ConcurrencyLimitError(
                f"{why}: run {holder!r} waited {waited:.1f} s for a slot; its job goes back "
                "on its queue",
                scope=scope,
                limit=limit,
                waited_seconds=round(waited, 3),
            )
        time.sleep(min(random.uniform(0.1, 0.5), max(wait - waited, 0.01)))
    mine = ConcurrencySlot.objects.using(_db()).filter(owner=owner)
    try:
        with renewing(mine, f"concurrency slots of {owner}", lambda: {"expires_at": _expiry()}):
            yield
    finally:
        _free(owner)


def _db() -> str:
    return router.db_for_write(ConcurrencySlot) or "default"


def _expiry() -> Any:
    return timezone.now() + timedelta(seconds=float(warlock_settings.LEASE_SECONDS))


def _take(scopes: list[tuple[str, int]], holder: str, owner: str) -> tuple[str, int] | None:
    """Take a slot of every scope, all or none, in one transaction; the first full scope
    (with its limit), or None once taken. A run counts once per scope however many of its
    deliveries hold a row (each frees only its own)."""
    db = _db()
    rows = ConcurrencySlot.objects.using(db)
    with write_lock(db):
        now = timezone.now()
        for scope, limit in scopes:
            _serialise(db, scope)
            held = list(rows.filter(scope=scope).values_list("pk", "holder", "owner", "expires_at"))
            gone = [pk for pk, _, who, expires in held if expires < now or owner_is_dead(who)]
            if gone:
                rows.filter(pk__in=gone).delete()
            running = {run for pk, run, _, _ in held if pk not in gone}
            if holder not in running and len(running) >= limit:
                return scope, limit
        expires = _expiry()
        rows.bulk_create(
            ConcurrencySlot(scope=scope, holder=holder, owner=owner, expires_at=expires)
            for scope, _ in scopes
        )
    return None


def _serialise(db: str, scope: str) -> None:
    """Make the takers of ``scope`` wait for each other until this transaction ends."""
    connection = connections[db]
    if connection.vendor == "postgresql":
        level = (connection.settings_dict.get("OPTIONS") or {}).get("isolation_level")
        if level is not None and "READ_COMMITTED" not in str(getattr(level, "name", level)):
            raise ImproperlyConfigured(
                f'concurrency limits need READ COMMITTED on database "{db}" (its isolation '
                f"level is {getattr(level, 'name', level)}): a later snapshot would not see "
                "the slot another worker took while this one waited for the lock"
            )
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [scope])
    # SQLite: write_lock's BEGIN IMMEDIATE already serialises every writer.


def _free(owner: str) -> None:
    """Delete ``owner``'s slots; once more on a fresh connection if that fails. Left behind
    (the database away), they expire; meanwhile this process counts them as freed."""
    db = _db()
    for attempt in (1, 2):
        try:
            ConcurrencySlot.objects.using(db).filter(owner=owner).delete()
            return
        except DatabaseError as exc:
            if attempt == 2:
                mark_ended(owner)
                logger.warning(
                    "concurrency slots of %s not freed (they expire in LEASE_SECONDS): %s: %s",
                    owner, type(exc).__name__, exc,
                )  # fmt: skip
            else:
                connections[db].close_if_unusable_or_obsolete()
