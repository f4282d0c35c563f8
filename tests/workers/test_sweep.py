"""The sweep (``warlock_ai.sweep``) in one process: its schedule, what one sweep does on a real
database and a real tasks backend, that a failure is logged and never raised, the sweeping
thread, and how the rq worker class wakes up for it. Real workers killed with SIGKILL, on
one host and across hosts, are in ``test_sweep_workers.py``."""

from __future__ import annotations

import logging
import random
import signal
import time

import pytest
from django.core.management import CommandError, call_command
from redis import Redis

from tests.workers.harness import wait_until
from warlock_ai.models import Delivery, Snapshot
from warlock_ai.sweep import Sweeper, SweepThread

pytestmark = pytest.mark.django_db(transaction=True)

IMMEDIATE = {"BACKGROUND": "tasks", "TASKS_BACKEND": "immediate"}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_first_sweep_is_due_at_once_then_every_jittered_interval(settings):
    settings.WARLOCK_AI = IMMEDIATE
    clock = Clock()
    sweeper = Sweeper(30, clock=clock, rng=random.Random(7))
    assert sweeper.enabled and sweeper.due() and sweeper.seconds_left() == 0
    gaps = []
    for _ in range(200):
        assert sweeper.run() == []  # nothing stale on an empty database
        gap = sweeper.seconds_left()
        gaps.append(gap)
        assert not sweeper.due()
        clock.now += gap - 0.001
        assert not sweeper.due()
        clock.now += 0.001
        assert sweeper.due()
    assert sweeper.sweeps == 200 and sweeper.failures == 0
    assert all(24 <= gap <= 36 for gap in gaps)  # 30 s +/- 20%
    assert max(gaps) - min(gaps) > 8  # spread over the range, so hosts drift apart
    assert abs(sum(gaps) / len(gaps) - 30) < 1.5


@pytest.mark.parametrize("interval", [0, None])
def test_a_zero_interval_never_sweeps(settings, interval):
    settings.WARLOCK_AI = {**IMMEDIATE, "SWEEP_SECONDS": 0}
    sweeper = Sweeper(interval)
    assert not sweeper.enabled and not sweeper.due()
    assert sweeper.seconds_left() == float("inf")
    thread = SweepThread(sweeper)
    thread.start()
    thread.join(2)
    assert not thread.is_alive() and sweeper.sweeps == 0


def test_the_interval_defaults_to_the_setting(settings):
    settings.WARLOCK_AI = {**IMMEDIATE, "SWEEP_SECONDS": 12.5}
    assert Sweeper().interval == 12.5


def test_a_sweep_resumes_stale_runs_and_puts_back_lost_deliveries(settings, runs):
    """On the immediate tasks backend, the resumes the sweep enqueues run inside it."""
    settings.WARLOCK_AI = IMMEDIATE
    runs.stale("stale-1")
    runs.stale("stale-2")
    runs.completed("done-1")
    outcomes = Sweeper(30).run()
    assert sorted(outcomes) == [
        ("stale-1", "enqueued as job warlock-run-stale-1"),
        ("stale-2", "enqueued as job warlock-run-stale-2"),
    ]
    assert set(Snapshot.objects.values_list("run_id", "status")) == {
        ("stale-1", "completed"),
        ("stale-2", "completed"),
        ("done-1", "completed"),
    }
    assert Delivery.objects.get(pk="warlock-run-stale-1").state == "finished"
    assert Sweeper(30).run() == []  # nothing left


def test_a_failed_sweep_is_logged_in_one_line_and_retried_later(settings, caplog):
    settings.WARLOCK_AI = {"BACKGROUND": "celery"}
    clock = Clock()
    sweeper = Sweeper(10, clock=clock)
    with caplog.at_level(logging.WARNING, logger="warlock_ai.sweep"):
        assert sweeper.run() == []
    [record] = caplog.records
    assert record.getMessage() == (
        "sweep failed: ImproperlyConfigured: "
        'WARLOCK_AI["BACKGROUND"] must be "rq", "tasks" or None, got \'celery\''
    )
    assert (sweeper.sweeps, sweeper.failures) == (1, 1)
    assert 8 <= sweeper.seconds_left() <= 12
    settings.WARLOCK_AI = IMMEDIATE
    clock.now += 12
    assert sweeper.run_if_due() == [] and sweeper.failures == 1


