"""SIGINT and SIGTERM in ``execute_run`` / ``resume_run`` (issue 12), on real subprocesses:
the run stops at its next check point (or, past the grace period, during its step), its
snapshot is stored and its lease released, the command prints one line naming the resume
command and exits with 128 + the signal's number; ``resume_run`` then finishes the run.
Each execution is an attempt kept with the snapshot, a SIGKILLed one ``crashed``."""

from __future__ import annotations

import signal
import time

import pytest

from tests.workers.harness import describe, wait_until

pytestmark = pytest.mark.services

TIMEOUT = 60
WORKER_CLASS = "warlock_ai.worker.Worker"


def in_gate(project, run_id: str) -> None:
    wait_until(lambda: project.step_counts(run_id)["gate"] == 1, TIMEOUT, "the gate step")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_execute_run_at_the_next_check_point(project, sig):
    run_id = project.run_id(f"sig{int(sig)}")
    child = project.start("execute_run", "worker-gate", "--run-id", run_id)
    try:
        in_gate(project, run_id)
        child.send_signal(sig)
        project.open_gate(run_id)  # the step finishes within the grace period
        out, err = child.communicate(timeout=TIMEOUT)
    finally:
        if child.poll() is None:
            child.kill()
    name = signal.Signals(sig).name
    assert child.returncode == 128 + sig, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"interrupted by {name}: run {run_id} stopped at a check point")
    assert lines[0].endswith(f"resume it with: python manage.py resume_run {run_id}")
    assert "Traceback" not in out + err
    row = project.snapshot(run_id)
    assert row["status"] == "running" and row["next_step"] == "after"
    assert not row["lease_owner"], "the lease is released"

    resumed = project.manage("resume_run", run_id)
    assert resumed.returncode == 0, describe(resumed)
    assert project.snapshot(run_id)["status"] == "completed"
    assert project.step_counts(run_id) == {"before": 1, "gate": 1, "after": 1}
    first, second = project.snapshot(run_id)["attempts"]
    assert (first["end"], first["detail"], first["resumed_at"]) == ("interrupted", name, None)
    assert first["worker"].split(":")[1] == str(child.pid), "who ran it"
    assert (second["end"], second["resumed_at"]) == ("completed", "after")


def test_a_step_still_running_after_the_grace_period_is_interrupted(project):
    run_id = project.run_id("hard")
    child = project.start(
        "execute_run", "worker-gate", "--run-id", run_id, WARLOCK_TEST_SHUTDOWN_GRACE="1"
    )
    try:
        in_gate(project, run_id)
        child.send_signal(signal.SIGTERM)  # the gate stays shut: the step does not finish
        out, err = child.communicate(timeout=TIMEOUT)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 143, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out + err, err
    assert lines[0].startswith(f"interrupted (SIGTERM: not stopped within 1 s): run {run_id}")
    assert "that step runs again on resume" in lines[0]
    row = project.snapshot(run_id)
    assert row["status"] == "running" and row["next_step"] == "gate"
    assert not row["lease_owner"], "released with the last stored snapshot"

    project.open_gate(run_id)
    resumed = project.manage("resume_run", run_id)
    assert resumed.returncode == 0, describe(resumed)
    assert project.step_counts(run_id) == {"before": 1, "gate": 2, "after": 1}
    first, second = project.snapshot(run_id)["attempts"]
    assert first["end"] == "interrupted"
    assert first["detail"] == "SIGTERM: not stopped within 1 s"
    assert (second["end"], second["resumed_at"]) == ("completed", "gate")


