"""Session locks: the turns of one orchestrator session run one at a time.

A turn loads the session's latest checkpoint, runs, and appends the next one; two turns of
one session running at once would both append "the next turn" and one would be lost (or
refused by the store's unique key). So every turn runs inside its session's lock.

:class:`SessionLock` is the contract, with the waiting written once: a lock is first taken
inside this process (a keyed mutex, so two threads or tasks of one process never share a
hold), then, for a lock that works across processes, from its backend (``try_acquire``). A
turn that cannot get both within ``timeout`` seconds fails with ``SessionBusyError``.

Backends: :class:`ProcessSessionLock` (this process only: the memory store's, and what
``session_lock=None`` without a store gives), the ORM store's (a PostgreSQL advisory lock; a
file lock beside a SQLite database) and Redis's (a token with an expiry, renewed while held).
``session_lock=False`` turns locking off.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..errors import OrchestratorCancelledError, SessionBusyError
from ..runs.cancel import CancelToken
from ..runs.effects import Call, CallEither, Sleep, run_async, run_sync
from ..runs.snapshots import now

__all__ = [
    "DEFAULT_LOCK_TIMEOUT",
    "Held",
    "LockKey",
    "NoSessionLock",
    "ProcessSessionLock",
    "SessionLock",
]

#: How long a turn waits for its session's lock before ``SessionBusyError`` (seconds).
DEFAULT_LOCK_TIMEOUT = 30.0
_FIRST_POLL = 0.005
_MAX_POLL = 0.1

logger = logging.getLogger("warlock_ai.session_locks")


@dataclass(frozen=True, slots=True)
class LockKey:
    """One session of one orchestrator: what a lock is taken on."""

    name: str
    session_id: str

    @property
    def text(self) -> str:
        """An unambiguous string form (the name's length first, so no two keys collide)."""
        return f"{len(self.name)}:{self.name}:{self.session_id}"

    @property
    def int64(self) -> int:
        """A signed 64-bit number for the key (PostgreSQL advisory locks, file offsets)."""
        digest = hashlib.blake2b(self.text.encode("utf-8"), digest_size=8).digest()
        return int.from_bytes(digest, "big", signed=True)


@dataclass(slots=True)
class Held:
    """One hold of a session's lock: how long the turn waited for it, and whether the
    backend lost it while held (an expiring lock whose renewal failed). A lost lock does not
    lose a turn: the checkpoint's unique ``(name, session, turn)`` key still refuses a turn
    appended twice."""

    key: LockKey
    token: Any = None
    waited: float = 0.0
    lost: bool = False
    _stop: threading.Event = field(default_factory=threading.Event)
    _renewer: threading.Thread | None = None


class _LocalMutex:
    """Keyed, non-blocking, usable from threads and event loops alike (waiters poll).

    A forked child starts with none held: the holders were threads of its parent, which the
    child does not have (and a lock one of them held mid-fork would never be let go)."""

    def __init__(self) -> None:
        self._forget()
        _mutexes.add(self)

    def _forget(self) -> None:
        self._held: set[LockKey] = set()
        self._lock = threading.Lock()

    def try_take(self, key: LockKey) -> bool:
        with self._lock:
            if key in self._held:
                return False
            self._held.add(key)
            return True

    def give_back(self, key: LockKey) -> None:
        with self._lock:
            self._held.discard(key)

    def held(self, key: LockKey) -> bool:
        with self._lock:
            return key in self._held


_mutexes: weakref.WeakSet[_LocalMutex] = weakref.WeakSet()
_letting_go = threading.Lock()


def _forget_in_child() -> None:
    global _letting_go
    _letting_go = threading.Lock()
    for mutex in list(_mutexes):
        mutex._forget()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_in_child)


