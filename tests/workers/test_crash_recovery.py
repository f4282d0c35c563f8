"""Runs on real ``rqworker`` processes that die: killed mid-step, raced, redelivered.

Real Redis, real ``manage.py rqworker`` children, a fresh PostgreSQL database; every step
body writes a ``SideEffect`` row when it starts, so the tests count what ran, and how often.
"""

from __future__ import annotations

import pytest

from tests.workers.harness import Project, wait_until

pytestmark = [
    pytest.mark.crash,
    pytest.mark.services,
    pytest.mark.parametrize("fresh_project_db", ["postgres"], indirect=True),
]

TIMEOUT = 60  # seconds any one condition may take before the test fails


def job_results(project: Project, job_ids: list[str]) -> dict[str, tuple[str, object]]:
    """``{job_id: (status, return value)}`` as rq stores them."""
    from rq.job import Job

    connection = project.redis()
    try:
        jobs = Job.fetch_many(job_ids, connection=connection)
        return {
            job_id: (job.get_status(), job.return_value()) if job else ("missing", None)
            for job_id, job in zip(job_ids, jobs, strict=True)
        }
    finally:
        connection.close()


def kill_at_the_gate(project: Project, run_id: str) -> None:
    """Start ``worker-gate`` as ``run_id`` on a worker; SIGKILL it inside the ``gate`` step."""
    project.enqueue_execute("worker-gate", [run_id])
    worker = project.worker("doomed")
    wait_until(lambda: project.step_counts(run_id)["gate"] == 1, TIMEOUT, "the gate step")
    assert worker.kill(), "no work horse was running the step"
    row = project.snapshot(run_id)
    assert row["status"] == "running"
    assert row["next_step"] == "gate"
    assert project.step_counts(run_id) == {"before": 1, "gate": 1}


@pytest.mark.parametrize("mode", ["inline", "enqueue"])
def test_worker_killed_mid_step_is_drained_to_completed(project, mode):
    run_id = project.run_id("killed")
    kill_at_the_gate(project, run_id)
    project.open_gate(run_id)

    if mode == "inline":
        outcomes = project.drain()
        assert outcomes == [{"run_id": run_id, "outcome": "completed", "ok": True}]
    else:
        outcomes = project.drain("--enqueue")
        assert run_id in {o["run_id"] for o in outcomes}, outcomes
        worker = project.worker("after-boot", burst=True)
        assert worker.wait() == 0, worker.output()

    row = project.snapshot(run_id)
    assert row["status"] == "completed"
    assert project.step_counts(run_id) == {"before": 1, "gate": 2, "after": 1}
    assert project.drain() == []  # nothing stale is left


def test_two_jobs_for_one_new_run_execute_it_once(project):
    """Two jobs for one run id (forced past the job-id rule): exactly one executes it."""
    run_id = project.run_id("twice")
    job_ids = [f"{project.token}-twice-{n}" for n in (1, 2)]
    connection = project.redis()
    queue = project.rq_queue(connection)
    for job_id in job_ids:
        args = ("workflow:worker-gate", None, run_id)
        queue.enqueue_call("warlock_ai.jobs.execute_job", args=args, job_id=job_id)
    connection.close()
    workers = [project.worker("w1"), project.worker("w2")]

    def one_stepped_aside():
        results = job_results(project, job_ids)
        done = [value for status, value in results.values() if status == "finished"]
        return done if project.step_counts(run_id)["gate"] == 1 and done else None

    [aside] = wait_until(one_stepped_aside, TIMEOUT, "one job running, the other done")
    assert aside["outcome"].startswith("skipped"), aside
    project.open_gate(run_id)
    wait_until(
        lambda: all(s == "finished" for s, _ in job_results(project, job_ids).values()),
        TIMEOUT,
        "both jobs finished",
    )
    outcomes = sorted(value["outcome"] for _, value in job_results(project, job_ids).values())
    assert outcomes[0] == "ran" and outcomes[1].startswith("skipped"), outcomes
    assert project.snapshot(run_id)["status"] == "completed"
    assert project.step_counts(run_id) == {"before": 1, "gate": 1, "after": 1}
    for worker in workers:
        worker.stop()


def test_two_resumes_of_one_stale_run_resume_it_once(project):
    """A run whose worker died, given to two workers at once: one resumes it."""
    run_id = project.run_id("stale")
    kill_at_the_gate(project, run_id)
    job_ids = [f"{project.token}-resume-{n}" for n in (1, 2)]
    connection = project.redis()
    queue = project.rq_queue(connection)
    for job_id in job_ids:
        queue.enqueue_call("warlock_ai.jobs.resume_job", args=(run_id, False), job_id=job_id)
    connection.close()
    workers = [project.worker("w1"), project.worker("w2")]

    def one_stepped_aside():
        results = job_results(project, job_ids)
        done = [value for status, value in results.values() if status == "finished"]
        return done if project.step_counts(run_id)["gate"] == 2 and done else None

    [aside] = wait_until(one_stepped_aside, TIMEOUT, "one job resuming, the other done")
    assert aside["outcome"].startswith("skipped"), aside
    project.open_gate(run_id)
    wait_until(
        lambda: all(s == "finished" for s, _ in job_results(project, job_ids).values()),
        TIMEOUT,
        "both jobs finished",
    )
    outcomes = sorted(value["outcome"] for _, value in job_results(project, job_ids).values())
    assert outcomes[0] == "resumed" and outcomes[1].startswith("skipped"), outcomes
    assert project.snapshot(run_id)["status"] == "completed"
    # "gate" twice: once in the killed worker, once in the one resume that ran.
    assert project.step_counts(run_id) == {"before": 1, "gate": 2, "after": 1}
    for worker in workers:
        worker.stop()


