"""Stopping a run cleanly when its process is asked to stop (Ctrl-C, a deploy's SIGTERM).

:func:`stop_on_signals` turns the first SIGINT or SIGTERM into an *interrupt* of the run's
cancel token: ``ctx.cancel`` is set at once (a long step that polls it can stop), and the
run stops at its next check point, writes its snapshot, releases its lease and returns a
result whose error is ``RunInterruptedError``; the stored run stays ``running``, so it
resumes where it stopped. If the run has not stopped ``grace_seconds`` later, or a second
signal comes, :class:`Interrupted` (a ``KeyboardInterrupt``) is raised in the main thread:
the engine then releases the lease with the last snapshot it stored, and the step that was
running runs again on resume.

Pure Python; the Django commands and workers install it around the runs they execute.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from .cancel import CancelToken

#: The signals that stop a run: Ctrl-C, and what a deploy, ``docker stop`` or Kubernetes send.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupt:
    """The reason of a cancel token interrupted by a signal (not an operator's cancel)."""

    __slots__ = ("signal_name",)

    def __init__(self, signal_name: str) -> None:
        self.signal_name = signal_name

    def __str__(self) -> str:
        return f"interrupted by {self.signal_name}"

    def __repr__(self) -> str:
        return f"<Interrupt {self.signal_name}>"


class Interrupted(KeyboardInterrupt):
    """Raised in the main thread when the grace period is over or a second signal came."""

    def __init__(self, signal_name: str, why: str) -> None:
        super().__init__(f"{signal_name}: {why}")
        self.signal_name = signal_name


def interrupt_of(token: CancelToken | None) -> Interrupt | None:
    """The interrupt that cancelled ``token``, if a signal did."""
    if token is None or not token.cancelled:
        return None
    reason = token.reason
    return reason if isinstance(reason, Interrupt) else None


def signal_exit_code(signal_name: str | None) -> int:
    """The shell's convention: 128 + the signal's number (130 for SIGINT, 143 for SIGTERM)."""
    if signal_name is None:
        return 130
    return 128 + int(signal.Signals[signal_name])


class SignalState:
    """What :func:`stop_on_signals` saw: the first signal's name, if any."""

    def __init__(self) -> None:
        self.signal_name: str | None = None

    @property
    def exit_code(self) -> int:
        return signal_exit_code(self.signal_name)


#: A repeated SIGTERM within this many seconds is the same request (a supervisor that signals
#: the whole process group, then the worker forwarding it to its work horse). A second
#: Ctrl-C is always meant: it interrupts at once.
REPEAT_WINDOW = 1.0


@contextmanager
def stop_on_signals(token: CancelToken, grace_seconds: float) -> Iterator[SignalState]:
    """Interrupt ``token`` on SIGINT/SIGTERM for the duration (main thread only: elsewhere
    signals cannot be handled, and nothing is installed).

    A handler that was installed before (a Python function, such as an in-process rq worker's
    warm shutdown) is called too, so the process still learns it should stop. The grace timer
    (``SIGALRM``, where the platform has one) is armed only once a signal comes, and an alarm
    armed by someone else (rq's job timeout) is put back as it was on the way out.
    """
    state = SignalState()
    if threading.current_thread() is not threading.main_thread():
        yield state
        return
    has_timer = hasattr(signal, "setitimer") and hasattr(signal, "SIGALRM")
    armed: dict[str, Any] = {}  # what arming the grace timer replaced, and when
    first_at: list[float] = []

    def on_alarm(signum: int, frame: FrameType | None) -> None:
        raise Interrupted(state.signal_name or "SIGTERM", f"not stopped within {grace_seconds:g} s")

    def on_signal(signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if state.signal_name is not None:
            repeated = name == state.signal_name == "SIGTERM"
            if repeated and time.monotonic() - first_at[0] < REPEAT_WINDOW:
                return  # the same request, delivered twice
            raise Interrupted(name, "asked twice")
        state.signal_name = name
        first_at.append(time.monotonic())
        token.cancel(Interrupt(name))
        chained = previous.get(signum)
        if callable(chained) and chained is not signal.default_int_handler:
            chained(signum, frame)
        if grace_seconds <= 0:
            raise Interrupted(name, "no grace period")
        if has_timer:
            armed["handler"] = signal.signal(signal.SIGALRM, on_alarm)
            armed["timer"] = signal.setitimer(signal.ITIMER_REAL, grace_seconds)
            armed["at"] = time.monotonic()

    previous: dict[int, Any] = {sig: signal.signal(sig, on_signal) for sig in STOP_SIGNALS}
    try:
        yield state
    finally:
        for sig, handler in previous.items():  # first: a late signal meets the old handlers
            signal.signal(sig, handler)
        if armed:
            remaining, interval = armed["timer"]
            left = remaining - (time.monotonic() - armed["at"]) if remaining else 0.0
            signal.setitimer(signal.ITIMER_REAL, max(left, 0.001) if remaining else 0.0, interval)
            signal.signal(signal.SIGALRM, armed["handler"])
