"""Leases: one worker at a time per run, and fenced writes.

The run writer passes a :class:`LeaseClaim` with every snapshot it saves. A store that
``supports_leases`` applies it atomically with the write:

- ``acquire`` (the run's first write): allowed when the run is new, unleased, leased by this
  owner, its lease expired, or its holder is a process of this host that no longer exists;
  otherwise ``LeaseHeldError`` naming the holder and the expiry.
- ``renew`` (every later write): allowed only while the stored owner is still this one;
  otherwise ``LeaseLostError`` and the newer snapshot is kept.
- ``release`` (the terminal write): like renew, and clears the lease.

Owner ids are unique per execution (``host:pid:random``), so they double as fencing tokens: a
worker whose lease was taken over can never write again, even after the new holder's lease
expires.

What a stored lease *means* is decided in one place, :func:`lease_state`: the stores (when
they take a lease), the operations (drain, discard, resume), the models' ``stale()`` and the
admin all ask it. Stores that check a claim in Python use :func:`check_claim`; the SQL and Lua
stores encode the same rules in their one atomic statement.
"""

from __future__ import annotations

import enum
import os
import secrets
import socket
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal

from ..errors import LeaseHeldError, LeaseLostError
from .snapshots import RUNNING

#: The modes of a :class:`LeaseClaim`.
LeaseMode = Literal["acquire", "renew", "release"]
ACQUIRE: Final = "acquire"
RENEW: Final = "renew"
RELEASE: Final = "release"

_HOST = socket.gethostname()


class LeaseState(enum.Enum):
    """What a run's stored lease says about its worker."""

    NONE = "none"  # no worker holds the run (never taken, released, or the run is over)
    LIVE = "live"  # a worker holds it and, as far as this host can tell, is alive
    EXPIRED = "expired"  # the holder stopped renewing: gone or stuck
    DEAD = "dead"  # the holder is a process of this host that no longer exists

    @property
    def blocks(self) -> bool:
        """A live worker holds the run: resume, restart, discard and migrate must wait."""
        return self is LeaseState.LIVE


def lease_state(
    owner: str | None,
    expires_at: datetime | None,
    now: datetime,
    status: str = RUNNING,
) -> LeaseState:
    """The state of a run's lease. The one rule every reader of leases applies.

    A finished run has no lease worth the name (``NONE``), whatever its row still says.
    """
    if not owner or status != RUNNING:
        return LeaseState.NONE
    if expires_at is None or expires_at < now:
        return LeaseState.EXPIRED
    if owner_is_dead(owner):
        return LeaseState.DEAD
    return LeaseState.LIVE


def is_stale(status: str, owner: str | None, expires_at: datetime | None, now: datetime) -> bool:
    """A running run no live worker holds: ``drain_runs`` resumes it, the admin flags it."""
    return status == RUNNING and not lease_state(owner, expires_at, now, status).blocks


def local_owner_prefix() -> str:
    """How owner ids of this host's processes begin (only those can be seen dead)."""
    return f"{_HOST}:"


@dataclass(frozen=True, slots=True)
class LeaseClaim:
    """What one write asks of the run's lease.

    ``expected`` (acquire only): the ``saved_at`` of the snapshot this worker loaded to
    resume; the acquire then also requires the stored snapshot to be that one, so a worker
    that read a run before another worker resumed it cannot run it again."""

    owner: str
    mode: LeaseMode
    expected: datetime | None = None


def check_claim(
    run_id: str,
    claim: LeaseClaim,
    holder: str | None,
    expires_at: datetime | None,
    now: datetime,
    saved_at: datetime | None = None,
) -> None:
    """Raise unless the stored run (its lease: ``holder`` until ``expires_at``; the
    ``saved_at`` of its snapshot, None when there is none) lets ``claim`` write."""
    if claim.expected is not None and saved_at != claim.expected:
        raise changed_error(run_id)
    if claim.mode != ACQUIRE:
        if holder != claim.owner:
            raise lost_error(run_id, claim, holder)
        return
    if holder in (None, claim.owner):
        return
    if lease_state(holder, expires_at, now).blocks:
        raise held_error(run_id, holder, expires_at)


def local_worker_id() -> str:
    """``host:pid``: this process, for a run whose store leases nothing."""
    return f"{_HOST}:{os.getpid()}"


def new_owner_id() -> str:
    """``host:pid:8hex``: unique per execution, and says where the worker runs."""
    return f"{_HOST}:{os.getpid()}:{secrets.token_hex(4)}"


#: Executions of this process that ended while the store may still show their lease (their
#: release did not land): dead owners, though their process lives. Bounded, newest kept.
_ended_owners: dict[str, None] = {}
_ENDED_OWNERS_KEPT = 4096


def mark_ended(owner: str) -> None:
    """``owner``'s execution is over: a lease it left behind holds nothing (in this process,
    which is where a resume from the same shell, or the next job, looks)."""
    _ended_owners[owner] = None
    if len(_ended_owners) > _ENDED_OWNERS_KEPT:
        del _ended_owners[next(iter(_ended_owners))]


def owner_is_dead(owner: str | None) -> bool:
    """True when ``owner`` names a process of this host that no longer exists, or an
    execution of this process that has ended (``mark_ended``).

    Only a local process can be checked; a worker elsewhere is trusted until its lease expires.
    """
    if not owner:
        return False
    if owner in _ended_owners:
        return True
    parts = owner.rsplit(":", 2)
    if len(parts) != 3:
        return False
    host, pid_text, _ = parts
    if host != _HOST or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    """A killed child not yet reaped by its parent still answers kill(0): read its state."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def held_error(
    run_id: str, holder: str | None, expires_at: datetime | None, doing: str | None = None
) -> LeaseHeldError:
    """A live worker holds the run; ``doing`` names what an operator was refused."""
    until = expires_at.isoformat(timespec="seconds") if expires_at else "an unknown time"
    if doing is None:
        message = (
            f'run "{run_id}" is leased by worker {holder} until {until}; '
            "wait for it to finish, or resume after the lease expires"
        )
    else:
        message = (
            f'cannot {doing} run "{run_id}": it is leased by worker {holder} until {until}; '
            "cancel it first, or wait for the lease to expire"
        )
    return LeaseHeldError(
        message,
        run_id=run_id,
        owner=holder,
        expires_at=expires_at.isoformat() if expires_at else None,
    )


def lost_error(run_id: str, claim: LeaseClaim, holder: str | None) -> LeaseLostError:
    if holder is None:
        message = (
            f'run "{run_id}": this worker ({claim.owner}) no longer holds its lease: the run was '
            "deleted or released meanwhile; this worker stops and writes nothing more"
        )
    else:
        message = (
            f'run "{run_id}": this worker ({claim.owner}) lost its lease to {holder}; '
            "the newer snapshot was kept"
        )
    return LeaseLostError(message, run_id=run_id, owner=holder)


def changed_error(run_id: str) -> LeaseLostError:
    return LeaseLostError(
        f'run "{run_id}" changed since this worker loaded it (another worker resumed it); '
        "nothing was run",
        run_id=run_id,
        owner=None,
    )
