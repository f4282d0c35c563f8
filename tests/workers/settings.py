"""Settings of the ``manage.py`` children of the rq worker tests and of the rq benchmark.

The example project (database from ``$WARLOCK_DB_URL``) plus django-rq, a small app of test
flows (``flows_app``) and the orchestrators of the turn tests (``tests.turns_app``). Each
test run has its own queue, ``$WARLOCK_TEST_RQ_QUEUE``, on the Redis of
``$WARLOCK_TEST_RQ_URL``.
"""

import json
import os

from example_project.settings import *  # noqa: F403
from example_project.settings import DATABASES, INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "django_rq", "tests.workers.flows_app", "tests.turns_app"]

if "WARLOCK_TEST_CONN_MAX_AGE" in os.environ:  # bench/rq_throughput.py --conn-max-age
    DATABASES["default"]["CONN_MAX_AGE"] = int(os.environ["WARLOCK_TEST_CONN_MAX_AGE"])

RQ_QUEUE = os.environ.get("WARLOCK_TEST_RQ_QUEUE", "default")
RQ_QUEUES = {
    RQ_QUEUE: {
        "URL": os.environ.get("WARLOCK_TEST_RQ_URL", "redis://127.0.0.1:6379/13"),
        "DEFAULT_TIMEOUT": 600,
    }
}
WARLOCK_AI = {
    "RQ_QUEUE": RQ_QUEUE,
    "SHUTDOWN_GRACE_SECONDS": float(os.environ.get("WARLOCK_TEST_SHUTDOWN_GRACE", "20")),
    # Short leases make the heartbeat tick fast (every third of it) for the cancel tests.
    "LEASE_SECONDS": float(os.environ.get("WARLOCK_TEST_LEASE_SECONDS", "300")),
    # warlock_ai.worker.Worker and warlock_db_worker sweep at boot, then this often.
    "SWEEP_SECONDS": float(os.environ.get("WARLOCK_TEST_SWEEP_SECONDS", "30")),
    # JSON, e.g. {"FLOWS": {"worker-gate": 2}} (the concurrency tests).
    "CONCURRENCY": json.loads(os.environ.get("WARLOCK_TEST_CONCURRENCY", "{}")),
    "CONCURRENCY_WAIT_SECONDS": float(os.environ.get("WARLOCK_TEST_CONCURRENCY_WAIT", "5")),
}
