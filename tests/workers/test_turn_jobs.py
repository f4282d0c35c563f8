"""Orchestrator turns on real ``rqworker`` processes: ``enqueue_turn`` (one job per turn),
a worker killed mid-turn (``iterate=True``) whose turn is finished by ``drain_runs`` or by the
session's next job, and a job whose session is busy going back on its queue.

The orchestrators are those of tests/turns_app: each intent call is logged in the project's
gate directory (``turn_calls``), and an input ``{"hold": N}`` holds iteration N there.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.django.project import stored_turns, turn_calls
from tests.workers.harness import Project, describe, wait_until

pytestmark = pytest.mark.services

TIMEOUT = 60
STEPS, COUNTER = "turn-steps", "turn-counter"


def enqueue_turns(project: Project, *turns: tuple[Any, ...]) -> list[str]:
    """``jobs.enqueue_turn(name, session, input, **options)`` for each turn, in one child;
    returns the job ids."""
    code = (
        "import json\nfrom warlock_ai import jobs\n"
        f"turns = {turns!r}\n"
        "ids = [jobs.enqueue_turn(*turn[:3], **(turn[3] if len(turn) > 3 else {})).id"
        " for turn in turns]\n"
        "print(json.dumps(ids))\n"
    )
    return project.shell(code)


def job(project: Project, job_id: str) -> Any:
    from rq.job import Job

    connection = project.redis()
    try:
        return Job.fetch(job_id, connection=connection)
    finally:
        connection.close()


def held(project: Project, run_id: str) -> bool:
    return (project.gates / f"held-{run_id}").exists()


def test_enqueue_turn_runs_on_a_worker_and_one_turn_is_one_job(project: Project):
    session = project.run_id("chat")
    first, again, second, keyed = enqueue_turns(
        project,
        (COUNTER, session, {"text": "one", "n": 1}),
        (COUNTER, session, {"n": 1, "text": "one"}),  # the same input: the same job
        (COUNTER, session, "two"),
        (COUNTER, session, {"text": "one", "n": 1}, {"turn_key": "said-again"}),
    )
    assert first == again and len({first, second, keyed}) == 3
    assert first.startswith("warlock-turn-")
    assert project.worker("w", burst=True).wait() == 0

    rows = stored_turns(project.db, COUNTER, session)
    assert [row["turn_index"] for row in rows] == [0, 1, 2]
    one = {"text": "one", "n": 1}
    assert rows[-1]["state"] == {"count": 3, "inputs": [one, "two", one]}
    result = job(project, first).return_value()
    assert result == {
        "run_id": f"{session}.unversioned.0",
        "status": "awaiting-input",
        "outcome": "ran",
        "session_id": session,
        "turn_index": 0,
    }
    # Enqueued again once it ran: the finished job is that turn; nothing runs twice.
    assert enqueue_turns(project, (COUNTER, session, one)) == [first]
    assert project.worker("w2", burst=True).wait() == 0
    assert len(stored_turns(project.db, COUNTER, session)) == 3


def test_execute_turn_and_resume_turn_enqueue(project: Project):
    session = project.run_id("cmd")
    args = ["execute_turn", COUNTER, "--session", session, "--input", '"hi"', "--enqueue"]
    queued = project.manage(*args, "--json")
    assert queued.returncode == 0, describe(queued)
    document = json.loads(queued.stdout)
    assert document["orchestrator"] == COUNTER and document["session_id"] == session
    assert document["job_id"].startswith("warlock-turn-") and document["queue"] == project.queue
    assert document["job_status"] == "queued"
    again = project.manage(*args)
    assert again.stdout.strip() == (
        f"turn of session {session} of {COUNTER}: job {document['job_id']} queued on "
        f"{project.queue}"
    ), describe(again)
    assert project.worker("w", burst=True).wait() == 0
    assert [row["turn_index"] for row in stored_turns(project.db, COUNTER, session)] == [0]
    nothing = project.manage("resume_turn", STEPS, "--session", session, "--enqueue")
    assert nothing.returncode == 0, describe(nothing)
    assert nothing.stdout.startswith(f"nothing to resume: session {session} of turn-steps")


def kill_mid_turn(project: Project, session: str) -> str:
    """Turn 0 of turn-steps settled on a worker; turn 1's worker SIGKILLed in iteration 1."""
    enqueue_turns(project, (STEPS, session, "first"))
    assert project.worker("first", burst=True).wait() == 0
    run_id = f"{session}.unversioned.1"
    enqueue_turns(project, (STEPS, session, {"hold": 1}))
    worker = project.worker("doomed")
    wait_until(lambda: held(project, run_id), TIMEOUT, "iteration 1 of turn 1")
    assert worker.kill(), "no work horse was running the turn"
    row = project.snapshot(run_id)
    assert (row["status"], row["kind"], len(row["steps"])) == ("running", "orchestrator", 1)
    assert [r["turn_index"] for r in stored_turns(project.db, STEPS, session)] == [0]
    return run_id


def assert_turn_1_finished_once(project: Project, session: str, run_id: str) -> list[dict]:
    rows = stored_turns(project.db, STEPS, session)
    assert rows[1]["turn_index"] == 1
    assert rows[1]["state"] == {"steps": 6, "last_input": {"hold": 1}}
    assert turn_calls(project.gates, run_id) == [0, 1, 1, 2]  # only iteration 1 ran twice
    assert project.snapshot(run_id) is None
    return rows


