"""The run writer: how one execution saves its snapshots under its lease.

It decides the lease claim each write carries (acquire, renew, release), reads what the
store answered (a cancel request, a lease held elsewhere or lost, a failed write) and keeps
the lease alive with a heartbeat while a long step runs. Every kind of run writes through one.
"""

from __future__ import annotations

from collections.abc import Generator
from datetime import datetime
from typing import Any

from ..errors import AIError, LeaseHeldError, LeaseLostError, StoreError, to_ai_error
from .cancel import CancelRequest, CancelToken
from .effects import Save
from .heartbeat import Heartbeat, start_heartbeat
from .leases import ACQUIRE, RELEASE, RENEW, LeaseClaim, new_owner_id
from .snapshots import RUNNING, RunSnapshot

Effects = Generator[Any, Any, Any]


class RunWriter:
    """Writes the snapshots of one execution of ``run_id`` to ``store``.

    ``expected`` is the ``saved_at`` of the snapshot a resume loaded: the first write then
    also requires the stored snapshot to be that one (another worker may have resumed it).
    """

    __slots__ = ("cancel", "expected", "fenced", "heartbeat", "lease_held", "owner", "store")

    def __init__(self, store: Any, cancel: CancelToken, expected: datetime | None = None) -> None:
        self.store = store
        self.cancel = cancel
        self.expected = expected
        # One owner id per execution: it is also the fencing token of every write.
        self.owner = new_owner_id() if getattr(store, "supports_leases", False) else None
        self.lease_held = False
        self.fenced = False
        self.heartbeat: Heartbeat | None = None

    def claim(self, status: str) -> LeaseClaim | None:
        """Acquire on the first write, renew while running, release with the terminal one."""
        if self.owner is None:
            return None
        if not self.lease_held:
            expected, self.expected = self.expected, None
            return LeaseClaim(self.owner, ACQUIRE, expected)
        return LeaseClaim(self.owner, RENEW if status == RUNNING else RELEASE)

    def write(self, snapshot: RunSnapshot, status: str) -> Effects:
        """Save ``snapshot``; returns the failure of a write that did not happen, else None.

        A failed write never aborts the run (the run reports it). The lease is the exception:
        a run leased by a live worker is refused at its first write (``LeaseHeldError``), and
        a worker fenced out by a takeover stops at once (``LeaseLostError``); either way this
        execution writes nothing more.
        """
        if self.fenced:
            return None
        if status != RUNNING:
            self.stop_heartbeat()  # the terminal write releases the lease
        claim = self.claim(status)
        outcome = yield Save(self.store, snapshot, claim)
        if outcome is None:  # the common case, first
            if self.owner is not None:
                self.lease_held = status == RUNNING
                if claim is not None and claim.mode == ACQUIRE and status != RUNNING:
                    # No earlier write held the lease (they failed): the terminal write took
                    # it, and a finished run must not keep it (best effort, like any write).
                    yield Save(self.store, snapshot, LeaseClaim(self.owner, RELEASE))
            return None
        if isinstance(outcome, BaseException):
            if isinstance(outcome, (LeaseHeldError, LeaseLostError)):
                self.fenced = True
                self.stop_heartbeat()
                raise outcome
            failure: AIError = to_ai_error(outcome, wrap_as=StoreError)
            return failure
        if self.owner is not None:
            self.lease_held = status == RUNNING
        if isinstance(outcome, CancelRequest) and status == RUNNING:
            # Asked from outside (cancel_run, the admin): noticed at this check point.
            self.cancel.cancel(outcome.reason_text)
        return None

    def start_heartbeat(self, run_id: str) -> None:
        if self.lease_held and self.owner is not None:
            self.heartbeat = start_heartbeat(self.store, run_id, self.owner, self.cancel)

    def stop_heartbeat(self) -> None:
        if self.heartbeat is not None:
            self.heartbeat.stop()
            self.heartbeat = None
