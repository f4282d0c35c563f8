"""``cancel_run`` against a real ``execute_run`` process: a step polling ``ctx.cancel`` stops
within one heartbeat interval (LEASE_SECONDS 0.6 s, so a renewal every 0.2 s), and a run
whose worker was SIGKILLed is cancelled at once by the command itself."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.django.project import check, describe
from tests.workers.harness import REPO_ROOT, Project, wait_until

pytestmark = pytest.mark.services

LEASE = "0.6"
INTERVAL = 0.2
WAIT = 60.0


@contextmanager
def executing(project: Project, run_id: str) -> Iterator[subprocess.Popen[str]]:
    """``manage.py execute_run worker-cancellable`` in a child; SIGKILLed if still alive."""
    env = {**project.env, "WARLOCK_TEST_LEASE_SECONDS": LEASE}
    child = subprocess.Popen(
        project.manage_args("execute_run", "worker-cancellable", "--run-id", run_id),
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield child
    finally:
        if child.poll() is None:
            os.kill(child.pid, signal.SIGKILL)
        child.communicate(timeout=10)


def cancel_run(project: Project, run_id: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**project.env, "WARLOCK_TEST_LEASE_SECONDS": LEASE}
    return subprocess.run(
        project.manage_args("cancel_run", run_id, *args),
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=False,
    )


def in_poll(project: Project, run_id: str) -> bool:
    return "poll" in project.step_counts(run_id)


@pytest.mark.parametrize("fresh_project_db", ["sqlite", "postgres"], indirect=True)
def test_cancel_run_stops_a_step_of_another_process_within_one_heartbeat(project):
    run_id = project.run_id("live")
    with executing(project, run_id) as child:
        wait_until(lambda: in_poll(project, run_id), WAIT, "the worker to enter poll")
        asked = cancel_run(project, run_id, "--reason", "wrong feed")
        asked_at = time.monotonic()
        out = check(asked).stdout
        assert f'cancel requested for run "{run_id}": its worker ' in out
        assert f"next checkpoint (ctx.cancel is set within {INTERVAL:g} s)" in out
        wait_until(
            lambda: "poll-noticed" in project.step_counts(run_id), WAIT, "ctx.cancel to be seen"
        )
        # The command's own start-up is behind asked_at: this bounds the heartbeat's delay.
        assert time.monotonic() - asked_at < INTERVAL + 2.0
        output, _ = child.communicate(timeout=WAIT)
        assert child.returncode == 1, output  # the run did not complete
    assert "Traceback" not in output, output
    row = project.snapshot(run_id)
    assert (row["status"], row["next_step"]) == ("cancelled", "poll")
    assert row["error"]["code"] == "WORKFLOW_CANCELLED"
    assert row["error"]["reason"] == "wrong feed"
    assert row["lease_owner"] is None and row["cancel_requested_at"] is None
    assert project.step_counts(run_id) == {"before": 1, "poll": 1, "poll-noticed": 1}

    again = cancel_run(project, run_id)
    assert again.returncode == 1, describe(again)
    assert "cancelled, not running" in again.stderr


@pytest.mark.parametrize("fresh_project_db", ["sqlite", "postgres"], indirect=True)
def test_cancel_run_of_a_killed_worker_cancels_the_run_at_once(project):
    run_id = project.run_id("dead")
    with executing(project, run_id) as child:
        wait_until(lambda: in_poll(project, run_id), WAIT, "the worker to enter poll")
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
    before = project.snapshot(run_id)
    assert before["status"] == "running" and before["lease_owner"]  # still names the dead worker

    out = check(cancel_run(project, run_id, "--reason", "worker lost")).stdout
    assert out.strip() == f'run "{run_id}" cancelled (no live worker held it)'
    row = project.snapshot(run_id)
    assert (row["status"], row["next_step"]) == ("cancelled", "poll")
    assert row["error"]["reason"] == "worker lost"
    assert row["lease_owner"] is None
    assert project.step_counts(run_id) == {"before": 1, "poll": 1}

    again = cancel_run(project, run_id)
    assert again.returncode == 1 and "cancelled, not running" in again.stderr, describe(again)
