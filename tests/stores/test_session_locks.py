"""Session locks (issue 13): the turns of one orchestrator session never overlap, across
threads, processes and hosts.

Every lock a store gives, on its real service: the process lock (memory store), SQLite file
locks (a file database), PostgreSQL 16 and 15 advisory locks, Redis tokens. Holders in other
processes are real subprocesses (tests/stores/lock_worker.py) or forked children.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import warlock_ai as ai
from tests import services
from tests.stores.conftest import DB_ALIASES, Backend
from tests.stores.worker import start_thread, wait_for
from warlock_ai.core.errors import OrchestratorCancelledError, SessionBusyError, StoreError
from warlock_ai.core.orchestrator.locks import LockKey, ProcessSessionLock, SessionLock
from warlock_ai.core.runs.cancel import CancelToken
from warlock_ai.core.runs.leases import local_owner_prefix
from warlock_ai.stores.session_locks import (
    PostgresSessionLock,
    RedisSessionLock,
    SQLiteSessionLock,
    database_session_lock,
)

LOCK_WORKER = "tests.stores.lock_worker"
NAME = "support"
KINDS = ("process", "sqlite", "postgres16", "postgres15", "redis")
CROSS_PROCESS = KINDS[1:]


def lock_params(kinds: tuple[str, ...]) -> list[Any]:
    params = []
    for kind in kinds:
        marks: list[Any] = []
        if kind in DB_ALIASES:
            marks.append(pytest.mark.django_db(databases=[DB_ALIASES[kind]], transaction=True))
        if kind != "process":
            marks.append(pytest.mark.services)
        params.append(pytest.param(kind, id=kind, marks=marks))
    return params


@dataclass
class Locks:
    """The locks of one kind under test, closed after the test."""

    kind: str
    backend: Backend
    made: list[SessionLock] = field(default_factory=list)

    @property
    def cross_process(self) -> bool:
        return self.kind != "process"

    def make(self, **options: Any) -> Any:
        if self.kind == "process":
            lock: SessionLock = ProcessSessionLock()
        elif self.kind == "redis":
            lock = RedisSessionLock(
                url=self.backend.redis_url, prefix=self.backend.prefix, **options
            )
        else:
            lock = database_session_lock(self.backend.alias or "default")
        self.made.append(lock)
        return lock

    def another(self, lock: SessionLock) -> Any:
        """A second lock on the same sessions: the same one for the process lock (two
        process locks are two unrelated mutexes), a new one for the others."""
        return lock if self.kind == "process" else self.make()

    def redis(self) -> Any:
        return self.backend.redis()


def _locks(kind: str) -> Iterator[Locks]:
    if kind == "redis":
        backend = Backend(kind, redis_url=services.redis_url())
        backend.prefix = f"warlock-session-locks:{uuid.uuid4().hex[:12]}:"
    elif kind == "process":
        backend = Backend("memory")
    else:
        backend = Backend(kind, alias=DB_ALIASES[kind])
    locks = Locks(kind, backend)
    yield locks
    for lock in locks.made:
        lock.close()
    if kind == "redis":
        client = backend.redis()
        try:
            keys = list(client.scan_iter(match=f"{backend.prefix}*", count=1000))
            if keys:
                client.delete(*keys)
        finally:
            client.close()


@pytest.fixture(params=lock_params(KINDS))
def locks(request: pytest.FixtureRequest) -> Iterator[Locks]:
    """Every kind of session lock."""
    yield from _locks(request.param)


@pytest.fixture(params=lock_params(CROSS_PROCESS))
def shared_locks(request: pytest.FixtureRequest) -> Iterator[Locks]:
    """The locks that exclude other processes."""
    yield from _locks(request.param)


@pytest.fixture(params=lock_params(("postgres16", "postgres15")))
def pg_locks(request: pytest.FixtureRequest) -> Iterator[Locks]:
    yield from _locks(request.param)


@pytest.fixture(params=lock_params(("redis",)))
def redis_locks(request: pytest.FixtureRequest) -> Iterator[Locks]:
    yield from _locks(request.param)


def new_session() -> str:
    return f"s-{uuid.uuid4().hex[:10]}"


@contextmanager
def holding(locks: Locks, writers: Any, lock: SessionLock, session: str) -> Iterator[dict]:
    """The session's lock held by someone else: a subprocess for the locks that reach other
    processes, a thread of this one for the process lock. Yields its pid (and token)."""
    if locks.cross_process:
        process = writers.spawn(locks.backend, "hold", NAME, session, module=LOCK_WORKER)
        try:
            yield writers.read_line(process)
        finally:
            process.kill()
            process.wait(10)
        return
    taken, stop = threading.Event(), threading.Event()

    def hold() -> None:
        with lock.hold(NAME, session):
            taken.set()
            stop.wait(30)

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        assert taken.wait(10)
        yield {"pid": os.getpid(), "token": None}
    finally:
        stop.set()
        thread.join(10)


def assert_names_the_holder(kind: str, holder: str | None, held_by: dict) -> None:
    pid = held_by["pid"]
    if kind == "process":
        assert holder is None
    elif kind == "sqlite":
        assert holder is not None and holder.startswith(f"process {pid} on this host")
    elif kind == "redis":
        assert holder == held_by["token"]
    else:
        assert holder is not None and holder.startswith("PostgreSQL backend pid ")
        assert f"{local_owner_prefix()}{pid}'" in holder


def run_in_fork(fn: Callable[[], dict]) -> dict:
    """``fn()`` in a forked child; what it returned (or the error it raised)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.close(read)
            try:
                data = json.dumps(fn())
            except BaseException as exc:
                data = json.dumps({"error": repr(exc)})
            os.write(write, data.encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        data = pipe.read()
    os.waitpid(pid, 0)
    result = json.loads(data)
    assert "error" not in result, result["error"]
    return result


def busy(lock: SessionLock, session: str, name: str = NAME) -> bool:
    """Whether the session's lock cannot be taken right now (taken and let go otherwise)."""
    try:
        held = lock.acquire(name, session, timeout=0)
    except SessionBusyError:
        return True
    lock.let_go(held)
    return False


# --- exclusion ----------------------------------------------------------------------------


def test_threads_take_turns_without_a_lost_update(locks):
    """4 threads x 10 holds, a read-modify-write with a sleep inside: no update lost, never
    two inside at once (two lock objects on the same sessions, but the process lock)."""
    first = locks.make()
    second = locks.another(first)
    session, holds = new_session(), 10
    box = {"count": 0, "inside": 0, "most": 0}
    guard = threading.Lock()

    def work(lock: SessionLock) -> None:
        for _ in range(holds):
            with lock.hold(NAME, session, timeout=60):
                with guard:
                    box["inside"] += 1
                    box["most"] = max(box["most"], box["inside"])
                value = box["count"]
                time.sleep(0.002)
                box["count"] = value + 1
                with guard:
                    box["inside"] -= 1

    started = [start_thread(lambda lock=lock: work(lock)) for lock in (first, second) * 2]
    for thread, result in started:
        thread.join(120)
        assert "error" not in result, result.get("error")
    assert box == {"count": 4 * holds, "inside": 0, "most": 1}


def test_two_processes_never_interleave(shared_locks, writers, tmp_path):
    """Two real processes append "start"/"end" lines under the lock: pairs never interleave
    and every turn is there."""
    out, session, count = tmp_path / "turns.log", new_session(), 15
    argv = ("append", str(out), NAME, session, str(count))
    processes = [writers.spawn(shared_locks.backend, *argv, module=LOCK_WORKER) for _ in "ab"]
    for process in processes:
        assert writers.read_line(process)["ready"]
    for process in processes:
        process.stdin.write("go\n")
        process.stdin.flush()
    for process in processes:
        _, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
    lines = out.read_text().splitlines()
    assert len(lines) == 2 * 2 * count
    for start, end in zip(lines[::2], lines[1::2], strict=True):
        assert start.startswith("start ") and end == f"end {start.split()[1]}", lines
    pids = [line.split()[1] for line in lines]
    assert {pid: pids.count(pid) for pid in pids} == {str(p.pid): 2 * count for p in processes}


def test_different_sessions_do_not_contend(locks):
    lock = locks.make()
    other = locks.another(lock)
    session = new_session()
    with lock.hold(NAME, session):
        with other.hold(NAME, new_session(), timeout=0) as held:
            assert held.waited < 0.5
        # The same session id under another orchestrator is another session.
        with other.hold("triage", session, timeout=0):
            pass
        assert busy(other, session)


# --- waiting: timeout, cancel -------------------------------------------------------------


def test_timeout_raises_session_busy_naming_the_holder(locks, writers):
    lock, session = locks.make(), new_session()
    with holding(locks, writers, lock, session) as held_by:
        start = time.monotonic()
        with pytest.raises(SessionBusyError) as info, lock.hold(NAME, session, timeout=0.5):
            pytest.fail("taken while another holds it")
        elapsed = time.monotonic() - start
    assert 0.5 <= elapsed < 2.0
    err = info.value
    assert err.code == "ORCHESTRATOR_SESSION_BUSY"
    assert (err.orchestrator_name, err.session_id, err.waited_seconds) == (NAME, session, 0.5)
    assert_names_the_holder(locks.kind, err.holder, held_by)
    assert session in str(err) and NAME in str(err) and "lock_timeout" in str(err)
    if err.holder:
        assert err.holder in str(err)


def test_timeout_zero_tries_once(locks, writers):
    lock, session = locks.make(), new_session()
    with lock.hold(NAME, session, timeout=0) as held:
        assert held.waited < 0.5
    with holding(locks, writers, lock, session):
        waits: list[int] = []
        start = time.monotonic()
        with pytest.raises(SessionBusyError):
            lock.acquire(NAME, session, timeout=0, on_wait=lambda: waits.append(1))
        assert time.monotonic() - start < 0.5
        assert waits == [1]


def test_cancel_during_the_wait_raises_cancelled(locks, writers):
    lock, session = locks.make(), new_session()
    with holding(locks, writers, lock, session):
        token, waiting = CancelToken(), threading.Event()
        thread, box = start_thread(
            lambda: lock.acquire(NAME, session, timeout=None, cancel=token, on_wait=waiting.set)
        )
        assert waiting.wait(10)
        time.sleep(0.05)
        start = time.monotonic()
        token.cancel("the user left")
        thread.join(10)
        assert time.monotonic() - start < 0.5
    err = box.get("error")
    assert isinstance(err, OrchestratorCancelledError), box
    assert err.session_id == session and err.reason == "the user left"
    assert "the user left" in str(err)
    assert not busy(locks.another(lock), session)


def test_a_free_lock_is_taken_even_when_already_cancelled(locks):
    lock, session, token = locks.make(), new_session(), CancelToken()
    token.cancel("too late")
    with lock.hold(NAME, session, timeout=0, cancel=token) as held:
        assert lock.is_held_here(NAME, session) and held.key == LockKey(NAME, session)


def test_the_lock_is_let_go_when_the_body_raises(locks, writers):
    lock, session = locks.make(), new_session()
    with pytest.raises(RuntimeError, match="turn failed"), lock.hold(NAME, session):
        raise RuntimeError("turn failed")
    assert not lock.is_held_here(NAME, session)
    assert not busy(locks.another(lock), session)
    if locks.cross_process:  # another process takes it at once
        with holding(locks, writers, lock, session) as held_by:
            assert held_by["ready"]
            assert busy(lock, session)


# --- async --------------------------------------------------------------------------------


async def test_ahold_serialises_two_tasks_and_leaves_the_loop_free(locks):
    lock, session = locks.make(), new_session()
    events: list[tuple[str, str]] = []
    ticks, stop = [0], asyncio.Event()

    async def turn(label: str) -> None:
        async with lock.ahold(NAME, session, timeout=30):
            events.append(("in", label))
            await asyncio.sleep(0.2)
            events.append(("out", label))

    async def ticker() -> None:
        while not stop.is_set():
            ticks[0] += 1
            await asyncio.sleep(0.01)

    ticking = asyncio.create_task(ticker())
    await asyncio.gather(turn("a"), turn("b"))
    stop.set()
    await ticking
    assert [kind for kind, _ in events] == ["in", "out", "in", "out"]
    assert events[0][1] == events[1][1] != events[2][1] == events[3][1]
    assert ticks[0] >= 15  # the loop ran while one task held and the other waited


async def test_async_timeout_names_the_holder_and_cancel_stops_the_wait(locks, writers):
    lock, session = locks.make(), new_session()
    with holding(locks, writers, lock, session) as held_by:
        with pytest.raises(SessionBusyError) as info:
            await lock.aacquire(NAME, session, timeout=0.3)
        assert_names_the_holder(locks.kind, info.value.holder, held_by)
        token = CancelToken()
        asyncio.get_running_loop().call_later(0.2, token.cancel, "stop")
        start = time.monotonic()
        with pytest.raises(OrchestratorCancelledError):
            await lock.aacquire(NAME, session, timeout=None, cancel=token)
        assert time.monotonic() - start < 1.0
        waiter = asyncio.create_task(lock.aacquire(NAME, session, timeout=None))
        await asyncio.sleep(0.2)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
    held = await lock.aacquire(NAME, session, timeout=5)
    await lock.alet_go(held)


# --- crashes and forks --------------------------------------------------------------------


def test_a_holder_killed_with_sigkill_frees_the_lock_at_once(shared_locks, writers):
    """PostgreSQL drops the dead connection's locks, the kernel the dead process's file
    locks; Redis takes over a token whose process of this host is gone (no ttl wait)."""
    lock, session = shared_locks.make(), new_session()
    process = writers.spawn(shared_locks.backend, "hold", NAME, session, module=LOCK_WORKER)
    try:
        held_by = writers.read_line(process)
        assert busy(lock, session)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    start = time.monotonic()
    with lock.hold(NAME, session, timeout=5):
        assert time.monotonic() - start < 1.0
    assert held_by["pid"] == process.pid


def test_a_forked_child_does_not_share_the_parents_lock(shared_locks):
    """The child opens its own connection or lock file: it cannot take the session its
    parent holds, takes others as itself, and leaving or closing anything does not free the
    parent's hold."""
    lock, session, other = shared_locks.make(), new_session(), new_session()
    with lock.hold(NAME, session) as held:

        def child() -> dict:
            took_held = not busy(lock, session)
            with lock.hold(NAME, other, timeout=0):
                holder = lock.holder(LockKey(NAME, other))
            lock.let_go(held)  # an inherited hold, given back in the child: nothing happens
            lock.close()
            return {"took_held": took_held, "pid": os.getpid(), "holder": holder}

        seen = run_in_fork(child)
        assert not seen["took_held"]
        if shared_locks.kind in ("postgres16", "postgres15"):
            assert f"{local_owner_prefix()}{seen['pid']}'" in seen["holder"]
        elif shared_locks.kind == "sqlite":
            assert seen["holder"] == f"process {seen['pid']} (this one)"
        # Still the parent's, as another child sees it.
        assert run_in_fork(lambda: {"busy": busy(lock, session)}) == {"busy": True}
        assert not held.lost
        assert lock.renew(held.key, held.token)


# --- what each store gives ----------------------------------------------------------------


def test_a_store_gives_the_lock_of_its_backend(checkpoint_backend):
    store = checkpoint_backend.checkpoint_store()
    lock = store.session_lock()
    assert store.session_lock() is lock
    expected = {
        "memory": ProcessSessionLock,
        "sqlite": SQLiteSessionLock,
        "postgres16": PostgresSessionLock,
        "postgres15": PostgresSessionLock,
        "redis": RedisSessionLock,
    }[checkpoint_backend.kind]
    assert type(lock) is expected
    assert lock.cross_process is (checkpoint_backend.kind != "memory")
    session = new_session()
    with lock.hold(NAME, session, timeout=0):
        assert lock.is_held_here(NAME, session)
        if checkpoint_backend.kind == "redis":
            assert lock.prefix == f"{store.prefix}lock:"
            assert checkpoint_backend.redis_keys("ckpt:lock:")  # beside the store's keys
    assert not lock.is_held_here(NAME, session)


def test_a_store_makes_one_lock_for_threads_asking_at_once():
    store = ai.checkpoint.memory()
    barrier = threading.Barrier(8)
    seen: list[Any] = []

    def ask() -> None:
        barrier.wait(10)
        seen.append(store.session_lock())

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(seen) == 8 and all(lock is seen[0] for lock in seen)


def test_database_session_lock_refuses_other_vendors_in_one_line(monkeypatch):
    from django.db import connections

    monkeypatch.setattr(connections["default"], "vendor", "mysql")
    with pytest.raises(StoreError) as info:
        database_session_lock("default")
    message = str(info.value)
    assert "\n" not in message
    assert "mysql" in message and "postgresql and sqlite" in message
    assert "session_lock=" in message
    with pytest.raises(StoreError, match="no database alias 'nope'"):
        database_session_lock("nope")


@pytest.mark.parametrize(
    "name", [":memory:", "file:memorydb_default?mode=memory&cache=shared", "file::memory:"]
)
def test_an_in_memory_sqlite_database_gets_the_process_lock(monkeypatch, name):
    from django.db import connections

    monkeypatch.setitem(connections["default"].settings_dict, "NAME", name)
    lock = database_session_lock("default")
    assert type(lock) is ProcessSessionLock and not lock.cross_process
    with pytest.raises(ValueError, match="in-memory"):
        SQLiteSessionLock(name)


@pytest.mark.django_db(databases=["default"], transaction=True)
def test_sqlite_locks_share_one_file_beside_the_database(tmp_path):
    from django.db import connections

    first, second = database_session_lock("default"), database_session_lock("default")
    try:
        database = Path(connections["default"].settings_dict["NAME"])
        assert first.path == second.path == f"{database.resolve()}.warlock-locks"
        session = new_session()
        with second.hold(NAME, session):
            assert Path(first.path).exists()
            assert busy(first, session)  # two locks of one process still exclude each other
            first.close()  # the file stays open: closing it would drop second's hold
            assert run_in_fork(lambda: {"busy": busy(second, session)}) == {"busy": True}
    finally:
        first.close()
        second.close()


def test_the_public_factories(redis_url):
    assert type(ai.session_lock.process()) is ProcessSessionLock
    lock = ai.session_lock.redis(url=redis_url, prefix="warlock-factory:", ttl=6)
    try:
        assert type(lock) is RedisSessionLock
        assert (lock.prefix, lock.ttl, lock.renew_every) == ("warlock-factory:", 6.0, 2.0)
    finally:
        lock.close()
    with pytest.raises(ValueError, match="ttl"):
        ai.session_lock.redis(url=redis_url, ttl=0)


@pytest.mark.django_db(databases=["default"], transaction=True)
def test_ai_session_lock_db_is_the_databases_lock():
    lock = ai.session_lock.db("default")
    try:
        assert type(lock) is SQLiteSessionLock
    finally:
        lock.close()


# --- PostgreSQL ---------------------------------------------------------------------------


def other_connection(alias: str) -> Any:
    from django.db import connections

    return connections.create_connection(alias)


def scalar(connection: Any, sql: str, params: list[Any] | None = None) -> Any:
    with connection.cursor() as cursor:
        cursor.execute(sql, params or [])
        return cursor.fetchone()[0]


def test_pg_closing_djangos_connection_keeps_the_lock(pg_locks):
    from django.db import connections

    alias = pg_locks.backend.alias
    lock, session = pg_locks.make(), new_session()
    with lock.hold(NAME, session) as held:
        connections[alias].ensure_connection()
        connections[alias].close()
        connections.close_all()
        other = other_connection(alias)
        try:
            number = LockKey(NAME, session).int64
            assert scalar(other, "SELECT pg_try_advisory_lock(%s)", [number]) is False
        finally:
            other.close()
        assert lock.renew(held.key, held.token)


def test_pg_one_connection_per_process_and_a_broken_one_is_lost_then_replaced(pg_locks):
    alias = pg_locks.backend.alias
    first, second = pg_locks.make(), pg_locks.make()
    first.renew_every = 0.05
    session = new_session()
    name = f"warlock_ai session locks {local_owner_prefix()}{os.getpid()}"
    other = other_connection(alias)
    try:
        with first.hold(NAME, session) as held:
            with second.hold(NAME, new_session(), timeout=0):
                count_sql = "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s"
                assert scalar(other, count_sql, [name]) == 1
            killed = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            assert scalar(other, killed + "WHERE application_name = %s", [name]) is True
            wait_for(lambda: held.lost, 10, "the renewal to see the connection gone")
            assert not busy(second, new_session())  # a new connection
        with first.hold(NAME, session, timeout=0) as again:
            assert not again.lost
    finally:
        other.close()


# --- Redis --------------------------------------------------------------------------------


def test_redis_renewal_keeps_the_lock_past_its_ttl(redis_locks):
    lock, other = redis_locks.make(ttl=0.3), redis_locks.make(ttl=0.3)
    session = new_session()
    with lock.hold(NAME, session) as held:
        time.sleep(1.0)
        assert not held.lost
        assert lock.holder(held.key) == held.token
        assert busy(other, session)
    assert lock.holder(held.key) is None
    assert not busy(other, session)


def test_redis_a_deleted_or_stolen_lock_is_lost_and_the_thief_keeps_it(redis_locks):
    lock, session = redis_locks.make(ttl=0.3), new_session()
    client = redis_locks.redis()
    try:
        with lock.hold(NAME, session) as held:
            client.delete(lock.key(held.key))
            wait_for(lambda: held.lost, 5, "the renewal to see the key gone")
        thief = "elsewhere:1:0badf00d"
        with lock.hold(NAME, session) as held:
            client.set(lock.key(held.key), thief, px=60_000)
            wait_for(lambda: held.lost, 5, "the renewal to see the key stolen")
        assert lock.holder(held.key) == thief  # letting go deleted nothing of the thief's
        # A holder on another host is not taken over: only its ttl frees the session.
        with pytest.raises(SessionBusyError) as info:
            lock.acquire(NAME, session, timeout=0.1)
        assert info.value.holder == thief
    finally:
        client.close()
