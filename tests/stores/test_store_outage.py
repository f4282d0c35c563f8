"""A store that is down or broken: clear errors, and runs that carry on (issue 4, "Snapshot
writes never block a run"; reference 1.11).

- Redis stopped in the middle of a run: the failed writes are reported (``workflow.error``
  with phase "persist", a warning on ``warlock_ai.workflow``), the run completes, and the
  writes after Redis returns land.
- A database whose tables do not exist, a Redis on a closed port: every operation raises a
  ``StoreError`` whose one-line message names the operation and the run or session.
"""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import redis

import warlock_ai as ai
from tests.stores.worker import make_record, make_snapshot, save_claimed, wait_for
from warlock_ai.core.errors import StoreError
from warlock_ai.core.runs.leases import new_owner_id

pytestmark = pytest.mark.services


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PrivateRedis:
    """A redis-server of this test alone, stopped and started again on the same port.

    ``SHUTDOWN SAVE`` writes its data to ``dump.rdb`` and the restart reads it back, as a
    production Redis with persistence would after a restart.
    """

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed: `apt-get install redis-server`")
        self.binary, self.workdir, self.port = binary, workdir, free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def answers(self) -> bool:
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5, socket_timeout=1)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def start(self) -> None:
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        args += ["--dir", str(self.workdir), "--dbfilename", "dump.rdb", "--save", ""]
        args += ["--appendonly", "no", "--daemonize", "no"]
        self.process = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=self.workdir
        )
        process = self.process
        wait_for(lambda: process.poll() is not None or self.answers(), what="redis-server to start")
        assert process.poll() is None, f"redis-server exited with {process.returncode}"

    def stop(self) -> None:
        client = redis.Redis.from_url(self.url)
        try:
            client.shutdown(save=True)
        finally:
            client.close()
        self.process.wait(10)

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.close()


def test_redis_down_mid_run_is_reported_and_the_run_completes(private_redis, caplog):
    # No retries: this test is about writes that fail for good (test_write_retry.py covers
    # writes that land at a retry).
    store = ai.snapshot.redis(url=private_redis.url, prefix="outage:", write_retry_seconds=0)
    probe = ai.snapshot.redis(url=private_redis.url, prefix="outage:")
    seen_before_five: list[Any] = []

    def five(ctx):
        seen_before_five.append(probe.load("outage-1"))
        ctx.state["five"] = True

    wf = ai.workflow(
        name="outage",
        steps=[
            ai.step("one", lambda ctx: ctx.state.update(one=True)),
            ai.step("two", lambda ctx: private_redis.stop()),
            ai.step("three", lambda ctx: ctx.state.update(three=True)),
            ai.step("four", lambda ctx: private_redis.start()),
            ai.step("five", five),
        ],
        snapshot_store=store,
    )
    events: list[dict[str, Any]] = []
    with caplog.at_level(logging.WARNING, logger="warlock_ai.workflow"):
        result = wf.execute(run_id="outage-1", on={"workflow.error": events.append})

    assert result.status == "completed" and result.error is None
    # The later writes landed, the terminal one too: what is stored is what the result says.
    assert result.report.persisted is True and result.report.failed_writes == 2
    persist = [e for e in events if e["phase"] == "persist"]
    assert persist and len(persist) == len(events), events
    assert len(persist) == 2, "the writes after steps two and three fail, no other"
    for event in persist:
        assert isinstance(event["error"], StoreError)
        assert "\n" not in event["error"].message
        assert "outage-1" in event["error"].message
    warnings = [
        r
        for r in caplog.records
        if r.name == "warlock_ai.workflow" and r.levelno == logging.WARNING
    ]
    assert len(warnings) == 2 and all("outage-1" in r.getMessage() for r in warnings)
    # The first write after Redis returned (step four's) landed before step five ran.
    assert seen_before_five[0] is not None
    assert seen_before_five[0].steps["four"].status == "completed"
    final = ai.snapshot.redis(url=private_redis.url, prefix="outage:").load("outage-1")
    assert final.status == "completed"
    assert final.state == {"one": True, "three": True, "five": True}
    assert probe.lease("outage-1") is None


# --- broken stores: clear, one-line StoreErrors -------------------------------------------


