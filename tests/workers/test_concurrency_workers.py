"""Concurrency limits across real worker processes: five runs of a flow limited to two at once,
on four workers (rq's ``warlock_ai.worker.SimpleWorker``, or the tasks framework's
``warlock_db_worker``), on a fresh PostgreSQL database. Never more than two run at once;
the others wait, go back on their queue and run later; every run completes once."""

from __future__ import annotations

import json
import time

import pytest

from tests.workers.harness import Project, wait_until
from tests.workers.tasks_harness import TasksProject

pytestmark = [
    pytest.mark.crash,
    pytest.mark.services,
    pytest.mark.parametrize("fresh_project_db", ["postgres"], indirect=True),
]

LIMIT, RUNS, WORKERS = 2, 5, 4
TIMEOUT = 90


def most_at_once(project: Project) -> int:
    """The most runs between their first and last step at one time, in the order the step
    rows were written (each run writes ``before`` first and ``after`` last)."""
    running = most = 0
    for row in project.side_effects():
        if row["step"] == "before":
            running += 1
            most = max(most, running)
        elif row["step"] == "after":
            running -= 1
    return most


def limited(project: Project, start_worker) -> None:
    project.env["WARLOCK_TEST_CONCURRENCY"] = json.dumps({"FLOWS": {"worker-gate": LIMIT}})
    project.env["WARLOCK_TEST_CONCURRENCY_WAIT"] = "0.5"
    run_ids = [project.run_id(f"c{n}") for n in range(RUNS)]
    project.enqueue_execute("worker-gate", run_ids)
    workers = [start_worker(f"w{n}") for n in range(WORKERS)]

    def at_gate() -> list[str]:
        counts = {r: project.step_counts(r) for r in run_ids}
        return [r for r in run_ids if counts[r]["gate"] == 1 and not counts[r]["after"]]

    wait_until(lambda: len(at_gate()) == LIMIT, TIMEOUT, "two runs at their gate")
    time.sleep(3)  # the other jobs wait, go back on their queue, come again: none gets in
    assert len(at_gate()) == LIMIT
    assert sum(1 for r in run_ids if project.snapshot(r) is not None) == LIMIT
    for opened in range(RUNS):  # one gate at a time: each frees a slot for the next run
        [first, *_] = wait_until(at_gate, TIMEOUT, "a run at its gate")
        project.open_gate(first)
        wait_until(
            lambda n=opened: project.statuses().get("completed", 0) >= n + 1,
            TIMEOUT,
            f"{opened + 1} run(s) completed",
        )
    for worker in workers:
        worker.stop()
    assert project.statuses() == {"completed": RUNS}
    for run_id in run_ids:
        assert project.step_counts(run_id) == {"before": 1, "gate": 1, "after": 1}
    assert most_at_once(project) == LIMIT


def test_rq_workers_never_run_more_than_the_flow_limit(project: Project):
    limited(
        project, lambda name: project.worker(name, worker_class="warlock_ai.worker.SimpleWorker")
    )


def test_tasks_workers_never_run_more_than_the_flow_limit(tasks_project: TasksProject):
    project = tasks_project
    limited(project, lambda name: project.task_worker(name, command="warlock_db_worker"))
    deferred = [d["notes"].get("deferred", 0) for d in project.deliveries().values()]
    assert sum(deferred) > 0, "no delivery was ever pushed back"
    # A deferral does not use one of the delivery's attempts: each ran once.
    assert [d["attempts"] for d in project.deliveries().values()] == [1] * RUNS
