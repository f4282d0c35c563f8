"""Recovery without restarts: every worker of one host is SIGKILLed in the middle of runs,
and a worker that was already running elsewhere (started before the kill, never restarted,
no ``drain_runs`` anywhere) resumes them from its periodic sweep.

"Elsewhere" is this host, where a dead process is seen at once, or another host: the doomed
workers run in a UTS namespace named ``host-a`` (``tests.workers.harness.on_host``, root), so
nothing but their runs' leases expiring tells they are gone. Each kind of worker: rq
(``warlock_ai.worker.Worker``) and the tasks framework (``manage.py warlock_db_worker``).
"""

from __future__ import annotations

import time

import pytest

from tests.workers.harness import Project, needs_root, wait_until
from tests.workers.tasks_harness import TasksProject

pytestmark = [
    pytest.mark.crash,
    pytest.mark.services,
    pytest.mark.parametrize("fresh_project_db", ["postgres"], indirect=True),
]

WORKER_CLASS = "warlock_ai.worker.Worker"
SWEEP, LEASE = 1.0, 3.0  # seconds
RUNS = 2
TIMEOUT = 60


def doomed_host_then_recovery(project: Project, start_doomed, start_rescuer, host) -> float:
    """Two gated runs held by two workers of the doomed host; a rescuer running since
    before the kill; the doomed host SIGKILLed, the gates opened: seconds until both runs
    completed, which the test checks ran each step once but the gate (twice)."""
    if host is not None:
        needs_root()
        project.env["WARLOCK_TEST_LEASE_SECONDS"] = str(LEASE)
    project.env["WARLOCK_TEST_SWEEP_SECONDS"] = str(SWEEP)
    run_ids = [project.run_id(f"r{n}") for n in range(RUNS)]
    project.enqueue_execute("worker-gate", run_ids)
    doomed = [start_doomed(f"doomed-{n}", host) for n in range(RUNS)]
    for run_id in run_ids:
        wait_until(lambda r=run_id: project.step_counts(r)["gate"] == 1, TIMEOUT, "the gates")
    rescuer = start_rescuer("rescuer")
    time.sleep(3 * SWEEP)  # its boot sweep and a few more: nothing to do, the doomed live
    assert project.statuses() == {"running": RUNS}
    assert all(project.step_counts(r)["gate"] == 1 for r in run_ids)
    for worker in doomed:
        worker.kill()
    killed = time.monotonic()
    for run_id in run_ids:
        project.open_gate(run_id)
    try:
        wait_until(
            lambda: project.statuses() == {"completed": RUNS},
            TIMEOUT,
            "the rescuer's sweep resumed every run",
            every=0.05,
        )
    except AssertionError as error:
        raise AssertionError(f"{error}\n{project.unfinished_report(run_ids)}") from None
    took = time.monotonic() - killed
    rescuer.stop()
    for run_id in run_ids:
        assert project.step_counts(run_id) == {"before": 1, "gate": 2, "after": 1}
    return took


@pytest.mark.parametrize("host", [None, "host-a"], ids=["same-host", "other-host"])
def test_rq_sweep_recovers_a_dead_host_without_a_restart(project: Project, host, capsys):
    took = doomed_host_then_recovery(
        project,
        lambda name, host: project.worker(name, worker_class=WORKER_CLASS, host=host),
        lambda name: project.worker(name, worker_class=WORKER_CLASS),
        host,
    )
    # Same host: its dead processes are seen at the next sweep. Another host: once the
    # runs' leases lapse (their jobs stay in rq's records of a live worker for a minute).
    bound = SWEEP * 1.2 + (LEASE if host else 0) + 5  # 5 s: resuming, on 2 busy cores
    assert took < bound, f"recovered in {took:.1f} s, more than {bound:.1f} s"
    with capsys.disabled():
        print(f"\nrq, {host or 'same host'}: {RUNS} runs recovered in {took:.2f} s")


@pytest.mark.parametrize("host", [None, "host-a"], ids=["same-host", "other-host"])
def test_tasks_sweep_recovers_a_dead_host_without_a_restart(
    tasks_project: TasksProject, host, capsys
):
    project = tasks_project
    took = doomed_host_then_recovery(
        project,
        lambda name, host: project.task_worker(name, command="warlock_db_worker", host=host),
        lambda name: project.task_worker(name, command="warlock_db_worker"),
        host,
    )
    bound = SWEEP * 1.2 + (LEASE if host else 0) + 5
    assert took < bound, f"recovered in {took:.1f} s, more than {bound:.1f} s"
    with capsys.disabled():
        print(f"\ntasks, {host or 'same host'}: {RUNS} runs recovered in {took:.2f} s")


def test_a_busy_rq_worker_sweeps_between_the_heartbeats_of_its_job(project: Project):
    """The only other worker is running a long job when the doomed one dies: its parent
    process sweeps anyway (rq's heartbeats wake it up), so the dead worker's job is back on
    the queue before the busy job ends, and runs next."""
    project.env["WARLOCK_TEST_SWEEP_SECONDS"] = str(SWEEP)
    busy, orphan = project.run_id("busy"), project.run_id("orphan")
    project.enqueue_execute("worker-gate", [busy])
    rescuer = project.worker("rescuer", worker_class=WORKER_CLASS)
    wait_until(lambda: project.step_counts(busy)["gate"] == 1, TIMEOUT, "the busy run's gate")
    [job_id] = project.enqueue_execute("worker-gate", [orphan])
    doomed = project.worker("doomed", worker_class=WORKER_CLASS)
    wait_until(lambda: project.step_counts(orphan)["gate"] == 1, TIMEOUT, "the orphan's gate")
    assert doomed.kill()

    connection = project.redis()
    try:
        queue = project.rq_queue(connection)
        wait_until(lambda: job_id in queue.get_job_ids(), TIMEOUT, "the orphan's job requeued")
    finally:
        connection.close()
    assert project.snapshot(busy)["status"] == "running"  # the rescuer was busy all along
    assert project.step_counts(busy) == {"before": 1, "gate": 1}
    project.open_gate(busy)
    project.open_gate(orphan)
    wait_until(lambda: project.statuses() == {"completed": 2}, TIMEOUT, "both runs completed")
    rescuer.stop()
    assert project.step_counts(orphan) == {"before": 1, "gate": 2, "after": 1}
    assert project.step_counts(busy) == {"before": 1, "gate": 1, "after": 1}
