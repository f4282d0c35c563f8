"""``warlock_ai.jobs``: job ids, enqueue on commit, one job per run, refusals up front.

In this process, against the real Redis (a queue of its own per test) and the test database;
no worker runs here except through a synchronous queue (``ASYNC: False``).
"""

from __future__ import annotations

import pytest
from django.db import transaction
from rq.job import JOB_ID_PATTERN

import warlock_ai as ai
from warlock_ai import jobs
from warlock_ai.core.errors import SnapshotSerializationError, WorkflowError
from warlock_ai.operations import RunExistsError, UnknownRunError
from warlock_ai.registry import UnknownFlowError, registry

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

FLOW = "enqueue-test"


def noop(ctx):
    ctx.state["done"] = True


@pytest.fixture
def flow():
    definition = registry.register(ai.workflow(name=FLOW, steps=[ai.step("only", noop)]))
    yield definition
    registry.unregister("workflow", FLOW)


def queued(name: str) -> list[str]:
    import django_rq

    return django_rq.get_queue(name).get_job_ids()


def test_job_id_is_derived_from_the_run_id():
    assert jobs.job_id_for("import-1") == "warlock-run-import-1"
    odd = jobs.job_id_for("order:42/ä b")
    assert odd.startswith("warlock-runh-")
    assert odd == jobs.job_id_for("order:42/ä b")
    assert odd != jobs.job_id_for("order:42/ä c")
    for job_id in (jobs.job_id_for("import-1"), odd, jobs.job_id_for("x" * 255)):
        assert JOB_ID_PATTERN.fullmatch(job_id), job_id


def test_enqueue_in_a_transaction_happens_on_commit(flow, queue_name):
    rid = f"{queue_name}-1"
    with transaction.atomic():
        job = jobs.enqueue_execute(FLOW, {"n": 1}, run_id=rid)
        assert job.id == jobs.job_id_for(rid)
        assert queued(queue_name) == []
    assert queued(queue_name) == [job.id]
    assert job.meta["run_id"] == rid
    assert job.args == (f"workflow:{FLOW}", {"n": 1}, rid)


def test_rollback_enqueues_nothing(flow, queue_name):
    rid = f"{queue_name}-1"
    with pytest.raises(RuntimeError), transaction.atomic():
        jobs.enqueue_execute(FLOW, {"n": 1}, run_id=rid)
        raise RuntimeError("roll back")
    assert queued(queue_name) == []
    import django_rq

    assert django_rq.get_queue(queue_name).fetch_job(jobs.job_id_for(rid)) is None


def test_duplicate_enqueue_of_one_run_is_one_job(flow, queue_name):
    rid = f"{queue_name}-1"
    first = jobs.enqueue_execute(FLOW, {"n": 1}, run_id=rid)
    second = jobs.enqueue_execute(FLOW, {"n": 1}, run_id=rid)
    assert second.id == first.id
    assert queued(queue_name) == [first.id]

    other = f"{queue_name}-2"
    with transaction.atomic():
        jobs.enqueue_execute(FLOW, None, run_id=other)
        jobs.enqueue_execute(FLOW, None, run_id=other)
    assert queued(queue_name) == [first.id, jobs.job_id_for(other)]


def test_enqueue_execute_generates_the_run_id(flow, queue_name):
    job = jobs.enqueue_execute(FLOW)
    assert job.meta["run_id"].startswith("wf_")
    assert job.id == jobs.job_id_for(job.meta["run_id"])
    job.delete()


def test_enqueue_refuses_bad_input_before_anything_is_queued(flow, queue_name):
    with pytest.raises(UnknownFlowError):
        jobs.enqueue_execute("no-such-flow")
    with pytest.raises(WorkflowError, match="limit is 255"):
        jobs.enqueue_execute(FLOW, run_id="r" * 256)
    with pytest.raises(SnapshotSerializationError):
        jobs.enqueue_execute(FLOW, {"when": object()})
    with pytest.raises(UnknownRunError):
        jobs.enqueue_resume("no-such-run")
    flow.execute(None, run_id="stored-1")
    with pytest.raises(RunExistsError):
        jobs.enqueue_execute(FLOW, run_id="stored-1")
    assert queued(queue_name) == []


def test_synchronous_queue_runs_the_job_and_a_finished_job_is_replaced(flow, queue_name, settings):
    settings.RQ_QUEUES = {queue_name: {**settings.RQ_QUEUES[queue_name], "ASYNC": False}}
    rid = f"{queue_name}-1"
    job = jobs.enqueue_execute(FLOW, {"n": 1}, run_id=rid)
    assert job.return_value() == {"run_id": rid, "status": "completed", "outcome": "ran"}
    again = jobs.enqueue_resume(rid)
    assert again.id == job.id
    assert again.return_value() == {
        "run_id": rid,
        "status": "completed",
        "outcome": "nothing to run",
    }


def test_execute_job_delivered_again_resumes_nothing_finished(flow, queue_name):
    rid = f"{queue_name}-1"
    assert jobs.execute_job(f"workflow:{FLOW}", None, rid)["outcome"] == "ran"
    assert jobs.execute_job(f"workflow:{FLOW}", None, rid) == {
        "run_id": rid,
        "status": "completed",
        "outcome": "nothing to run",
    }
    assert jobs.resume_job(rid)["outcome"] == "nothing to run"


def test_a_queued_job_missing_from_its_queue_does_not_block_the_run(flow, queue_name):
    import django_rq

    rid = f"{queue_name}-1"
    first = jobs.enqueue_execute(FLOW, None, run_id=rid)
    queue = django_rq.get_queue(queue_name)
    queue.connection.delete(queue.key)  # the list is gone (flushed by hand); the job hash stays
    assert queue.fetch_job(first.id).get_status() == "queued"
    again = jobs.enqueue_execute(FLOW, None, run_id=rid)
    assert again.id == first.id
    assert queued(queue_name) == [first.id]


def test_a_resume_goes_ahead_of_the_runs_waiting_to_start(flow, queue_name):
    """A run that started (here: failed, then fixed) is resumed before runs not started yet:
    a sweep's resumes after a crash or a network cut do not wait behind a backlog."""

    def flaky(ctx):
        raise RuntimeError("not yet")

    definition = registry.register(ai.workflow(name="enqueue-flaky", steps=[ai.step("s", flaky)]))
    try:
        assert definition.execute(None, run_id=f"{queue_name}-started").status == "failed"
        waiting = [jobs.enqueue_execute(FLOW, run_id=f"{queue_name}-new{n}").id for n in (1, 2)]
        resume = jobs.enqueue_resume(f"{queue_name}-started")
        assert queued(queue_name) == [resume.id, *waiting]
    finally:
        registry.unregister("workflow", "enqueue-flaky")
