"""How soon a dead host's runs resume elsewhere, with sweeping workers and no restart.

For each background (rq with ``warlock_ai.worker.Worker``, the tasks framework with
``manage.py warlock_db_worker``) and each kind of death, a fresh PostgreSQL database
(pgserver, or ``$WARLOCK_TEST_PG_URL``) and one rescuer worker that runs for the whole
measurement. Then ``--trials`` times: two workers of the doomed host each take a run of
``worker-gate`` (``tests/workers/flows_app``) into its gate step (while the rescuer holds a
run of its own, which ends before the kill); both are SIGKILLed (parent and work horse); the
gates open. Measured per run: seconds from the kill until the resumed run
is back in its gate step on the rescuer.

- ``same host``: the doomed workers run on this host; a sweep sees their pids gone.
- ``other host``: they run in a UTS namespace named ``host-a`` (root: ``unshare``), so only
  their runs' leases lapsing tells; expect ``LEASE_SECONDS`` plus up to 1.2 sweeps.

Run: ``.venv/bin/python bench/recovery.py [--trials 10] [--sweep 5] [--lease 10]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import services  # noqa: E402
from tests.workers.harness import Project, wait_until  # noqa: E402
from tests.workers.tasks_harness import TasksProject  # noqa: E402

WORKER_CLASS = "warlock_ai.worker.Worker"
DOOMED = 2


def starters(project: Project, background: str):  # type: ignore[no-untyped-def]
    if background == "rq":
        return (
            lambda name, host: project.worker(name, worker_class=WORKER_CLASS, host=host),
            lambda name: project.worker(name, worker_class=WORKER_CLASS),
        )
    tasks = project
    assert isinstance(tasks, TasksProject)
    return (
        lambda name, host: tasks.task_worker(name, command="warlock_db_worker", host=host),
        lambda name: tasks.task_worker(name, command="warlock_db_worker"),
    )


def measure(background: str, host: str | None, args: argparse.Namespace) -> list[float]:
    pg_url = services.postgres_url()
    name = f"warlock_bench_{uuid.uuid4().hex[:10]}"
    url = services.create_database(pg_url, name)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WARLOCK_DB_URL": url}
    db = {"vendor": "postgres", "url": url, "env": env}
    samples: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        kind = Project if background == "rq" else TasksProject
        project = kind(db, services.redis_url(), Path(tmp))
        project.env["WARLOCK_TEST_SWEEP_SECONDS"] = str(args.sweep)
        project.env["WARLOCK_TEST_LEASE_SECONDS"] = str(args.lease)
        try:
            project.migrate()
            start_doomed, start_rescuer = starters(project, background)
            rescuer = start_rescuer("rescuer")
            for trial in range(args.trials):
                # The rescuer holds a run of its own while the doomed workers take theirs,
                # and is idle again before the kill.
                blocker = project.run_id(f"t{trial}-blocker")
                project.enqueue_execute("worker-gate", [blocker])
                wait_until(lambda b=blocker: project.step_counts(b)["gate"] == 1, 60, "its gate")
                run_ids = [project.run_id(f"t{trial}-{n}") for n in range(DOOMED)]
                project.enqueue_execute("worker-gate", run_ids)
                doomed = [start_doomed(f"doomed-{trial}-{n}", host) for n in range(DOOMED)]
                for run_id in run_ids:
                    wait_until(lambda r=run_id: project.step_counts(r)["gate"] == 1, 60, "gate")
                project.open_gate(blocker)
                wait_until(
                    lambda b=blocker: project.snapshot(b)["status"] == "completed", 60, "blocker"
                )
                for worker in doomed:
                    worker.kill()
                killed = time.monotonic()
                for run_id in run_ids:
                    project.open_gate(run_id)
                back: dict[str, float] = {}

                def resumed(
                    run_ids: list[str] = run_ids, back: dict[str, float] = back, t0: float = killed
                ) -> bool:
                    for run_id in run_ids:
                        if run_id not in back and project.step_counts(run_id)["gate"] >= 2:
                            back[run_id] = time.monotonic() - t0
                    return len(back) == len(run_ids)

                wait_until(resumed, args.lease + 4 * args.sweep + 60, "resumed", every=0.02)
                samples += back.values()
                wait_until(lambda: project.statuses().get("running", 0) == 0, 60, "completed")
                print(
                    f"  {background}, {host or 'same host'}, trial {trial + 1}: "
                    + ", ".join(f"{s:.2f} s" for s in back.values()),
                    flush=True,
                )
            rescuer.stop()
        finally:
            project.cleanup()
            services.drop_database(pg_url, name)
    return samples


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--sweep", type=float, default=5.0, help="SWEEP_SECONDS")
    parser.add_argument("--lease", type=float, default=10.0, help="LEASE_SECONDS")
    parser.add_argument("--backgrounds", default="rq,tasks")
    parser.add_argument("--hosts", default="same,other")
    args = parser.parse_args()
    if "other" in args.hosts and os.geteuid() != 0:
        raise SystemExit("the other-host case makes a UTS namespace: run as root, or --hosts same")
    rows = []
    for background in args.backgrounds.split(","):
        for where in args.hosts.split(","):
            host = None if where == "same" else "host-a"
            samples = measure(background, host, args)
            rows.append((background, where, samples))
    print(
        f"\nSWEEP_SECONDS {args.sweep:g}, LEASE_SECONDS {args.lease:g}, {DOOMED} runs killed per "
        f"trial, {args.trials} trials; seconds from SIGKILL to the run resumed on the rescuer"
    )
    print("| background | doomed host | runs | p50 | p99 | max | bound |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for background, where, samples in rows:
        bound = args.sweep * 1.2 + (args.lease if where == "other" else 0)
        print(
            f"| {background} | {where} | {len(samples)} | {statistics.median(samples):.2f} "
            f"| {percentile(samples, 99):.2f} | {max(samples):.2f} | {bound:.1f} |"
        )


if __name__ == "__main__":
    main()
