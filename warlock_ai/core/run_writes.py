"""How an execution writes its snapshots under a lease: the claim each write carries, what a
write's outcome means (a cancel request, a lease held elsewhere or lost, a failed write), and
the heartbeat while the lease is held. Shared by the workflow and the supervisor engines."""

from __future__ import annotations

import logging
from collections.abc import Generator
from typing import Any, ClassVar

from .cancel import CancelRequest, CancelToken
from .effects import Save
from .errors import LeaseHeldError, LeaseLostError, StoreError, to_ai_error
from .heartbeat import start_heartbeat
from .leases import ACQUIRE, RELEASE, RENEW, LeaseClaim, new_owner_id
from .snapshots import RUNNING

Effects = Generator[Any, Any, Any]


class LeasedWrites:
    """Mixin of an engine run. The host has ``store``, ``run_id``, ``cancel``,
    ``resume_from`` and an ``emit`` generator, and names its ``error_event`` and ``logger``."""

    error_event: ClassVar[str]
    logger: ClassVar[logging.Logger]
    store: Any
    run_id: str
    cancel: CancelToken
    resume_from: Any

    def init_lease(self, store: Any) -> None:
        # One owner id per execution: it is also the fencing token of every write.
        self.owner = new_owner_id() if getattr(store, "supports_leases", False) else None
        self.lease_held = False
        self.heartbeat: Any = None
        self.writes = 0

    def claim(self, status: str) -> LeaseClaim | None:
        """Acquire on the first write, renew while running, release with the terminal one.
        A resume's acquire also requires the stored snapshot to be the one it loaded."""
        if self.owner is None:
            return None
        mode = ACQUIRE if not self.lease_held else RENEW if status == RUNNING else RELEASE
        expected = None
        if mode == ACQUIRE and self.resume_from is not None and not self.writes:
            expected = self.resume_from.saved_at
        return LeaseClaim(self.owner, mode, expected)

    def write(self, snapshot: Any, status: str) -> Effects:
        """Save ``snapshot``; a failed write is reported (event + log) and never aborts the run.

        The exception is the lease: a run leased by a live worker is refused at its first
        write (``LeaseHeldError``), and a worker fenced out by a takeover stops at once
        (``LeaseLostError``); either way this execution writes nothing more.
        """
        if status != RUNNING:
            self.stop_heartbeat()  # the terminal write releases the lease
        failure = yield Save(self.store, snapshot)
        self.writes += 1
        if not isinstance(failure, BaseException):
            if self.owner is not None:
                self.lease_held = status == RUNNING
            if isinstance(failure, CancelRequest) and status == RUNNING:
                # Asked from outside (cancel_run, the admin): noticed at this check point.
                self.cancel.cancel(failure.reason or "cancel requested by an operator")
            return
        if isinstance(failure, (LeaseHeldError, LeaseLostError)):
            self.store = None
            raise failure
        err = to_ai_error(failure, wrap_as=StoreError)
        self.logger.warning(
            "snapshot write failed for run %r (status=%s): %s", self.run_id, status, err.message
        )
        yield from self.emit(self.error_event, error=err, phase="persist")

    def start_heartbeat(self) -> None:
        held = self.owner if self.lease_held else None
        self.heartbeat = start_heartbeat(self.store, self.run_id, held, self.cancel)

    def stop_heartbeat(self) -> None:
        if self.heartbeat is not None:
            self.heartbeat.stop()
            self.heartbeat = None