SNAPSHOT_CALLS: dict[str, Callable[[Any], Any]] = {
    "load": lambda store: store.load("err-run-1"),
    "save": lambda store: store.save(make_snapshot("err-run-1")),
    "save (fenced)": lambda store: save_claimed(store, make_snapshot("err-run-1"), new_owner_id()),
    "delete": lambda store: store.delete("err-run-1"),
    "list": lambda store: store.list("err-run-"),
    "lease": lambda store: store.lease("err-run-1"),
}
CHECKPOINT_CALLS: dict[str, Callable[[Any], Any]] = {
    "load": lambda store: store.load("support", "err-sess-1"),
    "save": lambda store: store.save(make_record(0, "err-sess-1")),
    "history": lambda store: store.history("support", "err-sess-1"),
    "delete": lambda store: store.delete("support", "err-sess-1"),
    "list": lambda store: store.list("support", "err-sess-"),
    "prune": lambda store: store.prune("support", "err-sess-1", 2),
}
# What each operation's message must name: the operation (any of these words), and the run,
# session or prefix it was about.
SNAPSHOT_NAMES = {
    "load": (("load",), "err-run-1"),
    "save": (("save",), "err-run-1"),
    "save (fenced)": (("save",), "err-run-1"),
    "delete": (("delete",), "err-run-1"),
    "list": (("list",), "err-run-"),
    "lease": (("lease",), "err-run-1"),
}
CHECKPOINT_NAMES = {
    "load": (("load",), "err-sess-1"),
    "save": (("save",), "err-sess-1"),
    "history": (("history", "read"), "err-sess-1"),
    "delete": (("delete",), "err-sess-1"),
    "list": (("list",), "support"),
    "prune": (("prune",), "err-sess-1"),
}


def store_error_problems(
    store: Any,
    calls: dict[str, Callable[[Any], Any]],
    names: dict[str, tuple[tuple[str, ...], str]],
) -> list[str]:
    """Run every operation; describe each one that does not fail with a clear StoreError."""
    problems = []
    for operation, call in calls.items():
        try:
            call(store)
        except StoreError as exc:
            message = str(exc)
            if "\n" in message:
                problems.append(f"{operation}: message is not one line: {message!r}")
            words, subject = names[operation]
            if not any(word in message.lower() for word in words):
                problems.append(f"{operation}: message does not name the operation: {message!r}")
            if subject not in message:
                problems.append(f"{operation}: message does not name {subject!r}: {message!r}")
        except Exception as exc:
            problems.append(f"{operation}: raised {type(exc).__name__}, not StoreError: {exc!r}")
        else:
            problems.append(f"{operation}: did not raise")
    return problems


DATABASES = [
    pytest.param(alias, id=kind, marks=pytest.mark.django_db(databases=[alias], transaction=True))
    for kind, alias in (("sqlite", "default"), ("postgres16", "pg"), ("postgres15", "pg15"))
]


@contextmanager
def table_missing(alias: str, model: Any) -> Iterator[None]:
    """The model's table is gone (renamed away) for the duration, as on an unmigrated database."""
    from django.db import connections

    connection = connections[alias]
    table = connection.ops.quote_name(model._meta.db_table)
    hidden = connection.ops.quote_name(model._meta.db_table + "_hidden")
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {table} RENAME TO {hidden}")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"ALTER TABLE {hidden} RENAME TO {table}")


@pytest.mark.parametrize("alias", DATABASES)
@pytest.mark.parametrize("contract", ["snapshot", "checkpoint"])
def test_orm_store_without_its_table_raises_clear_store_errors(alias, contract):
    from warlock_ai.models import Checkpoint, Snapshot

    if contract == "snapshot":
        store = ai.snapshot.db(using=alias)
        with table_missing(alias, Snapshot):
            problems = store_error_problems(store, SNAPSHOT_CALLS, SNAPSHOT_NAMES)
    else:
        store = ai.checkpoint.db(using=alias)
        with table_missing(alias, Checkpoint):
            problems = store_error_problems(store, CHECKPOINT_CALLS, CHECKPOINT_NAMES)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("contract", ["snapshot", "checkpoint"])
def test_redis_store_on_a_closed_port_raises_clear_store_errors(contract):
    url = f"redis://127.0.0.1:{free_port()}/0"
    if contract == "snapshot":
        store = ai.snapshot.redis(url=url)
        problems = store_error_problems(store, SNAPSHOT_CALLS, SNAPSHOT_NAMES)
    else:
        store = ai.checkpoint.redis(url=url)
        problems = store_error_problems(store, CHECKPOINT_CALLS, CHECKPOINT_NAMES)
    assert not problems, "\n".join(problems)
