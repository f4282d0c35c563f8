"""Fixtures of the rq worker tests: a :class:`~tests.workers.harness.Project` per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.workers.harness import Project


@pytest.fixture
def project(fresh_project_db, redis_url, tmp_path) -> Iterator[Project]:
    """A migrated fresh database (parametrise ``fresh_project_db``), a queue, a token."""
    project = Project(fresh_project_db, redis_url, tmp_path)
    try:
        project.migrate()
        yield project
    finally:
        project.cleanup()
