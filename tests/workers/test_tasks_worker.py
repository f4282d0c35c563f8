"""Runs, resumes and turns on Django's tasks framework: real ``manage.py db_worker``
processes (django-tasks-db) on a fresh PostgreSQL database, killed with SIGKILL.

The tasks framework has no retries and no notion of a dead worker (a killed ``db_worker``
leaves its task RUNNING for ever): warlock_ai's deliveries (``warlock_ai.task_queue``) and
leases make every run complete and nothing but the step in flight run twice.
"""

from __future__ import annotations

import json
import random
import time
from typing import Any

import pytest

from tests.django.project import describe, stored_turns, turn_calls
from tests.workers.harness import wait_until
from tests.workers.tasks_harness import TasksProject

pytestmark = [
    pytest.mark.crash,
    pytest.mark.services,
    pytest.mark.parametrize("fresh_project_db", ["postgres"], indirect=True),
]

TIMEOUT = 60
STEPS, COUNTER = "turn-steps", "turn-counter"
SOAK_STEPS = ("s1", "s2", "s3", "s4", "s5")


@pytest.fixture
def project(tasks_project: TasksProject) -> TasksProject:
    return tasks_project


def test_runs_enqueued_as_tasks_run_once_each(project: TasksProject):
    run_ids = [project.run_id(f"r{n}") for n in range(3)]
    keys = project.enqueue_execute("worker-soak", run_ids, input={"n": 1})
    assert keys == [f"warlock-run-{run_id}" for run_id in run_ids]
    # The command, and a second enqueue of a waiting run: the same delivery, no second task.
    queued = project.manage("execute_run", "worker-soak", "--run-id", run_ids[0], "--enqueue")
    assert queued.returncode == 0, describe(queued)
    assert queued.stdout.strip() == f"run {run_ids[0]}: job {keys[0]} waiting on {project.queue}"
    tasks = project.task_results()
    assert [t["args_kwargs"] for t in tasks] == [{"args": [key], "kwargs": {}} for key in keys]

    worker = project.task_worker("batch", batch=True)
    assert worker.wait() == 0, worker.output()

    assert project.statuses() == {"completed": 3}
    for run_id in run_ids:
        assert project.step_counts(run_id) == dict.fromkeys(SOAK_STEPS, 1)
    assert [t["status"] for t in project.task_results()] == ["SUCCESSFUL"] * 3
    delivery = project.deliveries()[keys[0]]
    assert (delivery["state"], delivery["attempts"], delivery["owner"]) == ("finished", 1, "")
    assert delivery["outcome"] == {"run_id": run_ids[0], "status": "completed", "outcome": "ran"}
    # Enqueued again once completed: refused, as with rq (resume it instead).
    again = project.manage("execute_run", "worker-soak", "--run-id", run_ids[0], "--enqueue")
    assert again.returncode != 0 and "already exists" in again.stderr, describe(again)


def test_concurrent_enqueues_of_one_run_make_one_delivery(project: TasksProject):
    """Three processes enqueue the same five runs at once: five deliveries, five tasks."""
    run_ids = [project.run_id(f"c{n}") for n in range(5)]
    children = [project.start("shell", "-c", project.enqueue_code("worker-soak", run_ids))]
    children += [project.start("shell", "-c", project.enqueue_code("worker-soak", run_ids))]
    children += [project.start("shell", "-c", project.enqueue_code("worker-soak", run_ids))]
    for child in children:
        out, err = child.communicate(timeout=TIMEOUT)
        assert child.returncode == 0, err
        assert json.loads(out.strip().splitlines()[-1]) == [f"warlock-run-{r}" for r in run_ids]
    assert sorted(project.deliveries()) == sorted(f"warlock-run-{r}" for r in run_ids)
    assert len(project.task_results()) == 5
    assert project.task_worker("batch", batch=True).wait() == 0
    assert project.statuses() == {"completed": 5}
    assert all(project.step_counts(r) == dict.fromkeys(SOAK_STEPS, 1) for r in run_ids)


