"""The lease heartbeat: while a run holds its lease, its lease is renewed every third of
``lease_seconds``, so a step (or an iteration) longer than the lease keeps its run.

Without it, another worker's ``drain_runs`` would see the lease expire during a long model
call and take the run over. A renewal that finds another owner (or no run) cancels the run's
token: the run stops at its next check point, and its next write is refused
(``LeaseLostError``).

The renewal also brings back an operator's pending cancel request in the same round trip
(``renew_lease`` returns a :class:`CancelRequest`): the heartbeat then cancels the run's token,
so a step polling ``ctx.cancel`` sees it within one :func:`heartbeat_interval` instead of at
the run's next snapshot write.

One daemon thread per process renews every registered run when it falls due; registering
and unregistering a run is a dict operation, so runs shorter than a third of the lease (most
of them) cost the hot path next to nothing.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from typing import Any

from .cancel import CancelRequest, CancelToken
from .effects import worker_thread_exit_hooks

logger = logging.getLogger("warlock_ai.leases")

MIN_INTERVAL = 0.05  # seconds
IDLE_WAIT = 1.0  # seconds the thread sleeps when no run is registered


def heartbeat_interval(store: Any) -> float:
    """Seconds between two renewals of a lease on ``store``: a third of its ``lease_seconds``
    (also how long an operator's cancel takes at most to reach a running step)."""
    return max(float(getattr(store, "lease_seconds", 300)) / 3, MIN_INTERVAL)


class Heartbeat:
    """One run's registration with the scheduler."""

    _ids = itertools.count()

    def __init__(self, store: Any, run_id: str, owner: str, cancel: CancelToken) -> None:
        self.store, self.run_id, self.owner, self.cancel = store, run_id, owner, cancel
        self.interval = heartbeat_interval(store)
        self.due = time.monotonic() + self.interval
        self.key = next(self._ids)
        self.renewals = 0
        self.stopped = False

    def stop(self) -> None:
        self.stopped = True
        _scheduler.remove(self)

    def beat(self) -> bool:
        """Renew once; False (and the run cancelled) once the lease is someone else's.

        A renewal that brings back an operator's cancel request cancels the run's token and
        keeps renewing: the run still holds its lease until its terminal write."""
        self.due = time.monotonic() + self.interval
        try:
            held = self.store.renew_lease(self.run_id, self.owner)
        except Exception as exc:  # a blip: the next beat tries again, the lease has slack
            logger.warning("lease renewal of run %r failed: %s", self.run_id, exc)
            return True
        if isinstance(held, CancelRequest) and not self.cancel.cancelled:
            logger.info("run %r: cancel requested by an operator; stopping", self.run_id)
            self.cancel.cancel(held.reason_text)
        if held:
            self.renewals += 1
            return True
        if not self.stopped:
            logger.warning("run %r: lease lost to another worker; stopping", self.run_id)
            self.cancel.cancel("this worker lost the run's lease to another worker")
        return False


class _Scheduler:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.beats: dict[int, Heartbeat] = {}
        self.wake = threading.Event()
        self.thread: threading.Thread | None = None

    def add(self, beat: Heartbeat) -> None:
        with self.lock:
            self.beats[beat.key] = beat
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(
                    target=self.loop, name="warlock-heartbeat", daemon=True
                )
                self.thread.start()
        self.wake.set()

    def remove(self, beat: Heartbeat) -> None:
        with self.lock:
            self.beats.pop(beat.key, None)

    def loop(self) -> None:
        while True:
            with self.lock:
                beats = list(self.beats.values())
            now = time.monotonic()
            due = [b for b in beats if b.due <= now]
            for beat in due:
                if not beat.stopped and not beat.beat():
                    self.remove(beat)
            if due:
                _release_thread_resources()
            waits = [b.due - time.monotonic() for b in beats if b.key in self.beats]
            self.wake.wait(max(min(waits, default=IDLE_WAIT), 0.0))
            self.wake.clear()


def _release_thread_resources() -> None:
    """E.g. close this thread's database connections between rounds."""
    for hook in worker_thread_exit_hooks:
        try:
            hook()
        except Exception:
            logger.exception("heartbeat exit hook %r failed", hook)


_scheduler = _Scheduler()


def _after_fork() -> None:
    global _scheduler
    _scheduler = _Scheduler()  # the parent's thread and lock do not exist in the child


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


def start_heartbeat(store: Any, run_id: str, owner: str | None, cancel: CancelToken) -> Any:
    """A registered heartbeat when the store leases runs and this execution holds one."""
    if owner is None or store is None or not getattr(store, "supports_leases", False):
        return None
    beat = Heartbeat(store, run_id, owner, cancel)
    _scheduler.add(beat)
    return beat
