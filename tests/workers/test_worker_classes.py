"""``warlock_ai.worker``'s rq worker classes in one process, on a real Redis: what they change
in rq's own behaviour. Their runs, shutdowns and sweeps on real worker processes are in
``test_interrupted_commands.py`` and ``test_sweep_workers.py``."""

from __future__ import annotations

import time

import pytest
from redis import Redis
from rq import Queue

from warlock_ai.worker import SimpleWorker, Worker

pytestmark = pytest.mark.services


@pytest.mark.parametrize("worker_class", [Worker, SimpleWorker])
def test_the_pubsub_thread_stops_within_two_seconds(worker_class, redis_url, settings):
    """rq's teardown stops its pubsub thread and means to wait a second for it; redis-py 8's
    ``stop()`` waits without a timeout, and a thread that saw its channel unsubscribed sits
    in a 60 s wait for a new subscription (plain rq took 59.5 s here)."""
    settings.WARLOCK_AI = {"SWEEP_SECONDS": 0}
    connection = Redis.from_url(redis_url)
    try:
        worker = worker_class([Queue("pubsub-probe", connection=connection)], connection=connection)
        worker.subscribe()
        time.sleep(0.3)
        worker.pubsub.unsubscribe()  # the thread reads the reply, then waits to be subscribed
        time.sleep(0.5)
        started = time.monotonic()
        worker.unsubscribe()
        assert time.monotonic() - started < 5
    finally:
        connection.close()


def test_only_the_forking_worker_closes_its_connections_after_a_sweep(settings, redis_url):
    """A work horse must not inherit its parent's connection; a SimpleWorker keeps its own."""
    settings.WARLOCK_AI = {"SWEEP_SECONDS": 30}
    connection = Redis.from_url(redis_url)
    try:
        queue = Queue("class-probe", connection=connection)
        assert Worker([queue], connection=connection).sweeper.close_connections
        assert not SimpleWorker([queue], connection=connection).sweeper.close_connections
    finally:
        connection.close()
