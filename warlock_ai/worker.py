"""An rq worker whose warm shutdown reaches the running run.

``python manage.py rqworker --worker-class warlock_ai.worker.Worker`` (or
``RQ = {"WORKER_CLASS": "warlock_ai.worker.Worker"}`` in settings). rq's own worker, on SIGTERM
or Ctrl-C, waits for the current job to finish, however long its run takes, until the
platform loses patience and SIGKILLs both (the run is then recovered as a crash). This one
also sends SIGTERM to the job's work horse: the run stops at its next check point within
``WARLOCK_AI["SHUTDOWN_GRACE_SECONDS"]``, with its snapshot stored and its lease released,
the job fails and rq delivers it again to another worker, which resumes the run at once.
"""

from __future__ import annotations

import contextlib
import os
import signal

from rq import Worker as RQWorker

__all__ = ["Worker"]


class Worker(RQWorker):
    def handle_warm_shutdown_request(self) -> None:
        super().handle_warm_shutdown_request()
        horse = self.horse_pid
        if horse:
            with contextlib.suppress(ProcessLookupError):  # the job ended meanwhile
                os.kill(horse, signal.SIGTERM)