def test_a_sigkilled_run_is_recorded_as_crashed_by_its_resume(project):
    run_id = project.run_id("killed")
    child = project.start("execute_run", "worker-gate", "--run-id", run_id)
    try:
        in_gate(project, run_id)
        child.kill()
        child.wait(TIMEOUT)
    finally:
        if child.poll() is None:
            child.kill()
    (only,) = project.snapshot(run_id)["attempts"]
    assert only["end"] is None, "a killed worker writes nothing more"
    project.open_gate(run_id)
    resumed = project.manage("resume_run", run_id)
    assert resumed.returncode == 0, describe(resumed)
    first, second = project.snapshot(run_id)["attempts"]
    assert (first["end"], first["detail"]) == ("crashed", "it never wrote how it ended")
    assert (second["number"], second["resumed_at"], second["end"]) == (2, "gate", "completed")


@pytest.mark.parametrize("worker_class", [WORKER_CLASS, "warlock_ai.worker.SimpleWorker"])
def test_a_worker_shutdown_stops_the_run_cleanly_and_another_worker_resumes_it(
    project, worker_class
):
    """``warlock_ai.worker.Worker`` (the job in a work horse) and ``SimpleWorker`` (in the
    worker's process): SIGTERM to the worker reaches the running job; the run stops at its
    next check point (lease released), the job is delivered again, and the next worker
    resumes the run without running its finished steps again. The worker exits well within
    a platform's kill delay (rq with redis-py 8 waited up to a minute for its pubsub thread)."""
    run_id = project.run_id("warm")
    project.enqueue_execute("worker-gate", [run_id])
    first = project.worker("w1", worker_class=worker_class)
    in_gate(project, run_id)
    first.process.send_signal(signal.SIGTERM)
    asked = time.monotonic()
    project.open_gate(run_id)  # the step finishes within the grace period
    assert first.wait(TIMEOUT) == 0, first.output()
    assert time.monotonic() - asked < 15, "the worker took longer than a kill delay to exit"
    row = project.snapshot(run_id)
    assert row["status"] == "running" and row["next_step"] == "after", first.output()
    assert not row["lease_owner"], "released: the next worker need not wait for it to expire"
    (attempt,) = row["attempts"]
    assert (attempt["end"], attempt["detail"]) == ("interrupted", "SIGTERM")

    second = project.worker("w2", burst=True, worker_class=worker_class)
    assert second.wait(TIMEOUT) == 0, second.output()
    row = project.snapshot(run_id)
    assert row["status"] == "completed", second.output()
    assert project.step_counts(run_id) == {"before": 1, "gate": 1, "after": 1}
    assert [a["end"] for a in row["attempts"]] == ["interrupted", "completed"]


def test_drain_runs_stops_cleanly_on_sigterm_and_starts_no_further_run(project):
    stale = []
    for name in ("drain-a", "drain-b"):  # two runs whose worker died in their gate step
        run_id = project.run_id(name)
        child = project.start("execute_run", "worker-gate", "--run-id", run_id)
        try:
            in_gate(project, run_id)
        finally:
            child.kill()
            child.wait(TIMEOUT)
        stale.append(run_id)

    drain = project.start("drain_runs")
    try:
        first = wait_until(
            lambda: next((r for r in stale if project.step_counts(r)["gate"] == 2), None),
            TIMEOUT,
            "drain_runs to resume one run",
        )
        drain.send_signal(signal.SIGTERM)
        for run_id in stale:
            project.open_gate(run_id)
        out, err = drain.communicate(timeout=TIMEOUT)
    finally:
        if drain.poll() is None:
            drain.kill()
    assert drain.returncode == 143, (out, err)
    assert f"run {first}: interrupted: " in out
    assert err.strip().splitlines() == [
        "interrupted by SIGTERM: drain_runs stopped after 1 run(s), each left resumable; "
        "run drain_runs again for the rest"
    ], err
    (other,) = [r for r in stale if r != first]
    assert project.step_counts(other)["gate"] == 1, "no further run was started"
    row = project.snapshot(first)
    assert (row["status"], row["next_step"], row["lease_owner"]) == ("running", "after", None)
    untouched = project.snapshot(other)  # still its dead worker's: stale, as before
    assert untouched["status"] == "running" and untouched["next_step"] == "gate"
    assert project.drain() and {project.snapshot(r)["status"] for r in stale} == {"completed"}