def test_two_tasks_for_one_delivery_run_it_once(project: TasksProject):
    """A second task carrying the same key (an older copy, a duplicate push) runs nothing:
    the delivery names its task."""
    run_id = project.run_id("dup")
    [key] = project.enqueue_execute("worker-soak", [run_id])
    code = (
        "import json\nfrom warlock_ai.task_queue import deliver_task\n"
        f"r = deliver_task.using(queue_name={project.queue!r}).enqueue({key!r})\n"
        "print(json.dumps(str(r.id)))\n"
    )
    extra = project.shell(code)
    workers = [project.task_worker("w1", batch=True), project.task_worker("w2", batch=True)]
    assert [worker.wait() for worker in workers] == [0, 0]

    assert project.step_counts(run_id) == dict.fromkeys(SOAK_STEPS, 1)
    results = {str(t["id"]): t for t in project.task_results()}
    assert {t["status"] for t in results.values()} == {"SUCCESSFUL"}
    delivery = project.deliveries()[key]
    assert delivery["result_id"] != extra and delivery["attempts"] == 1
    assert results[delivery["result_id"]]["return_value"]["outcome"] == "ran"
    assert results[extra]["return_value"]["outcome"].startswith(
        ("skipped: the delivery's task is", "skipped: running in", "nothing to run: its delivery")
    )


def kill_at_the_gate(project: TasksProject, run_id: str) -> None:
    project.enqueue_execute("worker-gate", [run_id])
    worker = project.task_worker("doomed")
    wait_until(lambda: project.step_counts(run_id)["gate"] == 1, TIMEOUT, "the gate step")
    assert worker.kill()
    assert project.snapshot(run_id)["status"] == "running"
    assert [t["status"] for t in project.task_results()] == ["RUNNING"]  # for ever, by itself
    assert project.deliveries()[f"warlock-run-{run_id}"]["state"] == "running"


def test_a_db_worker_killed_mid_step_is_recovered_by_drain(project: TasksProject):
    run_id = project.run_id("killed")
    kill_at_the_gate(project, run_id)
    project.open_gate(run_id)

    [dead_task] = project.task_results()
    outcomes = project.drain("--enqueue")
    # The delivery was put back first (a new task), then the stale run's resume found it.
    assert outcomes == [
        {"run_id": run_id, "outcome": f"enqueued as job warlock-run-{run_id}", "ok": True}
    ]
    delivery = project.deliveries()[f"warlock-run-{run_id}"]
    assert (delivery["state"], delivery["owner"]) == ("waiting", "")
    assert delivery["result_id"] not in ("", str(dead_task["id"]))
    worker = project.task_worker("after-boot", batch=True)
    assert worker.wait() == 0, worker.output()

    assert project.snapshot(run_id)["status"] == "completed"
    assert project.step_counts(run_id) == {"before": 1, "gate": 2, "after": 1}
    # The dead worker's task is marked failed; the one pushed again succeeded.
    assert [(str(t["id"]), t["status"]) for t in project.task_results()] == [
        (str(dead_task["id"]), "FAILED"),
        (delivery["result_id"], "SUCCESSFUL"),
    ]
    delivery = project.deliveries()[f"warlock-run-{run_id}"]
    assert (delivery["state"], delivery["attempts"]) == ("finished", 2)
    assert delivery["outcome"]["outcome"] == "resumed"
    assert project.drain("--enqueue") == []  # nothing stale, nothing abandoned


def test_a_task_killed_before_its_first_snapshot_is_put_back(project: TasksProject):
    """A delivery taken by a worker that died before the run stored anything: only the
    delivery knows the run; ``drain_runs --enqueue`` pushes it again."""
    run_id = project.run_id("early")
    [key] = project.enqueue_execute("worker-soak", [run_id])
    dead = project.start("shell", "-c", "pass")  # a real process, gone: the dead owner
    dead.communicate(timeout=TIMEOUT)
    code = (
        "import json, socket\nfrom django.utils import timezone\n"
        "from warlock_ai.models import Delivery\n"
        f"n = Delivery.objects.filter(key={key!r}).update(state='running', attempts=1, "
        f"owner=socket.gethostname() + ':{dead.pid}:0000abcd', started_at=timezone.now(), "
        "seen_at=timezone.now())\nprint(json.dumps(n))\n"
    )
    assert project.shell(code) == 1
    assert project.snapshot(run_id) is None

    outcomes = project.drain("--enqueue")
    assert outcomes == []  # no stale run: nothing was stored
    assert project.deliveries()[key]["state"] == "waiting"
    assert len(project.task_results()) == 2
    worker = project.task_worker("after", batch=True)
    assert worker.wait() == 0, worker.output()
    assert project.snapshot(run_id)["status"] == "completed"
    assert project.step_counts(run_id) == dict.fromkeys(SOAK_STEPS, 1)