def test_a_sweep_logs_what_it_put_back(settings, runs, caplog):
    settings.WARLOCK_AI = IMMEDIATE
    runs.stale("stale-1")
    with caplog.at_level(logging.INFO, logger="warlock_ai.sweep"):
        Sweeper(30).run()
    [line] = [r.getMessage() for r in caplog.records if r.name == "warlock_ai.sweep"]
    assert line.startswith("sweep: 1 run(s) put back in ")
    assert line.endswith(": stale-1 (enqueued as job warlock-run-stale-1)")


def test_the_sweep_thread_recovers_a_run_that_goes_stale_while_it_runs(settings, runs):
    settings.WARLOCK_AI = {**IMMEDIATE, "SWEEP_SECONDS": 0.2}
    thread = SweepThread()
    thread.start()
    try:
        wait_until(lambda: thread.sweeper.sweeps >= 1, 10, "the boot sweep")
        runs.stale("late-1")
        wait_until(
            lambda: Snapshot.objects.get(pk="late-1").status == "completed",
            10,
            "the thread's next sweep resumed late-1",
        )
    finally:
        thread.stop(timeout=5)
    assert not thread.is_alive()
    assert thread.sweeper.failures == 0


def test_the_rq_worker_wakes_up_five_times_per_sweep_interval(settings, redis_url):
    from rq import Queue

    from warlock_ai.worker import Worker

    connection = Redis.from_url(redis_url)
    queue = Queue("sweep-test", connection=connection)
    settings.WARLOCK_AI = {"SWEEP_SECONDS": 30}
    worker = Worker([queue], connection=connection)
    assert worker.dequeue_timeout == 6
    assert worker.job_monitoring_interval == 6
    assert worker.sweeper.due()
    settings.WARLOCK_AI = {"SWEEP_SECONDS": 2}
    assert Worker([queue], connection=connection).dequeue_timeout == 1  # whole seconds
    settings.WARLOCK_AI = {"SWEEP_SECONDS": 0}  # off: rq's own timings
    plain = Worker([queue], connection=connection)
    assert plain.dequeue_timeout == plain.worker_ttl - 15
    assert plain.job_monitoring_interval == 30
    assert not plain.sweeper.enabled and not plain.sweeper.due()


def test_warlock_db_worker_refuses_another_background(settings):
    settings.WARLOCK_AI = {"BACKGROUND": "rq"}
    with pytest.raises(CommandError) as caught:
        call_command("warlock_db_worker", "--batch")
    assert str(caught.value) == (
        'warlock_db_worker runs warlock_ai\'s tasks: set WARLOCK_AI["BACKGROUND"] = "tasks" '
        "(it is 'rq')"
    )


def test_warlock_db_worker_sweeps_at_boot_and_runs_tasks(settings, runs):
    """A batch worker (it exits once the queue is empty): its boot sweep enqueues the stale
    run as a task on django-tasks-db, which the worker then runs."""
    settings.WARLOCK_AI = {"BACKGROUND": "tasks"}
    runs.stale("stale-1")
    before = signal.getsignal(signal.SIGTERM)
    call_command("warlock_db_worker", "--batch", "--no-startup-delay", "--interval", "0.05")
    assert signal.getsignal(signal.SIGTERM) is before  # db_worker's handlers are not left
    # The boot sweep may finish after the batch found the queue empty: then run it again.
    deadline = time.monotonic() + 10
    while Snapshot.objects.get(pk="stale-1").status != "completed":
        assert time.monotonic() < deadline, "the stale run was not resumed"
        call_command("warlock_db_worker", "--batch", "--no-startup-delay", "--interval", "0.05")
    assert Delivery.objects.get(pk="warlock-run-stale-1").state == "finished"


def test_a_stop_request_raised_during_a_sweep_reaches_the_worker(settings, monkeypatch):
    """rq's SIGTERM handler raises ``StopRequested`` in an idle worker, which may be sweeping:
    the rq worker classes let it through (the worker stops), anything else is logged."""
    from rq.exceptions import StopRequested

    from warlock_ai import sweep as sweep_module

    def interrupted() -> list:
        raise StopRequested()

    monkeypatch.setattr(sweep_module, "sweep", interrupted)
    settings.WARLOCK_AI = IMMEDIATE
    with pytest.raises(StopRequested):
        Sweeper(30, passthrough=(StopRequested,)).run()
    assert Sweeper(30).run() == []  # without the passthrough: a failed sweep, logged
