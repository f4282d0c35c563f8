"""rq workers whose warm shutdown reaches the running run, and that sweep for the runs of
dead workers: :class:`Worker` (a forked work horse per job, as rq's own) and
:class:`SimpleWorker` (jobs in the worker's process: warm Django, stores and connection).

``python manage.py rqworker --worker-class warlock_ai.worker.Worker`` (or
``RQ = {"WORKER_CLASS": "warlock_ai.worker.Worker"}`` in settings). rq's own worker, on SIGTERM
or Ctrl-C, waits for the current job to finish, however long its run takes, until the
platform loses patience and SIGKILLs both (the run is then recovered as a crash). This one
also sends SIGTERM to the job's work horse: the run stops at its next check point within
``WARLOCK_AI["SHUTDOWN_GRACE_SECONDS"]``, with its snapshot stored and its lease released,
the job fails and rq delivers it again to another worker, which resumes the run at once.

It also sweeps (``warlock_ai.sweep``): at boot, then every ``WARLOCK_AI["SWEEP_SECONDS"]``
(jittered), it puts back the jobs of dead workers and enqueues a resume of every run no live
worker holds, so a host that dies is recovered by the others without a restart. It sweeps
while idle (its blocking wait for a job wakes up for it) and while its work horse runs a
job (between the horse's heartbeats), in the parent process, which closes its database
connections after each sweep so that no horse inherits one.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
from typing import Any

from django.db import close_old_connections
from rq import SimpleWorker as RQSimpleWorker
from rq import Worker as RQWorker
from rq.exceptions import StopRequested

from .sweep import Sweeper

__all__ = ["SimpleWorker", "Worker"]

#: How many times per sweep interval an idle worker, or the parent of a busy one, wakes up
#: to see whether a sweep is due (a blocking pop on Redis, a heartbeat: both cheap).
WAKE_UPS_PER_SWEEP = 5


class _Sweeping:
    """What both worker classes add to rq's: the sweep, and a warm shutdown that reaches the
    run."""

    #: Whether the process forks a work horse per job (its parent must close its database
    #: connections after a sweep, so that no horse inherits one).
    forks = True

    job_monitoring_interval: int
    horse_pid: int

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.sweeper = Sweeper(  # before rq reads dequeue_timeout
            close_connections=self.forks, passthrough=(StopRequested,)
        )
        super().__init__(*args, **kwargs)
        if self.sweeper.enabled:
            self.job_monitoring_interval = min(self.job_monitoring_interval, self._wake_every())

    def _wake_every(self) -> int:
        # rq's timers are whole seconds (SIGALRM, BLPOP timeouts).
        return max(1, int(self.sweeper.interval / WAKE_UPS_PER_SWEEP))

    @property
    def dequeue_timeout(self) -> int:
        # A constant, not the time left to the next sweep: rq sizes the Redis socket's timeout
        # from it once.
        timeout: int = super().dequeue_timeout  # type: ignore[misc]
        return min(timeout, self._wake_every()) if self.sweeper.enabled else timeout

    @property
    def should_run_maintenance_tasks(self) -> bool:
        return self.sweeper.due() or bool(super().should_run_maintenance_tasks)  # type: ignore[misc]

    def run_maintenance_tasks(self) -> None:
        if super().should_run_maintenance_tasks:  # type: ignore[misc]
            super().run_maintenance_tasks()  # type: ignore[misc]
        self.sweeper.run_if_due()

    def maintain_heartbeats(self, job: Any, execution: Any) -> None:
        super().maintain_heartbeats(job, execution)  # type: ignore[misc]
        self.sweeper.run_if_due()

    def unsubscribe(self) -> None:
        # redis-py 8's PubSubWorkerThread.stop() waits for the thread without a timeout, and
        # the thread sits in a read of up to 60 s: rq's own join(timeout=1) that follows never
        # gets its turn, and a worker took up to a minute to exit after its last job.
        thread = getattr(self, "pubsub_thread", None)
        if thread is not None and hasattr(thread, "stop"):
            thread.stop = functools.partial(type(thread).stop, thread, timeout=1)
        super().unsubscribe()  # type: ignore[misc]

    def handle_warm_shutdown_request(self) -> None:
        super().handle_warm_shutdown_request()  # type: ignore[misc]
        horse = self.horse_pid
        if horse:
            with contextlib.suppress(ProcessLookupError):  # the job ended meanwhile
                os.kill(horse, signal.SIGTERM)


class Worker(_Sweeping, RQWorker):
    """rq's forking worker (a work horse per job, isolated), sweeping, with a warm shutdown
    that reaches the run."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _warm()


class SimpleWorker(_Sweeping, RQSimpleWorker):
    """rq's ``SimpleWorker`` (jobs run in the worker process: Django, the stores and the
    database connection stay warm from one job to the next), sweeping. A SIGTERM stops the
    running run at its next check point, as with :class:`Worker`. Database connections are
    looked after as around a web request: before and after each job, those that broke or
    outlived ``CONN_MAX_AGE`` are closed (with the default ``CONN_MAX_AGE`` of 0, that is
    every job's: give workers a ``CONN_MAX_AGE`` to keep theirs)."""

    forks = False

    def perform_job(self, job: Any, queue: Any, execution: Any) -> bool:
        close_old_connections()
        try:
            return bool(super().perform_job(job, queue, execution))
        finally:
            close_old_connections()


def _warm() -> None:
    """Import the job functions and build the snapshot store in the parent, so that each
    forked work horse inherits them instead of doing it again (no connection is opened)."""
    from . import jobs  # noqa: F401
    from .runs import snapshot_store

    with contextlib.suppress(Exception):  # a misconfigured store fails in the job, in one line
        snapshot_store()
