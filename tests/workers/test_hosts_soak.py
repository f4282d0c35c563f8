"""Three machines (``tests.workers.hosts``: network namespaces, needs root): ``db`` runs
PostgreSQL and Redis, ``a`` and ``b`` run two warlock_ai rq workers each (``a`` forking
``Worker``s, ``b`` in-process ``SimpleWorker``s), sweeping every second with 4 s leases.

500 runs of ``worker-billed`` (4 steps, each a paid model call written to a ledger file).
While they run, every process of ``a`` is SIGKILLed (the machine dies; it boots again a
lease later); then ``b``'s network is cut for 10 s and mended; then, for 10 s again, only
the answers to ``b`` are lost (its writes land, their answers come late).
Nothing restarts ``b``, and nobody runs ``drain_runs``: the sweeps recover everything.

- every run completes, each step settled with one call;
- no call is billed for a step after the call it settled with: no finished step runs
  twice, and no model call of a settled step is billed twice;
- a step was billed twice only by a worker that died inside it (``a``) or that was cut off
  inside it (``b``);
- the cut-off workers' writes are refused when their network comes back: they stop, and
  none of the calls they billed while cut off settled;
- a worker whose write was answered after its lease lapsed stops before its next step.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.workers.harness import Project, needs_root, wait_until
from tests.workers.hosts import Hosts

pytestmark = [pytest.mark.slow, pytest.mark.crash, pytest.mark.services]

RUNS = 500
STEPS = ("b1", "b2", "b3", "b4")  # worker-billed's (tests/workers/flows_app/flows.py)
# Seconds. A lease of 4 s: a live worker on a loaded two-core machine renews well within it.
LEASE, SWEEP = 4.0, 1.0
STEP_SLEEP = "0.06"  # seconds, the most a step sleeps after its call (uniform)
# Runs completed when machine a dies, when b is cut off, when b's answers are lost.
KILL_AT, CUT_AT, HALF_CUT_AT = 100, 200, 330
CUT = 2.5 * LEASE  # seconds each cut lasts
DEADLINE = 400  # seconds for the whole soak (it takes about a minute on two cores)
FORKING, SIMPLE = "warlock_ai.worker.Worker", "warlock_ai.worker.SimpleWorker"


@pytest.fixture
def hosts(tmp_path, subprocess_env) -> Iterator[tuple[Hosts, Project]]:
    needs_root()
    hosts = Hosts(tmp_path)
    project = None
    try:
        database = "soak"
        hosts.start(database)
        db = {"vendor": "postgres", "url": hosts.local_pg_url(database)}
        db["env"] = {**subprocess_env, "WARLOCK_DB_URL": db["url"]}
        project = Project(db, hosts.local_redis_url(), tmp_path)
        project.redis_url = hosts.local_redis_url()  # not the harness's database 13
        project.env.update(
            WARLOCK_TEST_RQ_URL=project.redis_url,
            WARLOCK_TEST_LEASE_SECONDS=str(LEASE),
            WARLOCK_TEST_SWEEP_SECONDS=str(SWEEP),
            WARLOCK_TEST_STEP_SLEEP=STEP_SLEEP,
            WARLOCK_TEST_LEDGER=str(tmp_path / "ledger.jsonl"),
            WARLOCK_TEST_CONN_MAX_AGE="60",  # SimpleWorker keeps its connection
        )
        project.migrate()
        yield hosts, project
    finally:
        if project is not None:
            for worker in project.workers:
                if worker.process.poll() is None:
                    worker.kill()
        hosts.close()


def test_a_dead_machine_and_a_cut_off_one_lose_nothing_and_bill_no_settled_step_twice(
    hosts, capsys
):
    hosts, project = hosts
    machine_a, machine_b = hosts.machines["a"], hosts.machines["b"]
    run_ids = [project.run_id(f"billed-{n:03d}") for n in range(RUNS)]
    ledger_path = project.tmp / "ledger.jsonl"
    project.enqueue_execute("worker-billed", run_ids)
    started = time.monotonic()

    def completed() -> int:
        return project.statuses()["completed"]

    def until(count: int, what: str) -> None:
        left = DEADLINE - (time.monotonic() - started)
        try:
            wait_until(lambda: completed() >= count, left, what, every=0.1)
        except AssertionError as error:
            raise AssertionError(f"{error}\n{project.unfinished_report(run_ids)[:6000]}") from None

    a = [project.worker(f"a{n}", worker_class=FORKING, machine=machine_a) for n in range(2)]
    b = [project.worker(f"b{n}", worker_class=SIMPLE, machine=machine_b) for n in range(2)]

    # Machine a dies: every process, work horses included, at once.
    until(KILL_AT, f"{KILL_AT} runs completed")
    killed_pids = {w.pid for w in a}
    for worker in a:
        killed_pids.update(worker.kill())
    time.sleep(LEASE)  # the schedule: a is down for a lease, then boots again
    a += [project.worker(f"a{n}-boot2", worker_class=FORKING, machine=machine_a) for n in (0, 1)]

    # Machine b is cut off from the database and Redis for longer than a lease; later, only
    # what they send it is lost, for as long. Each cut comes while a worker of b has just
    # billed a run's first step: that run has non-final writes to come, whatever the cut
    # meets first.
    cuts = []
    for count, answers_only in ((CUT_AT, False), (HALF_CUT_AT, True)):
        until(count, f"{count} runs completed")
        wait_until(lambda: b_just_started_a_run(ledger_path), 30, "a run started on b", every=0.002)
        hosts.cut("b", answers_only)
        cut_at = time.time()
        time.sleep(CUT)  # the schedule: the cut lasts this long
        cuts.append((cut_at, time.time()))
        hosts.mend("b", answers_only)

    until(RUNS, "every run completed")
    wall = time.monotonic() - started
    for worker in project.workers:
        worker.stop()

    # Every run completed, each step settled with one call.
    assert project.statuses() == {"completed": RUNS}
    settled = {}
    for run_id in run_ids:
        state = project.snapshot(run_id)["state"]
        assert set(state) == set(STEPS), (run_id, state)
        settled.update({(run_id, step): state[step] for step in STEPS})

    # The ledger: every call billed, in the order billed.
    calls: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    ledger = ledger_path.read_text().splitlines()
    for line in ledger:
        call = json.loads(line)
        calls[(call["run"], call["step"])].append(call)
    assert set(calls) == set(settled)
    by_id = {call["call"]: call for billed in calls.values() for call in billed}
    for key, billed in calls.items():
        assert settled[key] in by_id, f"{key} settled with a call never billed"
        # Nothing billed after the call the step settled with.
        assert billed[-1]["call"] == settled[key], (key, billed, settled[key])

    # A step billed twice: the earlier calls were made by a worker of a that was killed, or
    # by one of b around a cut (its step's write then refused).
    again = {key: billed[:-1] for key, billed in calls.items() if len(billed) > 1}
    for key, earlier in again.items():
        for call in earlier:
            killed = call["host"] == "host-a" and call["pid"] in killed_pids
            cut_off = call["host"] == "host-b" and any(
                start - 1 <= call["at"] < end for start, end in cuts
            )
            assert killed or cut_off, (key, earlier, cuts)
    by_a = [c for e in again.values() for c in e if c["host"] == "host-a"]
    by_b = [c for e in again.values() for c in e if c["host"] == "host-b"]
    # At most a step in flight per worker: 2 of a's at its death, 2 of b's at each cut (at
    # the second, a write of b whose transaction PostgreSQL ended for idling did not land).
    assert len(by_a) <= 2 and len(by_b) <= 4, again

    # b's writes were refused when it came back: its workers said so, and stopped those runs;
    # none of the calls b billed while cut off settled (their runs had been taken over).
    refused = [
        line
        for worker in b
        for line in worker.output().splitlines()
        if "this worker's lease is gone; the job stops" in line
    ]
    late = [line for line in refused if "was answered" in line]
    # A run of b in flight at each cut: refused by the store after the first (or stopped by
    # its late answer, if its write had gone out just before), stopped by its late answer
    # after the second.
    assert len(refused) >= 2 and late, refused
    (cut_at, mended_at), _ = cuts
    during = [c for c in by_id.values() if c["host"] == "host-b" and cut_at <= c["at"] < mended_at]
    assert not any(settled[(c["run"], c["step"])] == c["call"] for c in during), during

    with capsys.disabled():
        print(
            f"\nhosts soak: {RUNS} runs x {len(STEPS)} steps, a killed after {KILL_AT} "
            f"(back {LEASE:g} s later), b cut off for {CUT:g} s after {CUT_AT}, its answers "
            f"lost for {CUT:g} s after {HALF_CUT_AT}; {len(ledger)} calls billed for "
            f"{len(settled)} steps; billed again: {len(by_a)} (a's dead workers), {len(by_b)} "
            f"(b, cut off); b stopped {len(refused)} runs ({len(late)} for a late answer); "
            f"{wall:.1f} s wall"
        )


def b_just_started_a_run(ledger: Path) -> bool:
    """Whether machine b's last call (in the ledger's last lines) is the first step of a run,
    billed within the last 20 ms."""
    with ledger.open("rb") as file:
        file.seek(max(file.seek(0, 2) - 4096, 0))
        lines = file.read().decode(errors="replace").splitlines()[1:]
    for line in reversed(lines):
        call = json.loads(line)
        if call["host"] == "host-b":
            return call["step"] == STEPS[0] and time.time() - call["at"] < 0.02
    return False
