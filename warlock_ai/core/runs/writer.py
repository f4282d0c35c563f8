"""The run writer: how one execution saves its snapshots under its lease.

It decides the lease claim each write carries (acquire, renew, release), reads what the
store answered (a cancel request, a lease held elsewhere or lost, a failed write) and keeps
the lease alive with a heartbeat while a long step runs. Every kind of run writes through one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Generator, Iterator
from dataclasses import replace
from datetime import datetime
from typing import Any

from ..errors import (
    AIError,
    LeaseHeldError,
    LeaseLostError,
    StoreError,
    StoreUnavailableError,
    to_ai_error,
)
from .cancel import CancelRequest, CancelToken
from .effects import Call, Save, Sleep
from .heartbeat import Heartbeat, start_heartbeat
from .leases import ACQUIRE, RELEASE, RENEW, LeaseClaim, mark_ended, new_owner_id
from .snapshots import RUNNING, RunSnapshot, now

Effects = Generator[Any, Any, Any]

logger = logging.getLogger("warlock_ai.persistence")

#: How long a write keeps retrying while its store cannot be reached, unless the store says
#: otherwise (its ``write_retry_seconds``).
WRITE_RETRY_SECONDS = 15.0
#: The first wait before a retry; each wait doubles, up to ``MAX_RETRY_DELAY``.
FIRST_RETRY_DELAY = 0.05
MAX_RETRY_DELAY = 2.0
#: A write whose answer took longer than this share of the lease may have outlived the lease
#: it renewed: the writer renews once more before the run goes on (the rest is the margin
#: for clock drift between hosts).
LEASE_SAFE_SHARE = 2 / 3
#: Until this share of the lease after the write was sent, a renewal that fails (the store
#: still flapping) is tried again: the lease is still this worker's.
LEASE_SURE_SHARE = 0.9


def is_transient(error: BaseException) -> bool:
    """Whether a write that failed with ``error`` may succeed when made again: the store
    could not be reached (``StoreUnavailableError``, or Python's connection and timeout
    errors from a store that does not classify its own)."""
    return isinstance(error, StoreUnavailableError | ConnectionError | TimeoutError)


def retry_delays(budget: float) -> Iterator[float]:
    """The waits between retries: doubling from ``FIRST_RETRY_DELAY``, capped at
    ``MAX_RETRY_DELAY``, as many as fit in ``budget`` seconds."""
    delay, spent = FIRST_RETRY_DELAY, 0.0
    while spent + delay <= budget:
        yield delay
        spent += delay
        delay = min(delay * 2, MAX_RETRY_DELAY)


def landed(store: Any, snapshot: RunSnapshot, claim: LeaseClaim | None) -> bool | None:
    """Whether a write whose answer was lost (the connection dropped after the store had
    committed it) is stored: the stored run is this snapshot, with the lease the claim left.
    None when the store cannot tell yet (still unreachable).

    Asked before a retry, and when a retry is refused by the lease, so that a write that
    already happened is neither made again nor refused by its own lease (a release already
    made, a resume's version check already passed).
    """
    if claim is None:
        return False  # an unfenced write is an idempotent upsert: retrying it is enough
    try:
        stored = store.load(snapshot.run_id)
        lease = store.lease(snapshot.run_id) if stored is not None else None
    except Exception:
        return None  # still unreachable: do not write blind, ask again later
    if stored is None or stored.saved_at != snapshot.saved_at or stored.status != snapshot.status:
        return False
    holder = lease[0] if lease else None
    return not holder if claim.mode == RELEASE else holder == claim.owner


class RunWriter:
    """Writes the snapshots of one execution of ``run_id`` to ``store``.

    ``expected`` is the ``saved_at`` of the snapshot a resume loaded: the first write then
    also requires the stored snapshot to be that one (another worker may have resumed it).
    """

    __slots__ = (
        "base",
        "cancel",
        "expected",
        "fenced",
        "heartbeat",
        "last",
        "lease",
        "lease_held",
        "owner",
        "sent_at",
        "store",
        "unconfirmed",
    )

    def __init__(self, store: Any, cancel: CancelToken, expected: datetime | None = None) -> None:
        self.store = store
        self.cancel = cancel
        self.expected = expected
        # One owner id per execution: it is also the fencing token of every write.
        self.owner = new_owner_id() if getattr(store, "supports_leases", False) else None
        self.lease_held = False
        self.fenced = False
        self.heartbeat: Heartbeat | None = None
        #: The last snapshot stored: what an interrupted execution leaves (lease released).
        self.last: RunSnapshot | None = None
        #: The state encoding of the last write known to have landed, which each write
        #: names as its ``delta_base``; None after a write that failed (the store may hold
        #: it or not), so that the next write is whole.
        self.base: Any = None
        #: The store's lease, in seconds (read once: the late-answer check is on every write).
        self.lease = float(getattr(store, "lease_seconds", 300))
        #: ``time.monotonic()`` when the write that landed last was sent (the first attempt
        #: of one that was retried: the earliest it may have renewed the lease).
        self.sent_at = 0.0
        #: Seconds the answer to the acquiring write took, when that was long enough to
        #: doubt the lease: the run confirms it before its first step (``confirm_pending``).
        self.unconfirmed: float | None = None

    def claim(self, status: str, release: bool = False) -> LeaseClaim | None:
        """Acquire on the first write, renew while running, release with the terminal one
        (or with ``release``: an interrupted run stays running, and lets go of its lease)."""
        if self.owner is None:
            return None
        if not self.lease_held:
            # ``expected`` holds until an acquire lands (a failed first write keeps it).
            return LeaseClaim(self.owner, ACQUIRE, self.expected)
        return LeaseClaim(self.owner, RENEW if status == RUNNING and not release else RELEASE)

    def write(self, snapshot: RunSnapshot, status: str, release: bool = False) -> Effects:
        """Save ``snapshot``; returns the failure of a write that did not happen, else None.

        A failed write never aborts the run (the run reports it). The lease is the exception:
        a run leased by a live worker is refused at its first write (``LeaseHeldError``), and
        a worker fenced out by a takeover stops at once (``LeaseLostError``); either way this
        execution writes nothing more.
        """
        if self.fenced:
            return None
        if status != RUNNING or release:
            self.stop_heartbeat()  # the terminal write releases the lease
        claim = self.claim(status, release)
        snapshot.with_delta_base(self.base)
        self.sent_at = time.monotonic()
        outcome = yield Save(self.store, snapshot, claim)
        if outcome is not None and isinstance(outcome, BaseException) and is_transient(outcome):
            outcome = yield from self.retry(snapshot, claim, outcome)
        if outcome is not None and isinstance(outcome, BaseException):
            self.base = None
            if isinstance(outcome, (LeaseHeldError, LeaseLostError)):
                self.fenced = True
                self.stop_heartbeat()
                raise outcome
            failure: AIError = to_ai_error(outcome, wrap_as=StoreError)
            return failure
        # Stored (the store answered None, or an operator's CancelRequest).
        self.last = snapshot
        self.base = snapshot.state_encoding()
        if self.owner is not None:
            self.lease_held = status == RUNNING and not release
            if claim is not None and claim.mode == ACQUIRE:
                self.expected = None  # the version check has passed
                if not self.lease_held:
                    # No earlier write held the lease (they failed): this write took it, and
                    # a finished or interrupted run must not keep it (best effort).
                    snapshot.with_delta_base(self.base)
                    yield Save(self.store, snapshot, LeaseClaim(self.owner, RELEASE))
        if outcome is not None and status == RUNNING and isinstance(outcome, CancelRequest):
            # Asked from outside (cancel_run, the admin): noticed at this check point.
            self.cancel.cancel(outcome.reason_text)
        if self.lease_held:
            waited = time.monotonic() - self.sent_at
            if waited > self.lease * LEASE_SAFE_SHARE > 0:
                if claim is not None and claim.mode == ACQUIRE:
                    self.unconfirmed = waited  # before the first step, inside the run
                else:
                    yield from self.confirm_lease(snapshot.run_id, waited)
        return None

    def confirm_pending(self, run_id: str) -> Effects:
        """Confirm the lease the first write took, if its answer came back late."""
        waited, self.unconfirmed = self.unconfirmed, None
        if waited is not None and self.lease_held and not self.fenced:
            yield from self.confirm_lease(run_id, waited)

    def confirm_lease(self, run_id: str, waited: float) -> Effects:
        """The answer to a write came back ``waited`` seconds after it was sent (a network
        cut, a stalled store): the lease it renewed may have lapsed meanwhile and another
        worker resumed the run, so the run must not start its next step on it. A renewal
        answered within two thirds of the lease decides: held, the run goes on; refused,
        slow again (three times), or failing until the lease may have lapsed, this execution
        stops as fenced (``LeaseLostError``; the stored run stays as the write left it, for
        whoever holds or takes the lease). The heartbeat cannot tell in time: it renews every
        third of the lease, and was stuck behind the same cut."""
        lease = self.lease
        sure_until = self.sent_at + lease * LEASE_SURE_SHARE
        why = f"a snapshot write was answered {waited:.1f} s after it was sent"
        slow, delays = 0, retry_delays(lease)
        holder = None
        while True:
            sent = time.monotonic()
            held = yield Call(_renewed, (self.store, run_id, self.owner), offload=True)
            if isinstance(held, BaseException):
                delay = next(delays, MAX_RETRY_DELAY)
                if time.monotonic() + delay < sure_until:
                    yield Sleep(delay, None)
                    continue
                lost = f"its renewal kept failing: {_one_line(held)}"
                break
            if not held:
                holder = yield Call(_holder, (self.store, run_id), offload=True)
                lost = f"its lease is {holder}'s now" if holder else "its lease is gone"
                break
            if isinstance(held, CancelRequest):
                self.cancel.cancel(held.reason_text)
            if time.monotonic() - sent <= lease * LEASE_SAFE_SHARE:
                self.sent_at = sent
                return
            slow += 1
            if slow == 3:
                lost = "three renewals were answered as late"
                break
        self.fenced = True
        self.stop_heartbeat()
        raise LeaseLostError(
            f"run {run_id!r}: {why}, longer than {LEASE_SAFE_SHARE:.0%} of the lease, and "
            f"{lost}; this worker stops before the next step",
            run_id=run_id,
            owner=holder,
        )

    def retry(self, snapshot: RunSnapshot, claim: LeaseClaim | None, error: Any) -> Effects:
        """Make a write that failed because the store could not be reached again, waiting
        longer each time, for up to the store's ``write_retry_seconds``; returns the last
        outcome (the store's answer, or the exception of a write that kept failing)."""
        budget = float(getattr(self.store, "write_retry_seconds", WRITE_RETRY_SECONDS))
        run_id, tries = snapshot.run_id, 0
        logger.warning(
            "snapshot write for run %r failed (%s); retrying for up to %g s",
            run_id,
            _one_line(error),
            budget,
        )
        for delay in retry_delays(budget):
            yield Sleep(delay, None)
            tries += 1
            stored = yield Call(landed, (self.store, snapshot, claim), offload=True)
            if stored:
                logger.warning("snapshot write for run %r had been stored after all", run_id)
                return None
            if stored is None:  # the store cannot be read yet: writing blind could repeat
                continue  # a write it already made, and be refused by this run's own lease
            attempt_at = time.monotonic()
            outcome = yield Save(self.store, snapshot, claim)
            if not isinstance(outcome, BaseException):
                logger.warning("snapshot write for run %r stored at retry %d", run_id, tries)
                self.sent_at = attempt_at  # this attempt renewed the lease, not the first
                return outcome
            if isinstance(outcome, LeaseHeldError | LeaseLostError):
                # Refused by the lease: maybe by this run's own earlier write, which landed
                # between the check and the retry.
                if (yield Call(landed, (self.store, snapshot, claim), offload=True)):
                    return None
                return outcome
            if not is_transient(outcome):
                return outcome
            error = outcome
        logger.error(
            "snapshot write for run %r still failing after %d retries over %g s: %s",
            run_id,
            tries,
            budget,
            _one_line(error),
        )
        return error

    def let_go(self, attempts: tuple[Any, ...]) -> Effects:
        """Release the lease, leaving the last stored snapshot as it is but for its
        ``attempts`` (an execution stopped by ``KeyboardInterrupt``, ``SystemExit`` or task
        cancellation, recorded as such): best effort, once."""
        if self.owner is None or not self.lease_held or self.last is None or self.fenced:
            return
        self.stop_heartbeat()
        snapshot = replace(self.last, attempts=attempts, saved_at=now())  # type: ignore[type-var]
        outcome = yield Save(self.store, snapshot, LeaseClaim(self.owner, RELEASE))
        if not isinstance(outcome, BaseException):
            self.lease_held = False

    def end(self, ended: bool = True) -> None:
        """The execution is over. When it ``ended`` knowingly (not by an exception it cannot
        see the end of), a lease whose release did not land (the store was down) is marked as
        this process's dead execution, so a resume from this process is not refused for the
        lease's remaining time."""
        self.stop_heartbeat()
        if ended and self.owner is not None and self.lease_held:
            mark_ended(self.owner)

    def start_heartbeat(self, run_id: str) -> None:
        if self.lease_held and self.owner is not None:
            self.heartbeat = start_heartbeat(self.store, run_id, self.owner, self.cancel)

    def stop_heartbeat(self) -> None:
        if self.heartbeat is not None:
            self.heartbeat.stop()
            self.heartbeat = None


def _renewed(store: Any, run_id: str, owner: str) -> Any:
    """What ``store.renew_lease`` answered, or the exception it raised."""
    try:
        return store.renew_lease(run_id, owner)
    except Exception as exc:
        return exc


def _holder(store: Any, run_id: str) -> str | None:
    """Who holds ``run_id``'s lease now, when the store can say."""
    try:
        lease = store.lease(run_id)
    except Exception:
        return None
    return lease[0] if lease else None


def _one_line(error: BaseException) -> str:
    text = error.message if isinstance(error, AIError) else (str(error) or type(error).__name__)
    return " ".join(text.split())