class SessionLock:
    """Serialises the turns of a session. Subclasses that reach other processes override
    ``try_acquire``/``release`` (and ``renew`` with ``renew_every`` for expiring locks).

    Hooks are called with the process-local mutex for the key already held, so a backend
    never sees the same key taken twice by one process.
    """

    #: Whether holders in other processes (and hosts) are excluded too.
    cross_process: ClassVar[bool] = False
    #: The backend does blocking I/O: under ``ahold`` its hooks run in a worker thread.
    blocking_io: ClassVar[bool] = False
    #: Seconds between renewals while held (None: the lock does not expire).
    renew_every: float | None = None

    def __init__(self) -> None:
        self._local = _LocalMutex()

    # --- backend hooks --------------------------------------------------------------------

    def try_acquire(self, key: LockKey) -> Any:
        """Take the lock without waiting: a token (anything but None) or None when held."""
        return True

    def release(self, key: LockKey, token: Any) -> None:
        """Give the lock back (a lock already lost or expired is not an error)."""

    def renew(self, key: LockKey, token: Any) -> bool:
        """Extend a held, expiring lock; False when it is no longer ours."""
        return True

    def holder(self, key: LockKey) -> str | None:
        """Who holds the lock, when the backend can tell (for errors and the admin)."""
        return None

    def close(self) -> None:
        """Release what the backend keeps open (connections, files)."""

    # --- taking and holding ----------------------------------------------------------------

    def _try(self, key: LockKey) -> Any:
        if not self._local.try_take(key):
            return None
        try:
            token = self.try_acquire(key)
        except BaseException:
            self._local.give_back(key)
            raise
        if token is None:
            self._local.give_back(key)
        return token

    def _let_go(self, held: Held) -> None:
        with _letting_go:
            if held._stop.is_set():
                return  # given back already: a second let_go must not free a later holder's
            held._stop.set()
        if held._renewer is not None:
            held._renewer.join(timeout=5)
        try:
            self.release(held.key, held.token)
        finally:
            self._local.give_back(held.key)

    def _start_renewing(self, held: Held) -> None:
        every = self.renew_every
        if every is None:
            return

        def renew() -> None:
            while not held._stop.wait(every):
                try:
                    ok = self.renew(held.key, held.token)
                except Exception:
                    # Unreachable for now: keep trying; a lock that expired meanwhile is
                    # refused at the next renewal that gets through.
                    logger.warning("renewing the lock of %s failed", held.key, exc_info=True)
                    continue
                if not ok:
                    logger.warning("the lock of %s was lost while held", held.key)
                    held.lost = True
                    return

        held._renewer = threading.Thread(
            target=renew, name=f"warlock-session-lock {held.key.session_id}", daemon=True
        )
        held._renewer.start()

    def _busy(self, key: LockKey, timeout: float) -> SessionBusyError:
        try:
            holder = self.holder(key)
        except Exception:
            holder = None
        held_by = f" (held by {holder})" if holder else ""
        return SessionBusyError(
            f'session "{key.session_id}" of orchestrator "{key.name}" is busy: another turn '
            f"held its lock for the whole {timeout:g} s wait{held_by}; try again later or "
            "raise the orchestrator's lock_timeout=",
            orchestrator_name=key.name,
            session_id=key.session_id,
            waited_seconds=round(timeout, 3),
            holder=holder,
        )

    async def _abusy(self, key: LockKey, timeout: float) -> SessionBusyError:
        """``_busy`` off the event loop: naming the holder may be blocking I/O."""
        if self.blocking_io:
            return await asyncio.to_thread(self._busy, key, timeout)
        return self._busy(key, timeout)

    @staticmethod
    def _cancelled(key: LockKey, cancel: CancelToken) -> OrchestratorCancelledError:
        reason = cancel.reason_text
        return OrchestratorCancelledError(
            f'turn of session "{key.session_id}" cancelled while waiting for its lock'
            + (f": {reason}" if reason else ""),
            cancelled_at=(cancel.cancelled_at or now()).isoformat(),
            session_id=key.session_id,
            reason=reason or None,
        )

    def acquire(
        self,
        name: str,
        session_id: str,
        *,
        timeout: float | None = DEFAULT_LOCK_TIMEOUT,
        cancel: CancelToken | None = None,
        on_wait: Callable[[], Any] | None = None,
    ) -> Held:
        """Take the session's lock, waiting up to ``timeout`` seconds (None: without limit),
        then ``SessionBusyError``. ``on_wait`` is called once when the lock is not free at
        once; a ``cancel`` token cancelled during the wait raises
        ``OrchestratorCancelledError`` (a free lock is taken even when cancelled). Give it
        back with :meth:`let_go` (or use :meth:`hold`)."""
        held: Held = run_sync(self._acquiring(name, session_id, timeout, cancel, on_wait))
        return held

    async def aacquire(
        self,
        name: str,
        session_id: str,
        *,
        timeout: float | None = DEFAULT_LOCK_TIMEOUT,
        cancel: CancelToken | None = None,
        on_wait: Callable[[], Any] | None = None,
    ) -> Held:
        """Async twin of :meth:`acquire`: waits without blocking the event loop."""
        waiting = self._acquiring(name, session_id, timeout, cancel, on_wait)
        held: Held = await run_async(waiting)
        return held

    def _acquiring(
        self,
        name: str,
        session_id: str,
        timeout: float | None,
        cancel: CancelToken | None,
        on_wait: Callable[[], Any] | None,
    ) -> Generator[Any, Any, Held]:
        """The wait, written once as effects (the sync and async drivers perform them)."""
        key = LockKey(name, session_id)
        start, delay, warned = time.monotonic(), _FIRST_POLL, False
        while (token := (yield CallEither(self._try, self._atry, (key,)))) is None:
            if not warned:
                warned = True
                if on_wait is not None:
                    yield Call(on_wait)
            if cancel is not None and cancel.cancelled:
                raise self._cancelled(key, cancel)
            left = None if timeout is None else timeout - (time.monotonic() - start)
            if left is not None and left <= 0:
                raise (yield CallEither(self._busy, self._abusy, (key, timeout or 0.0)))
            yield Sleep(delay if left is None else min(delay, left), cancel)
            delay = min(delay * 2, _MAX_POLL)
        held = Held(key, token, round(time.monotonic() - start, 6))
        self._start_renewing(held)
        return held

    def let_go(self, held: Held) -> None:
        """Give back a lock taken with :meth:`acquire`."""
        self._let_go(held)

    async def alet_go(self, held: Held) -> None:
        if self.blocking_io:
            await asyncio.to_thread(self._let_go, held)
        else:
            self._let_go(held)

    @contextmanager
    def hold(
        self,
        name: str,
        session_id: str,
        *,
        timeout: float | None = DEFAULT_LOCK_TIMEOUT,
        cancel: CancelToken | None = None,
        on_wait: Callable[[], Any] | None = None,
    ) -> Iterator[Held]:
        """Hold the session's lock for the ``with`` block (see :meth:`acquire`)."""
        held = self.acquire(name, session_id, timeout=timeout, cancel=cancel, on_wait=on_wait)
        try:
            yield held
        finally:
            self.let_go(held)

    @asynccontextmanager
    async def ahold(
        self,
        name: str,
        session_id: str,
        *,
        timeout: float | None = DEFAULT_LOCK_TIMEOUT,
        cancel: CancelToken | None = None,
        on_wait: Callable[[], Any] | None = None,
    ) -> AsyncIterator[Held]:
        """Async twin of :meth:`hold`."""
        held = await self.aacquire(
            name, session_id, timeout=timeout, cancel=cancel, on_wait=on_wait
        )
        try:
            yield held
        finally:
            await self.alet_go(held)

    async def _atry(self, key: LockKey) -> Any:
        """``_try`` without blocking the loop. A task cancelled while a worker thread is
        taking the lock must not leave it held: what the thread takes after all is let go."""
        if not self.blocking_io:
            return self._try(key)
        attempt = asyncio.ensure_future(asyncio.to_thread(self._try, key))
        try:
            return await asyncio.shield(attempt)
        except asyncio.CancelledError:
            attempt.add_done_callback(lambda done: self._let_go_abandoned(key, done))
            raise

    def _let_go_abandoned(self, key: LockKey, attempt: asyncio.Future[Any]) -> None:
        if attempt.cancelled() or attempt.exception() is not None:
            return
        token = attempt.result()
        if token is not None:
            held = Held(key, token)
            threading.Thread(target=self._let_go, args=(held,), daemon=True).start()

    def is_held_here(self, name: str, session_id: str) -> bool:
        """Whether a turn of this process holds the session's lock now."""
        return self._local.held(LockKey(name, session_id))


class ProcessSessionLock(SessionLock):
    """Serialises the turns of a session within this process only (threads and tasks).

    What the memory checkpoint store gives: its sessions live in this process anyway.
    """

    def __repr__(self) -> str:
        return "<ProcessSessionLock>"


class NoSessionLock(SessionLock):
    """``session_lock=False``: no serialisation at all. Two turns of one session at once
    may then both try to append the same turn; the store refuses the second
    (``CheckpointConflictError``) and that turn fails."""

    def _try(self, key: LockKey) -> Any:
        return True

    def _let_go(self, held: Held) -> None:
        return None

    def __repr__(self) -> str:
        return "<NoSessionLock>"
