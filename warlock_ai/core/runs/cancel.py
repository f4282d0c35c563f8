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

    ``cancel()`` may be called from any thread. Sync code polls :attr:`cancelled` or blocks in
    :meth:`wait`; async code awaits :meth:`async_wait`.
    """

    __slots__ = ("_callbacks", "_event", "_lock", "cancelled_at", "reason")

    def __init__(self) -> None:
        self._event = threading.Event()
        # Reentrant: a signal handler (``interrupts.stop_on_signals``) may cancel the token
        # while the thread it interrupted holds the lock.
        self._lock = threading.RLock()
        self._callbacks: list[Callable[[CancelToken], Any]] = []
        self.reason: Any = None
        self.cancelled_at: datetime | None = None

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def cancel(self, reason: Any = None) -> None:
        """Request cancellation; the first reason wins, later calls are no-ops."""
        with self._lock:
            if self._event.is_set():
                return
            self.reason = reason
            self.cancelled_at = datetime.now(UTC)
            self._event.set()
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            try:
                callback(self)
            except Exception:  # a listener must never break cancellation
                logger.exception("cancel callback %r failed", callback)

    def add_callback(self, callback: Callable[[CancelToken], Any]) -> Callable[[], None]:
        """Call ``callback(token)`` on cancellation (at once if already cancelled)."""
        with self._lock:
            if not self._event.is_set():
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
        return self._event.wait(timeout)

    async def async_wait(self, timeout: float | None = None) -> bool:
        """Await cancellation for up to ``timeout`` seconds; True when cancelled."""
        if self._event.is_set():
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