@pytest.mark.crash
@pytest.mark.parametrize("fresh_project_db", ["postgres"], indirect=True)
@pytest.mark.parametrize("recovery", ["drain_runs", "resume_turn --enqueue"])
def test_a_worker_killed_mid_turn_is_finished_by_drain_or_resume_turn(
    project: Project, recovery: str
):
    session = project.run_id("drained")
    run_id = kill_mid_turn(project, session)

    if recovery == "drain_runs":
        assert project.drain() == [
            {
                "run_id": run_id,
                "outcome": "completed: awaiting-input",
                "session_id": session,
                "turn_index": 1,
                "ok": True,
            }
        ]
    else:
        queued = project.manage("resume_turn", STEPS, "--session", session, "--enqueue", "--json")
        assert queued.returncode == 0, describe(queued)
        assert json.loads(queued.stdout)["run_id"] == run_id  # the turn's run's resume job
        assert project.worker("resumer", burst=True).wait() == 0
    assert len(assert_turn_1_finished_once(project, session, run_id)) == 2

    # The dead worker's job, delivered again on the next boot, knows its turn is done.
    recovered = project.boot_recovery()
    assert {"run_id": run_id, "outcome": "requeued: its worker died"} in recovered, recovered
    assert project.worker("after-boot", burst=True).wait() == 0
    assert len(assert_turn_1_finished_once(project, session, run_id)) == 2


@pytest.mark.crash
@pytest.mark.parametrize("fresh_project_db", ["postgres"], indirect=True)
def test_a_worker_killed_mid_turn_is_finished_by_the_sessions_next_job(project: Project):
    session = project.run_id("next")
    run_id = kill_mid_turn(project, session)

    enqueue_turns(project, (STEPS, session, "third"))
    assert project.worker("next", burst=True).wait() == 0
    rows = assert_turn_1_finished_once(project, session, run_id)
    assert [r["turn_index"] for r in rows] == [0, 1, 2]
    assert rows[2]["state"] == {"steps": 9, "last_input": "third"}

    # The dead worker's job, put back on the queue, runs nothing: its turn is turn 1.
    recovered = project.boot_recovery()
    assert {"outcome": "requeued: its worker died"} in [
        {"outcome": o["outcome"]} for o in recovered
    ]
    assert project.worker("after-boot", burst=True).wait() == 0
    assert len(stored_turns(project.db, STEPS, session)) == 3
    assert turn_calls(project.gates, run_id) == [0, 1, 1, 2]


@pytest.mark.parametrize("fresh_project_db", ["postgres"], indirect=True)
def test_a_job_whose_session_is_busy_goes_back_on_its_queue(project: Project):
    """Needs the checkpoint store's cross-process session lock (a PostgreSQL advisory lock)."""
    session = project.run_id("busy")
    holder_run = f"{session}.unversioned.0"
    holder = project.start(
        "execute_turn", STEPS, "--session", session, "--input", json.dumps({"hold": 1})
    )
    try:
        wait_until(lambda: held(project, holder_run), TIMEOUT, "the holding turn")
        [job_id] = enqueue_turns(project, (STEPS, session, "waiting"))
        project.env["WARLOCK_TEST_TURN_LOCK_TIMEOUT"] = "0.5"
        worker = project.worker("patient")
        wait_until(lambda: (job(project, job_id).number_of_retries or 0) >= 2, TIMEOUT, "retries")
        assert job(project, job_id).get_status() != "failed"
        (project.gates / f"release-{holder_run}").touch()
        out, err = holder.communicate(timeout=TIMEOUT)
        assert holder.returncode == 0, out + err
        wait_until(lambda: job(project, job_id).get_status() == "finished", TIMEOUT, "the job")
        worker.stop()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    rows = stored_turns(project.db, STEPS, session)
    assert [(r["turn_index"], r["state"]["last_input"]) for r in rows] == [
        (0, {"hold": 1}),
        (1, "waiting"),
    ]
    assert job(project, job_id).return_value()["turn_index"] == 1


@pytest.mark.crash
def test_a_worker_killed_after_appending_does_not_run_its_turn_again(project: Project):
    """iterate=False: the worker dies after the turn's row is appended but before its job
    noted it; delivered again, the job finds its turn by the row's turn_key and runs nothing."""
    session = project.run_id("appended")
    hold = project.gates / f"hold-after-append-{session}"
    hold.touch()
    (job_id,) = enqueue_turns(project, (COUNTER, session, "only once"))
    worker = project.worker("doomed-after-append")
    wait_until(
        lambda: (project.gates / f"appended-{session}").exists(), TIMEOUT, "the turn's append"
    )
    assert worker.kill(), "no work horse was running the turn"
    hold.unlink()
    rows = stored_turns(project.db, COUNTER, session)
    assert [(r["turn_index"], r["turn_key"]) for r in rows] == [(0, job_id)]

    recovered = project.boot_recovery()
    assert {"outcome": "requeued: its worker died"} in [
        {"outcome": o["outcome"]} for o in recovered
    ]
    assert project.worker("after-boot", burst=True).wait() == 0
    rows = stored_turns(project.db, COUNTER, session)
    assert [r["turn_index"] for r in rows] == [0]
    assert rows[0]["state"]["inputs"] == ["only once"]
    assert job(project, job_id).return_value()["outcome"] == "nothing to run"
