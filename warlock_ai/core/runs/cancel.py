"""The cancel token: Python's counterpart of an ``AbortSignal``, usable from threads and asyncio."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

logger = logging.getLogger("warlock_ai.cancel")


class CancelToken:
    """Request cancellation of a run; the engine checks it at well-defined points.

    ``cancel()`` may be called from any thread, and from a signal handler (which Python runs
    in the main thread, between any two of its bytecodes). Sync code polls :attr:`cancelled` or
    blocks in :meth:`wait`; async code awaits :meth:`async_wait`.

    Not a ``threading.Event``: its ``wait`` holds a plain lock that its ``set`` takes too, so a
    signal handler cancelling the token while the main thread was inside ``wait`` deadlocked
    the process (a command given Ctrl-C during a step polling ``ctx.cancel.wait(...)`` never
    exited). Here the one lock is reentrant, and ``wait`` registers its waiter before it
    looks at the flag, so a cancel from a handler, however it interleaves, wakes it.
    """

    __slots__ = ("_callbacks", "_cancelled", "_lock", "_waiters", "cancelled_at", "reason")

    def __init__(self) -> None:
        self._cancelled = False
        self._lock = threading.RLock()
        self._waiters: list[Any] = []  # a held lock per blocked wait(), released by cancel()
        self._callbacks: list[Callable[[CancelToken], Any]] = []
        self.reason: Any = None
        self.cancelled_at: datetime | None = None

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def cancel(self, reason: Any = None) -> None:
        """Request cancellation; the first reason wins, later calls are no-ops."""
        at = datetime.now(UTC)  # before the lock: inside it, attribute writes only, so a
        with self._lock:  # signal handler cancelling in between sees all of them or none
            if self._cancelled:
                return
            self.reason, self.cancelled_at, self._cancelled = reason, at, True
            waiters, self._waiters = self._waiters, []
            callbacks, self._callbacks = self._callbacks, []
        for waiter in waiters:
            waiter.release()
        for callback in callbacks:
            try:
                callback(self)
            except Exception:  # a listener must never break cancellation
                logger.exception("cancel callback %r failed", callback)

    def add_callback(self, callback: Callable[[CancelToken], Any]) -> Callable[[], None]:
        """Call ``callback(token)`` on cancellation (at once if already cancelled)."""
        with self._lock:
            if not self._cancelled:
                self._callbacks.append(callback)
                return lambda: self._remove(callback)
        callback(self)
        return lambda: None

    def _remove(self, callback: Callable[[CancelToken], Any]) -> None:
        with self._lock:
            if callback in self._callbacks:
                self._callbacks.remove(callback)

    def wait(self, timeout: float | None = None) -> bool:
        """Block up to ``timeout`` seconds; True when cancelled."""
        if self._cancelled:
            return True
        if timeout is not None and timeout <= 0:
            return False
        waiter = threading.Lock()
        waiter.acquire()
        with self._lock:
            self._waiters.append(waiter)
        try:
            # Read after registering: a cancel before the append (a signal handler may run
            # between any two bytecodes) is seen here; one after it releases ``waiter``.
            if not self._cancelled:
                if timeout is None:
                    waiter.acquire()
                else:
                    waiter.acquire(timeout=timeout)
        finally:  # timed out, or a signal handler raised: forget the waiter
            with self._lock:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
        return self._cancelled

    async def async_wait(self, timeout: float | None = None) -> bool:
        """Await cancellation for up to ``timeout`` seconds; True when cancelled."""
        if self._cancelled:
            return True
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()

        def settle() -> None:
            if not future.done():
                future.set_result(None)

        def wake(_: CancelToken) -> None:
            loop.call_soon_threadsafe(settle)

        remove = self.add_callback(wake)
        try:
            await asyncio.wait_for(future, timeout)
            return True
        except TimeoutError:
            return False
        finally:
            remove()

    @property
    def reason_text(self) -> str:
        """The reason as text: a string as-is, an exception's message, else ``str()``."""
        reason = self.reason
        if reason is None:
            return ""
        if isinstance(reason, BaseException):
            return str(reason)
        return reason if isinstance(reason, str) else str(reason)

    def __repr__(self) -> str:
        state = f"cancelled reason={self.reason!r}" if self.cancelled else "active"
        return f"<CancelToken {state}>"


#: The reason a run is cancelled with when the operator gave none.
OPERATOR_CANCEL = "cancel requested by an operator"


class CancelRequest:
    """An operator asked, through the store, to cancel a run.

    Returned by a fenced save and by a lease renewal (the heartbeat): always truthy, so a
    renewal that returns one still means "the lease is held".
    """

    __slots__ = ("reason", "requested_at")

    def __init__(self, requested_at: Any, reason: str | None = None) -> None:
        self.requested_at = requested_at
        self.reason = reason

    def __bool__(self) -> bool:
        return True

    @property
    def reason_text(self) -> str:
        """The operator's reason, or a default saying an operator asked."""
        return self.reason or OPERATOR_CANCEL

    def __repr__(self) -> str:
        return f"<CancelRequest at={self.requested_at!r} reason={self.reason!r}>"
