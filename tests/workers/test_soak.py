"""Soak: 100 runs of a 5-step flow on 2 rq workers, a worker SIGKILLed at random moments.

After each kill the worker is restarted and the worker-boot recovery runs (abandoned jobs
requeued, then ``drain_runs --enqueue``). Every run must complete, nothing may be lost, and
no step that completed may run again: a step body runs twice only when a kill landed inside
it (the killed work horse's ``SideEffect`` row is the first of the two)."""

from __future__ import annotations

import random
import time

import pytest

from tests.workers.harness import wait_until

pytestmark = [
    pytest.mark.slow,
    pytest.mark.crash,
    pytest.mark.services,
    pytest.mark.parametrize("fresh_project_db", ["postgres"], indirect=True),
]

RUNS = 100
WORKERS = 2
STEP_SLEEP = "0.2"  # seconds, the most a step sleeps (uniform): kills land inside steps
KILL_EVERY = (0.2, 1.2)  # seconds between kills, uniform
DEADLINE = 150  # seconds for the whole soak
FINISH_TIMEOUT = 60  # seconds for the runs left after the last kill
SOAK_STEPS = ("s1", "s2", "s3", "s4", "s5")  # the steps of worker-soak (flows_app/flows.py)


def test_soak_kills_lose_nothing_and_rerun_no_completed_step(project, capsys):
    project.env["WARLOCK_TEST_STEP_SLEEP"] = STEP_SLEEP
    run_ids = [project.run_id(f"soak-{n:03d}") for n in range(RUNS)]
    project.enqueue_execute("worker-soak", run_ids, input={"soak": True})
    rng = random.Random()
    started = time.monotonic()
    generation = 0
    workers = [project.worker(f"w{i}-g0") for i in range(WORKERS)]
    killed_horses: list[int] = []
    kills = requeued = 0

    def completed() -> int:
        return project.statuses()["completed"]

    while completed() < RUNS:
        assert time.monotonic() - started < DEADLINE, unfinished(project, run_ids)
        time.sleep(rng.uniform(*KILL_EVERY))  # the kill schedule, not a wait for a state
        if completed() == RUNS:
            break
        index = rng.randrange(WORKERS)
        killed_horses += workers[index].kill()
        kills += 1
        generation += 1
        workers[index] = project.worker(f"w{index}-g{generation}")
        outcomes = project.boot_recovery()
        requeued += sum(o["outcome"].startswith("requeued") for o in outcomes)

    if completed() < RUNS:
        wait_until(lambda: completed() == RUNS, FINISH_TIMEOUT, unfinished(project, run_ids))
    wall = time.monotonic() - started
    for worker in workers:
        worker.stop()

    # Nothing lost: every run is stored, completed, with its five steps completed.
    assert project.statuses() == {"completed": RUNS}
    for run_id in run_ids:
        row = project.snapshot(run_id)
        assert {name for name, rec in row["steps"].items() if rec["status"] == "completed"} == (
            set(SOAK_STEPS)
        ), run_id

    # Each (run, step) ran once, plus once more for each kill that landed inside it: every
    # execution but the last was in a work horse that was killed.
    rows = project.side_effects()
    pids: dict[tuple[str, str], list[int]] = {}
    for row in rows:
        pids.setdefault((row["run_id"], row["step"]), []).append(row["pid"])
    assert set(pids) == {(run_id, step) for run_id in run_ids for step in SOAK_STEPS}
    killed = set(killed_horses)
    reruns = {key: runs for key, runs in pids.items() if len(runs) > 1}
    interrupted = [pid for runs in reruns.values() for pid in runs[:-1]]
    assert set(interrupted) <= killed, {k: r for k, r in reruns.items() if set(r[:-1]) - killed}
    # A killed horse was inside one step of one run: it accounts for one rerun at most.
    assert len(interrupted) == len(set(interrupted)) <= kills, reruns

    connection = project.redis()
    failed = project.rq_queue(connection).failed_job_registry.get_job_ids()
    connection.close()
    assert failed == [], f"rq jobs failed: {failed}"

    with capsys.disabled():
        print(
            f"\nsoak: {RUNS} runs x {len(SOAK_STEPS)} steps on {WORKERS} workers, "
            f"{kills} kills, {len(interrupted)} step executions interrupted and rerun, "
            f"{requeued} jobs requeued from dead workers, {len(rows)} step executions, "
            f"{wall:.1f} s wall"
        )


def unfinished(project, run_ids: list[str]) -> str:
    """What is known of the runs that did not complete: snapshot and rq job."""
    from rq.job import Job

    from warlock_ai.jobs import job_id_for

    lines = []
    connection = project.redis()
    for run_id in run_ids:
        row = project.snapshot(run_id)
        if row is not None and row["status"] == "completed":
            continue
        job = Job.fetch_many([job_id_for(run_id)], connection=connection)[0]
        job_state = f"job {job.get_status()} worker {job.worker_name}" if job else "no job"
        row_state = f"{row['status']} next {row['next_step']}" if row else "no snapshot"
        lines.append(f"{run_id}: {row_state}; {job_state}")
    intermediate = connection.lrange(project.rq_queue(connection).intermediate_queue_key, 0, -1)
    connection.close()
    return (
        f"{len(lines)} runs not completed:\n" + "\n".join(lines) + f"\nintermediate: {intermediate}"
    )
