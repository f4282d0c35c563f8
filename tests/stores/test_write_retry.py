"""Writes survive a blip; a failure that remains is visible (issue 12).

A store write that fails because the store cannot be reached is retried (bounded, with
backoff) before it counts as failed; the ORM store closes the broken connection so that the
retry opens a new one. Tested with a real PostgreSQL made unreachable mid-run through a proxy
the test cuts and restores, and with a real Redis stopped and started again. A write that
still fails is in the result: ``report.persisted`` false, the count of failed writes and the
last error (the run itself is not failed for it: the seed's rule).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connections

import warlock_ai as ai
from tests.stores.proxy import CuttableProxy
from tests.stores.test_store_outage import private_redis  # noqa: F401  (a fixture)
from warlock_ai.core.errors import StoreUnavailableError
from warlock_ai.core.runs.writer import retry_delays
from warlock_ai.stores.orm import DatabaseSnapshotStore

pytestmark = pytest.mark.services

STEPS = ("one", "two", "three", "four")


def blip_workflow(name: str, store: Any, cut: Any) -> Any:
    """Four steps; step two cuts the store off (and arranges its return), so the write
    after step two meets an unreachable store."""

    def two(ctx: Any) -> None:
        cut()
        ctx.state["two"] = True

    def mark(step: str) -> Any:
        return lambda ctx: ctx.state.update({step: True})

    steps = [ai.step(s, two if s == "two" else mark(s)) for s in STEPS]
    return ai.workflow(name=name, steps=steps, snapshot_store=store)


@pytest.fixture
def proxied_alias(request: pytest.FixtureRequest) -> Iterator[tuple[str, CuttableProxy]]:
    """The database alias ``request.param``, reaching its test database through a proxy for
    the duration of the test (the alias itself is redirected: pytest-django refuses
    connections to aliases a test did not declare)."""
    alias = request.param
    connection = connections[alias]
    original = {key: connection.settings_dict[key] for key in ("HOST", "PORT")}
    proxy = CuttableProxy.for_database(connection.settings_dict)
    proxy.start()
    connection.close()
    connection.settings_dict.update(HOST="127.0.0.1", PORT=str(proxy.port))
    try:
        yield alias, proxy
    finally:
        connection.close()
        connection.settings_dict.update(original)
        proxy.stop()


PG = [
    pytest.param(alias, id=alias, marks=pytest.mark.django_db(databases=[alias], transaction=True))
    for alias in ("pg", "pg15")
]


@pytest.mark.parametrize("proxied_alias", PG, indirect=True)
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_postgres_unreachable_mid_run_the_run_is_stored_completed(proxied_alias, mode, caplog):
    alias, proxy = proxied_alias
    store = DatabaseSnapshotStore(using=alias)
    timers: list[threading.Timer] = []

    def cut() -> None:
        proxy.cut()
        timer = threading.Timer(2.0, proxy.restore)
        timers.append(timer)
        timer.start()

    wf = blip_workflow(f"pg-blip-{mode}", store, cut)
    events: list[dict[str, Any]] = []
    run_id = f"pg-blip-{mode}-1"
    with caplog.at_level(logging.WARNING, logger="warlock_ai.persistence"):
        if mode == "sync":
            result = wf.execute(run_id=run_id, on={"workflow.error": events.append})
        else:
            result = asyncio.run(wf.aexecute(run_id=run_id, on={"workflow.error": events.append}))
    for timer in timers:
        timer.join()

    assert proxy.cuts == 1 and proxy.connections >= 2, "the run reconnected through the proxy"
    assert result.status == "completed" and result.error is None
    assert result.report.persisted is True
    assert result.report.failed_writes == 0 and result.report.persist_error is None
    assert events == [], "a write that landed at a retry is not a failure"
    retried = [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()]
    assert retried and run_id in retried[0]
    # What the database says, read on a new connection once the proxy is back:
    connections[alias].close()
    stored = DatabaseSnapshotStore(using=alias).load(run_id)
    assert stored.status == "completed"
    assert [stored.steps[s].status for s in STEPS] == ["completed"] * 4
    assert stored.state == {s: True for s in STEPS}
    assert store.lease(run_id) is None


def test_redis_restarted_mid_run_the_run_is_stored_completed(private_redis):  # noqa: F811
    store = ai.snapshot.redis(url=private_redis.url, prefix="blip:")
    threads: list[threading.Thread] = []

    def cut() -> None:
        private_redis.stop()  # SHUTDOWN SAVE: the restart reads the data back

        def restart() -> None:
            threading.Event().wait(1.5)
            private_redis.start()

        thread = threading.Thread(target=restart)
        threads.append(thread)
        thread.start()

    wf = blip_workflow("redis-blip", store, cut)
    events: list[dict[str, Any]] = []
    result = wf.execute(run_id="redis-blip-1", on={"workflow.error": events.append})
    for thread in threads:
        thread.join()

    assert result.status == "completed" and result.error is None
    assert result.report.persisted is True and result.report.failed_writes == 0
    assert events == []
    stored = ai.snapshot.redis(url=private_redis.url, prefix="blip:").load("redis-blip-1")
    assert stored.status == "completed" and stored.state == {s: True for s in STEPS}
    assert store.lease("redis-blip-1") is None


def test_a_store_that_stays_down_is_in_the_result(private_redis):  # noqa: F811
    """Down for longer than the retries: the run completes (a failed write never aborts
    it), and its result says its last snapshot was not stored, how many writes failed and
    why."""
    store = ai.snapshot.redis(url=private_redis.url, prefix="down:", write_retry_seconds=0.3)

    def two(ctx: Any) -> None:
        private_redis.stop()
        ctx.state["two"] = True

    wf = ai.workflow(
        name="down",
        steps=[ai.step("one", lambda c: None), ai.step("two", two), ai.step("three", lambda c: 0)],
        snapshot_store=store,
    )
    events: list[dict[str, Any]] = []
    result = wf.execute(run_id="down-1", on={"workflow.error": events.append})

    assert result.status == "completed" and result.error is None
    report = result.report
    assert report.persisted is False
    assert report.failed_writes == 2, "after two, and the terminal one (which records three)"
    assert isinstance(report.persist_error, StoreUnavailableError)
    assert "down-1" in report.persist_error.message
    assert [e["phase"] for e in events] == ["persist"] * 2
    private_redis.start()
    stored = ai.snapshot.redis(url=private_redis.url, prefix="down:").load("down-1")
    assert stored.status == "running" and stored.next_step == "two", "the store is behind"


def test_retry_delays_double_up_to_a_cap_within_the_budget():
    delays = list(retry_delays(15.0))
    assert delays[:4] == [0.05, 0.1, 0.2, 0.4]
    assert max(delays) == 2.0 and sum(delays) <= 15.0
    assert sum(delays) > 15.0 - 2.0, "the budget is used, not wasted"
    assert list(retry_delays(0)) == []


@pytest.mark.parametrize("value", [-1, "5", None, True, float("nan"), 1e9])
def test_write_retry_seconds_is_validated(value):
    with pytest.raises(ValueError, match="write_retry_seconds"):
        ai.snapshot.redis(url="redis://127.0.0.1:1/0", write_retry_seconds=value)
