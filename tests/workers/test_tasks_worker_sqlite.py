"""The tasks framework on SQLite (the quick start's database): two ``db_worker`` processes at
once take deliveries with ``BEGIN IMMEDIATE`` (SQLite has no row locks), so no task fails on
"database is locked" and every run runs once."""

from __future__ import annotations

import pytest

from tests.workers.harness import wait_until
from tests.workers.tasks_harness import TasksProject

pytestmark = [
    pytest.mark.services,
    pytest.mark.parametrize("fresh_project_db", ["sqlite"], indirect=True),
]

SOAK_STEPS = ("s1", "s2", "s3", "s4", "s5")


@pytest.fixture
def project(tasks_project: TasksProject) -> TasksProject:
    return tasks_project


def test_two_db_workers_on_sqlite_run_every_run_once(project: TasksProject):
    run_ids = [project.run_id(f"r{n}") for n in range(8)]
    project.enqueue_execute("worker-soak", run_ids)
    workers = [project.task_worker("w1"), project.task_worker("w2")]
    wait_until(lambda: project.statuses()["completed"] == 8, 60, "8 completed runs", every=0.2)
    for worker in workers:
        worker.stop()
    assert [t["status"] for t in project.task_results()] == ["SUCCESSFUL"] * 8
    for run_id in run_ids:
        assert project.step_counts(run_id) == dict.fromkeys(SOAK_STEPS, 1)
    assert {d["state"] for d in project.deliveries().values()} == {"finished"}
    ran_in = {row["pid"] for row in project.side_effects()}
    assert ran_in <= {worker.pid for worker in workers}
    assert "locked" not in "".join(worker.output() for worker in workers)
