"""An rq worker whose warm shutdown reaches the running run.

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
import os
import signal
from typing import Any

from rq import Worker as RQWorker

from .sweep import Sweeper

__all__ = ["Worker"]

#: How many times per sweep interval an idle worker, or the parent of a busy one, wakes up
#: to see whether a sweep is due (a blocking pop on Redis, a heartbeat: both cheap).
WAKE_UPS_PER_SWEEP = 5


class Worker(RQWorker):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.sweeper = Sweeper(close_connections=True)  # before rq reads dequeue_timeout
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
        timeout = super().dequeue_timeout
        return min(timeout, self._wake_every()) if self.sweeper.enabled else timeout

    @property
    def should_run_maintenance_tasks(self) -> bool:
        return self.sweeper.due() or super().should_run_maintenance_tasks

    def run_maintenance_tasks(self) -> None:
        if super().should_run_maintenance_tasks:
            super().run_maintenance_tasks()
        self.sweeper.run_if_due()

    def maintain_heartbeats(self, job: Any, execution: Any) -> None:
        super().maintain_heartbeats(job, execution)
        self.sweeper.run_if_due()

    def handle_warm_shutdown_request(self) -> None:
        super().handle_warm_shutdown_request()
        horse = self.horse_pid
        if horse:
            with contextlib.suppress(ProcessLookupError):  # the job ended meanwhile
                os.kill(horse, signal.SIGTERM)
