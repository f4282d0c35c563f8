"""A supervisor killed mid-iteration in a real ``manage.py execute_run`` process, resumed by
``manage.py resume_run``: no model call whose result was snapshotted is made again, and the
run's usage counts every call once.

``worker-supervisor`` (tests/workers/flows_app/flows.py) dispatches research, then write,
then both at once, then ends; every model call writes a ``SideEffect`` row first, and
iteration 2's research call waits at the run's gate, where the test kills the process.
"""

from __future__ import annotations

import signal
import subprocess

import pytest

from tests.workers.harness import REPO_ROOT, Project, wait_until

pytestmark = [
    pytest.mark.crash,
    pytest.mark.services,
    pytest.mark.parametrize("fresh_project_db", ["sqlite", "postgres"], indirect=True),
]

TIMEOUT = 60
# The usage every model call of worker-supervisor reports (tests/workers/flows_app/flows.py).
PER_CALL_TOTAL = 16


@pytest.mark.parametrize("recovery", ["resume_run", "drain_runs"])
def test_supervisor_killed_mid_iteration_never_pays_twice(project: Project, recovery: str):
    run_id = project.run_id("sv-crash")
    child = subprocess.Popen(
        project.manage_args(
            "execute_run", "worker-supervisor", "--input", '"tides"', "--run-id", run_id
        ),
        cwd=REPO_ROOT,
        env=project.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_until(lambda: project.step_counts(run_id)["research:2"] == 1, TIMEOUT, "iteration 2")
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(TIMEOUT)
    row = project.snapshot(run_id)
    assert (row["kind"], row["status"], row["iteration"]) == ("supervisor", "running", 1)
    before = project.step_counts(run_id)
    assert before["research:0"] == before["write:1"] == before["research:2"] == 1

    project.open_gate(run_id)
    if recovery == "resume_run":
        resumed = project.manage("resume_run", run_id)
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        assert "iterations settled: 2; next: iteration 2" in resumed.stdout
        assert f"run {run_id}: completed" in resumed.stdout
    else:
        assert project.drain() == [{"run_id": run_id, "outcome": "completed", "ok": True}]

    calls = project.step_counts(run_id)
    # Iterations 0 and 1 were snapshotted: their model calls are not made again.
    assert calls["research:0"] == 1 and calls["write:1"] == 1
    # Iteration 2 was in flight when the process died: it runs again, once.
    assert calls["research:2"] == 2 and calls["write:2"] in (1, 2)
    row = project.snapshot(run_id)
    assert (row["status"], row["iteration"]) == ("completed", 3)
    assert row["state"] == {"notes": "three facts", "draft": "a paragraph"}
    # Usage counts each snapshotted call once: 4 calls (1 + 1 + 2; the END iteration calls none).
    assert row["usage"]["total"] == 4 * PER_CALL_TOTAL
    assert sum(it["usage"]["total"] for it in row["steps"]) == row["usage"]["total"]