def test_sigterm_stops_the_run_and_its_delivery_is_pushed_again(project: TasksProject):
    project.env["WARLOCK_TEST_SHUTDOWN_GRACE"] = "0.5"
    run_id = project.run_id("termed")
    project.enqueue_execute("worker-gate", [run_id])
    worker = project.task_worker("termed")
    wait_until(lambda: project.step_counts(run_id)["gate"] == 1, TIMEOUT, "the gate step")
    worker.terminate()
    assert worker.wait(timeout=TIMEOUT) == 0, worker.output()  # it stops after the task

    row = project.snapshot(run_id)
    assert (row["status"], row["next_step"]) == ("running", "gate")
    delivery = project.deliveries()[f"warlock-run-{run_id}"]
    assert (delivery["state"], delivery["attempts"]) == ("waiting", 1)
    assert "SIGTERM" in delivery["outcome"]["error"], delivery["outcome"]
    assert [t["status"] for t in project.task_results()] == ["FAILED", "READY"]

    project.open_gate(run_id)
    assert project.task_worker("next", batch=True).wait() == 0
    assert project.snapshot(run_id)["status"] == "completed"
    assert project.step_counts(run_id) == {"before": 1, "gate": 2, "after": 1}


def test_cancel_run_stops_a_run_on_a_db_worker(project: TasksProject):
    """Cancel is warlock_ai's, whichever worker runs the run: the step polling ``ctx.cancel``
    sees it within a heartbeat; the run ends cancelled, the delivery finished (a cancelled
    run is not a failed task)."""
    project.env["WARLOCK_TEST_LEASE_SECONDS"] = "0.6"
    run_id = project.run_id("cancel")
    [key] = project.enqueue_execute("worker-cancellable", [run_id])
    worker = project.task_worker("w")
    wait_until(lambda: "poll" in project.step_counts(run_id), TIMEOUT, "the poll step")
    asked = project.manage("cancel_run", run_id, "--reason", "wrong feed")
    assert asked.returncode == 0, describe(asked)
    wait_until(lambda: project.deliveries()[key]["state"] == "finished", TIMEOUT, "settled")
    worker.stop()
    row = project.snapshot(run_id)
    assert (row["status"], row["error"]["reason"]) == ("cancelled", "wrong feed")
    assert project.step_counts(run_id) == {"before": 1, "poll": 1, "poll-noticed": 1}
    outcome = project.deliveries()[key]["outcome"]
    assert (outcome["status"], outcome["outcome"]) == ("cancelled", "ran"), outcome
    assert [t["status"] for t in project.task_results()] == ["SUCCESSFUL"]


def enqueue_turns(project: TasksProject, *turns: tuple[Any, ...]) -> list[str]:
    code = (
        "import json\nfrom warlock_ai import background\n"
        f"turns = {turns!r}\n"
        "ids = [background.enqueue_turn(*turn[:3], **(turn[3] if len(turn) > 3 else {})).id"
        " for turn in turns]\n"
        "print(json.dumps(ids))\n"
    )
    return project.shell(code)


def test_turns_on_tasks_one_delivery_per_turn(project: TasksProject):
    session = project.run_id("chat")
    first, again, second = enqueue_turns(
        project,
        (COUNTER, session, {"text": "one", "n": 1}),
        (COUNTER, session, {"n": 1, "text": "one"}),  # the same input: the same delivery
        (COUNTER, session, "two"),
    )
    assert first == again != second and first.startswith("warlock-turn-")
    assert project.task_worker("w", batch=True).wait() == 0
    rows = stored_turns(project.db, COUNTER, session)
    assert [row["turn_index"] for row in rows] == [0, 1]
    assert [row["turn_key"] for row in rows] == [first, second]
    # Enqueued again once it ran: the finished delivery is that turn; nothing runs twice.
    assert enqueue_turns(project, (COUNTER, session, {"text": "one", "n": 1})) == [first]
    assert project.task_worker("w2", batch=True).wait() == 0
    assert len(stored_turns(project.db, COUNTER, session)) == 2
    assert len(project.task_results()) == 2


