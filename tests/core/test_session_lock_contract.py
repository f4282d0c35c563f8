"""The session lock contract's own guarantees (``core.orchestrator.locks``), whatever the
backend: a hold given back twice frees nothing of a later holder, a task cancelled while a
worker thread takes its lock leaves it free, and a forked child starts with no hold of its
parent's threads. The backends themselves are tested in tests/stores/test_session_locks.py."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from typing import Any

import pytest

from warlock_ai.core.errors import SessionBusyError
from warlock_ai.core.orchestrator.locks import LockKey, ProcessSessionLock, SessionLock


class SlowBackend(SessionLock):
    """A backend whose taking takes a while (a slow network), recording what it gives back."""

    blocking_io = True

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.released: list[Any] = []

    def try_acquire(self, key: LockKey) -> Any:
        self.entered.set()
        time.sleep(0.3)
        return "token"

    def release(self, key: LockKey, token: Any) -> None:
        self.released.append(token)


def eventually(predicate: Any, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_letting_go_twice_does_not_free_a_later_holder():
    lock = ProcessSessionLock()
    first = lock.acquire("triage", "s-1")
    lock.let_go(first)
    second = lock.acquire("triage", "s-1", timeout=0)
    lock.let_go(first)  # a second let_go of an old hold (an effect replayed, a finally)
    assert lock.is_held_here("triage", "s-1")
    with pytest.raises(SessionBusyError):
        lock.acquire("triage", "s-1", timeout=0)
    lock.let_go(second)
    assert not lock.is_held_here("triage", "s-1")


async def test_a_task_cancelled_while_its_lock_is_being_taken_leaves_it_free():
    lock = SlowBackend()
    task = asyncio.create_task(lock.aacquire("triage", "s-1"))
    assert await asyncio.to_thread(lock.entered.wait, 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The worker thread took the lock after the task was gone: it is given back.
    assert await asyncio.to_thread(
        eventually, lambda: lock.released == ["token"] and not lock.is_held_here("triage", "s-1")
    )


def test_a_forked_child_starts_without_its_parents_holds():
    lock = ProcessSessionLock()
    taken, stop = threading.Event(), threading.Event()

    def hold() -> None:
        with lock.hold("triage", "s-1"):
            taken.set()
            stop.wait(10)

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        assert taken.wait(5)
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child: the parent's thread is not here
            code = 1
            try:
                with lock.hold("triage", "s-1", timeout=0):
                    code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert lock.is_held_here("triage", "s-1")  # the parent's hold is untouched
    finally:
        stop.set()
        thread.join(5)
