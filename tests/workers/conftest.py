"""Fixtures of the worker tests: a :class:`~tests.workers.harness.Project` per test (rq), or a
:class:`~tests.workers.tasks_harness.TasksProject` (Django's tasks framework)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.workers.harness import Project
from tests.workers.tasks_harness import TasksProject


@pytest.fixture
def project(fresh_project_db, redis_url, tmp_path) -> Iterator[Project]:
    """A migrated fresh database (parametrise ``fresh_project_db``), a queue, a token."""
    project = Project(fresh_project_db, redis_url, tmp_path)
    try:
        project.migrate()
        yield project
    finally:
        project.cleanup()


@pytest.fixture
def tasks_project(fresh_project_db, redis_url, tmp_path) -> Iterator[TasksProject]:
    """A migrated fresh database with django-tasks-db and a tasks queue of the test."""
    project = TasksProject(fresh_project_db, redis_url, tmp_path)
    try:
        project.migrate()
        yield project
    finally:
        project.cleanup()


@pytest.fixture
def queue_name(settings, redis_url):
    """A queue of this test on the workers' Redis database; its keys, and the jobs of run ids
    that start with its name, removed afterwards."""
    import redis

    from tests.workers.harness import worker_redis_url

    token = "wt" + uuid.uuid4().hex[:10]
    url = worker_redis_url(redis_url)
    settings.RQ_QUEUES = {token: {"URL": url}}
    settings.WARLOCK_AI = {"RQ_QUEUE": token}
    yield token
    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(match=f"*{token}*"))
    keys += [
        k for k in client.scan_iter(match="rq:job:*") if client.hget(k, "origin") == token.encode()
    ]
    if keys:
        client.delete(*keys)
    client.srem("rq:queues", f"rq:queue:{token}")
    client.close()