def test_a_db_worker_killed_mid_turn_finishes_the_turn_once(project: TasksProject):
    session = project.run_id("turn")
    enqueue_turns(project, (STEPS, session, "first"))
    assert project.task_worker("first", batch=True).wait() == 0
    run_id = f"{session}.unversioned.1"
    enqueue_turns(project, (STEPS, session, {"hold": 1}))
    worker = project.task_worker("doomed")
    wait_until(lambda: (project.gates / f"held-{run_id}").exists(), TIMEOUT, "iteration 1")
    assert worker.kill()

    [turn_key] = [
        k for k, d in project.deliveries().items() if d["arguments"].get("input") == {"hold": 1}
    ]
    outcomes = project.drain("--enqueue")  # the turn's delivery pushed again, its run resumed
    assert [(o["run_id"], o["turn_index"]) for o in outcomes] == [(run_id, 1)], outcomes
    assert project.deliveries()[turn_key]["state"] == "waiting"
    assert project.task_worker("after", batch=True).wait() == 0
    rows = stored_turns(project.db, STEPS, session)
    assert [r["turn_index"] for r in rows] == [0, 1]
    assert rows[1]["state"] == {"steps": 6, "last_input": {"hold": 1}}
    assert turn_calls(project.gates, run_id) == [0, 1, 1, 2]  # only iteration 1 ran twice
    assert project.snapshot(run_id) is None
    assert project.deliveries()[turn_key]["state"] == "finished"
    assert project.drain("--enqueue") == []


@pytest.mark.slow
def test_soak_db_workers_killed_lose_nothing(project: TasksProject, capsys):
    """60 runs of 5 steps on 2 db_workers, one SIGKILLed every 0.3-1.2 s and replaced, then
    the boot recovery: every run completes; a step runs again only in a worker killed in it.

    A worker killed after db_worker marked its task RUNNING but before the task took its
    delivery leaves nothing that names a process: that task counts as lost once it has run
    for LEASE_SECONDS, so the soak's lease is 5 s (300 s would outlast the soak)."""
    runs, deadline = 60, 150
    project.env["WARLOCK_TEST_STEP_SLEEP"] = "0.2"
    project.env["WARLOCK_TEST_LEASE_SECONDS"] = "5"
    run_ids = [project.run_id(f"soak-{n:02d}") for n in range(runs)]
    project.enqueue_execute("worker-soak", run_ids, input={"soak": True})
    rng, started, killed = random.Random(), time.monotonic(), set()
    workers = [project.task_worker(f"w{i}-g0") for i in range(2)]
    generation = 0
    while project.statuses()["completed"] < runs and time.monotonic() - started < deadline / 2:
        time.sleep(rng.uniform(0.3, 1.2))
        index = rng.randrange(2)
        killed.add(workers[index].pid)
        workers[index].kill()
        generation += 1
        workers[index] = project.task_worker(f"w{index}-g{generation}")
        project.boot_recovery()

    def all_completed() -> bool:
        if project.statuses()["completed"] == runs:
            return True
        project.boot_recovery()  # what a worker's boot, or a scheduled drain, runs
        return False

    try:
        wait_until(all_completed, deadline, "every soak run completed", every=1.0)
    except AssertionError as error:
        raise AssertionError(f"{error}\n{project.unfinished_report(run_ids)}") from None
    for worker in workers:
        worker.stop()

    assert project.statuses() == {"completed": runs}
    assert generation > 0
    pids: dict[tuple[str, str], list[int]] = {}
    for row in project.side_effects():
        pids.setdefault((row["run_id"], row["step"]), []).append(row["pid"])
    assert set(pids) == {(run_id, step) for run_id in run_ids for step in SOAK_STEPS}
    for key, ran_in in pids.items():
        assert set(ran_in[:-1]) <= killed, (key, ran_in)  # again only after a kill in it
    states = {d["state"] for d in project.deliveries().values()}
    assert states == {"finished"}, json.dumps(project.deliveries(), default=str)[:2000]
    reruns = sum(len(ran_in) - 1 for ran_in in pids.values())
    with capsys.disabled():
        print(
            f"\ntasks soak: {runs} runs x {len(SOAK_STEPS)} steps on 2 db_workers, "
            f"{generation} kills, {reruns} step executions interrupted and rerun, "
            f"{sum(map(len, pids.values()))} step executions, "
            f"{time.monotonic() - started:.1f} s wall"
        )