def test_job_redelivered_for_a_completed_run_runs_nothing(project):
    run_id = project.run_id("done")
    [job_id] = project.enqueue_execute("worker-soak", [run_id])
    assert project.worker("first", burst=True).wait() == 0
    before = project.snapshot(run_id)
    assert before["status"] == "completed"
    counts = project.step_counts(run_id)
    assert counts == dict.fromkeys(("s1", "s2", "s3", "s4", "s5"), 1)

    # Redelivery, as rq does it (a retry, a requeue): the same job id pushed again.
    connection = project.redis()
    project.rq_queue(connection).push_job_id(job_id)
    connection.close()
    worker = project.worker("again", burst=True)
    assert worker.wait() == 0, worker.output()

    [(status, summary)] = job_results(project, [job_id]).values()
    assert status == "finished"
    assert summary == {"run_id": run_id, "status": "completed", "outcome": "nothing to run"}
    assert project.step_counts(run_id) == counts
    assert project.snapshot(run_id) == before


def test_resume_job_of_a_completed_run_runs_nothing(project):
    run_id = project.run_id("done")
    project.enqueue_execute("worker-soak", [run_id])
    assert project.worker("first", burst=True).wait() == 0
    before = project.snapshot(run_id)
    code = (
        "import json\nfrom warlock_ai import jobs\n"
        f"print(json.dumps(jobs.enqueue_resume({run_id!r}).id))\n"
    )
    job_id = project.shell(code)
    assert project.worker("again", burst=True).wait() == 0

    [(status, summary)] = job_results(project, [job_id]).values()
    assert (status, summary["outcome"]) == ("finished", "nothing to run")
    assert project.step_counts(run_id) == dict.fromkeys(("s1", "s2", "s3", "s4", "s5"), 1)
    assert project.snapshot(run_id) == before


# --- jobs whose worker died before their run was stored ------------------------------------
# The run has no snapshot yet, so only rq knows about it. rq's leftovers are recreated
# exactly: a job id moved to the intermediate list (popped), or an execution registered for
# a worker that no longer exists (started).


def leave_job_behind(project: Project, run_id: str, how: str) -> str:
    from rq.executions import Execution
    from rq.job import JobStatus

    [job_id] = project.enqueue_execute("worker-gate", [run_id])
    connection = project.redis()
    queue = project.rq_queue(connection)
    assert connection.lmove(queue.key, queue.intermediate_queue_key) == job_id.encode()
    if how == "started":
        job = queue.fetch_job(job_id)
        with connection.pipeline() as pipeline:
            Execution.create(job, 60, pipeline, worker_name=f"{project.token}-ghost")
            job.set_status(JobStatus.STARTED, pipeline=pipeline)
            pipeline.lrem(queue.intermediate_queue_key, 1, job_id)
            pipeline.execute()
    connection.close()
    return job_id


@pytest.mark.parametrize("how", ["popped", "started"])
def test_job_of_a_dead_worker_is_requeued_and_its_run_completes(project, how):
    run_id = project.run_id(how)
    leave_job_behind(project, run_id, how)
    project.open_gate(run_id)
    worker = project.worker("idle", burst=True)
    assert worker.wait() == 0, worker.output()
    assert project.snapshot(run_id) is None  # nothing on the queue: the job is stuck

    code = (
        "import json\nfrom warlock_ai import jobs\nprint(json.dumps(jobs.requeue_abandoned_jobs()))"
    )
    assert project.shell(code) == [[run_id, "requeued: its worker died"]]
    assert project.shell(code) == []  # requeued once
    worker = project.worker("after-boot", burst=True)
    assert worker.wait() == 0, worker.output()
    assert project.snapshot(run_id)["status"] == "completed"
    assert project.step_counts(run_id) == {"before": 1, "gate": 1, "after": 1}


def test_job_of_a_live_worker_is_left_alone(project):
    run_id = project.run_id("live")
    project.enqueue_execute("worker-gate", [run_id])
    worker = project.worker("alive")
    wait_until(lambda: project.step_counts(run_id)["gate"] == 1, TIMEOUT, "the gate step")
    code = (
        "import json\nfrom warlock_ai import jobs\nprint(json.dumps(jobs.requeue_abandoned_jobs()))"
    )
    assert project.shell(code) == []
    project.open_gate(run_id)
    wait_until(lambda: project.step_counts(run_id)["after"] == 1, TIMEOUT, "the last step")
    worker.stop()
    assert project.step_counts(run_id) == {"before": 1, "gate": 1, "after": 1}
