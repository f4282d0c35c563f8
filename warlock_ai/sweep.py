"""Recovery without restarts: every worker sweeps, now and then, for what dead workers left.

A sweep is what ``drain_runs --enqueue`` does: it puts back on the queue the jobs (django-rq) or
deliveries (the tasks framework) whose worker died, then enqueues a resume of every run no
live worker holds: its lease expired, or its holder, a process of this host, is gone. It is
cheap (the stale runs are found through the snapshot table's status index, among running runs
only) and safe from any number of hosts at once: enqueues are one job per run, and leases
decide which worker runs it.

:class:`Sweeper` keeps the schedule: every ``WARLOCK_AI["SWEEP_SECONDS"]``, each interval
jittered by +/-20% so hosts booted together drift apart. ``warlock_ai.worker.Worker`` (rq)
sweeps from its main loop, idle or between heartbeats of a running job;
``manage.py warlock_db_worker`` (django-tasks-db) sweeps from a thread.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from django.db import connections

from .background import requeue_abandoned
from .conf import warlock_settings
from .operations import drain_runs

__all__ = ["JITTER", "SweepThread", "Sweeper", "sweep"]

logger = logging.getLogger("warlock_ai.sweep")

#: Each interval is the setting times a factor drawn from [1 - JITTER, 1 + JITTER].
JITTER = 0.2


def sweep() -> list[tuple[str, str]]:
    """One sweep: put back the jobs or tasks of dead workers, then enqueue a resume of every
    stale run (``drain_runs --enqueue``); returns what it did, ``(run_id, outcome)`` pairs."""
    requeued = requeue_abandoned()
    return [*requeued, *drain_runs(enqueue=True, requeue=False)]


class Sweeper:
    """When the next sweep is due, and the sweep itself, which never raises.

    ``interval``: seconds between sweeps (default ``WARLOCK_AI["SWEEP_SECONDS"]``; 0 or None:
    never due). The first sweep is due at once (a worker that boots recovers what the workers
    it replaces left), later ones one jittered interval after the previous one ended.
    """

    def __init__(
        self,
        interval: float | None = None,
        *,
        jitter: float = JITTER,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        close_connections: bool = False,
        passthrough: tuple[type[BaseException], ...] = (),
    ) -> None:
        if interval is None:
            interval = warlock_settings.SWEEP_SECONDS
        self.interval = float(interval or 0)
        self.jitter = jitter
        self.clock = clock
        self.rng = rng or random.Random()
        self.close_connections = close_connections
        #: Exceptions a sweep lets through: how the worker around it is told to stop (rq's
        #: SIGTERM handler raises ``StopRequested`` when the worker is not busy).
        self.passthrough = passthrough
        self.next_at = clock()
        self.sweeps = 0
        self.failures = 0

    @property
    def enabled(self) -> bool:
        return self.interval > 0

    def due(self) -> bool:
        return self.enabled and self.clock() >= self.next_at

    def seconds_left(self) -> float:
        """Seconds until the next sweep is due (0: now); ``inf`` when sweeping is off."""
        if not self.enabled:
            return float("inf")
        return max(0.0, self.next_at - self.clock())

    def next_interval(self) -> float:
        return self.interval * self.rng.uniform(1 - self.jitter, 1 + self.jitter)

    def run(self) -> list[Any]:
        """Sweep now and schedule the next one; a failure (database or Redis away) is logged
        in one line and retried at the next interval, never raised into the worker."""
        started = self.clock()
        try:
            outcomes = sweep()
        except self.passthrough:
            raise
        except Exception as exc:
            self.failures += 1
            logger.warning("sweep failed: %s: %s", type(exc).__name__, exc)
            outcomes = []
        finally:
            self.sweeps += 1
            self.next_at = self.clock() + self.next_interval()
            if self.close_connections:
                # A forking worker's parent must not hand an open connection to its horses;
                # a sweeping thread's connections are its own (connections are per thread).
                connections.close_all()
        acted = [o for o in outcomes if not str(o[1]).startswith("skipped")]
        if acted:
            logger.info(
                "sweep: %d run(s) put back in %.0f ms: %s",
                len(acted),
                (self.clock() - started) * 1000,
                ", ".join(f"{run_id} ({outcome})" for run_id, outcome in acted[:10]),
            )
        return outcomes

    def run_if_due(self) -> list[Any] | None:
        return self.run() if self.due() else None


class SweepThread(threading.Thread):
    """A daemon thread sweeping on a :class:`Sweeper`'s schedule, for a worker that does not
    fork (django-tasks-db's ``db_worker``): it has its own database connections, closed after
    each sweep. ``stop()`` ends it at its next wake-up."""

    def __init__(self, sweeper: Sweeper | None = None) -> None:
        super().__init__(name="warlock-sweep", daemon=True)
        self.sweeper = sweeper or Sweeper()
        self.sweeper.close_connections = True  # the thread's own, after each sweep
        self._stop_event = threading.Event()

    def run(self) -> None:
        while self.sweeper.enabled and not self._stop_event.is_set():
            self.sweeper.run_if_due()
            self._stop_event.wait(min(self.sweeper.seconds_left(), 1.0))

    def stop(self, timeout: float | None = None) -> None:
        self._stop_event.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout)
