"""Leases: one worker at a time per run, and fenced writes.

The engine attaches a :class:`LeaseClaim` to every snapshot it saves. A store that
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
"""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from .errors import LeaseHeldError, LeaseLostError

ACQUIRE, RENEW, RELEASE = "acquire", "renew", "release"

_HOST = socket.gethostname()


@dataclass(frozen=True, slots=True)
class LeaseClaim:
    """``expected`` (acquire only): the ``saved_at`` of the snapshot this worker loaded to
    resume; the acquire then also requires the stored snapshot to be that one, so a worker
    that read a run before another worker resumed it cannot run it again."""

    owner: str
    mode: Literal["acquire", "renew", "release"]
    expected: datetime | None = None


def new_owner_id() -> str:
    """``host:pid:8hex``: unique per execution, and says where the worker runs."""
    return f"{_HOST}:{os.getpid()}:{secrets.token_hex(4)}"


def owner_is_dead(owner: str | None) -> bool:
    """True when ``owner`` names a process of this host that no longer exists.

    Only a local process can be checked; a worker elsewhere is trusted until its lease expires.
    """
    if not owner:
        return False
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


def held_error(run_id: str, holder: str | None, expires_at: datetime | None) -> LeaseHeldError:
    until = expires_at.isoformat(timespec="seconds") if expires_at else "an unknown time"
    return LeaseHeldError(
        f'run "{run_id}" is leased by worker {holder} until {until}; '
        "wait for it to finish, or resume after the lease expires",
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


def changed_error(run_id: str, claim: LeaseClaim) -> LeaseLostError:
    return LeaseLostError(
        f'run "{run_id}" changed since this worker loaded it (another worker resumed it); '
        "nothing was run",
        run_id=run_id,
        owner=None,
    )
