"""Throughput of background runs: rq workers draining runs of a 10-step trivial flow.

For each worker count, a fresh PostgreSQL database (pgserver, or ``$WARLOCK_TEST_PG_URL``)
is migrated, ``--runs`` runs of ``worker-bench`` (10 steps, each sets one key of the state;
``tests/workers/flows_app``) are enqueued with ``warlock_ai.jobs.enqueue_execute`` on a queue
of their own (Redis from ``tests/services.py``), then that many ``manage.py rqworker --burst``
processes drain the queue. Reported: steps per second over the drain (first run started to
last run finished, read from the snapshots; worker boot excluded) and over the whole wall
time (boot included), worker time per step, and the overhead per step against the same runs
executed inline in one process on the same database (the ORM store on PostgreSQL).

Run: ``.venv/bin/python bench/rq_throughput.py [--runs 1000] [--workers 1,2]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import services  # noqa: E402
from tests.workers.harness import worker_redis_url  # noqa: E402

FLOW = "worker-bench"
STEPS = 10

ENQUEUE = """
import json, time
from warlock_ai import jobs
start = time.perf_counter()
for n in range({runs}):
    jobs.enqueue_execute({flow!r}, {{"n": n}}, run_id=f"{prefix}-{{n:05d}}")
print(json.dumps(time.perf_counter() - start))
"""

INLINE = """
import json, time
from warlock_ai import operations
start = time.perf_counter()
for n in range({runs}):
    result = operations.execute_flow({flow!r}, {{"n": n}}, run_id=f"inline-{{n:05d}}")
    assert result.error is None, result.error
print(json.dumps(time.perf_counter() - start))
"""

DRAIN_WINDOW = """
import json
from django.db.models import Max, Min
from warlock_ai.models import Snapshot
runs = Snapshot.objects.filter(run_id__startswith={prefix!r})
window = runs.aggregate(first=Min("started_at"), last=Max("finished_at"))
print(json.dumps({{
    "completed": runs.filter(status="completed").count(),
    "seconds": (window["last"] - window["first"]).total_seconds(),
}}))
"""


def manage(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"manage.py {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
    return result.stdout


def shell(env: dict[str, str], code: str) -> object:
    return json.loads(manage(env, "shell", "-v", "0", "-c", code).strip().splitlines()[-1])


def measure(
    workers: int,
    runs: int,
    pg_url: str,
    redis_url: str,
    worker_class: str | None,
    conn_max_age: int | None = None,
) -> dict[str, float]:
    name = f"warlock_bench_{uuid.uuid4().hex[:10]}"
    queue = f"{name}-q"
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DJANGO_SETTINGS_MODULE": "tests.workers.settings",
        "WARLOCK_DB_URL": services.create_database(pg_url, name),
        "WARLOCK_TEST_RQ_QUEUE": queue,
        "WARLOCK_TEST_RQ_URL": redis_url,
    }
    if conn_max_age is not None:
        env["WARLOCK_TEST_CONN_MAX_AGE"] = str(conn_max_age)
    try:
        manage(env, "migrate", "--no-input", "-v", "0")
        with cpu_time() as shell_boot:
            shell(env, "print(0)")
        with cpu_time() as inline_cpu:
            inline = shell(env, INLINE.format(runs=runs, flow=FLOW))
        command = [sys.executable, "manage.py", "rqworker", queue, "--burst", "-v", "0"]
        if worker_class:
            command += ["--worker-class", worker_class]
        with cpu_time() as worker_boot:  # on the empty queue: boot, sweep, exit
            if subprocess.run(command, cwd=ROOT, env=env, check=False).returncode != 0:
                raise SystemExit("an rqworker failed")
        enqueue = shell(env, ENQUEUE.format(runs=runs, flow=FLOW, prefix=name))
        start = time.perf_counter()
        with cpu_time() as worker_cpu:
            processes = [subprocess.Popen(command, cwd=ROOT, env=env) for _ in range(workers)]
            if any(p.wait() != 0 for p in processes):
                raise SystemExit("an rqworker failed")
        wall = time.perf_counter() - start
        window = shell(env, DRAIN_WINDOW.format(prefix=name))
        if window["completed"] != runs:
            raise SystemExit(f"only {window['completed']} of {runs} runs completed")
    finally:
        services.drop_database(pg_url, name)
        _forget_queue(redis_url, queue)
    steps = runs * STEPS
    drain = window["seconds"]
    return {
        "workers": workers,
        "steps_per_s": steps / drain,
        "wall_steps_per_s": steps / wall,
        "worker_us_per_step": drain * workers / steps * 1e6,
        "inline_us_per_step": inline / steps * 1e6,
        "enqueue_us_per_run": enqueue / runs * 1e6,
        # CPU time (user + system) of the workers less their boots, per run, and of the
        # inline process less a shell's boot: what the queue costs whatever the core count.
        "worker_cpu_ms_per_run": (worker_cpu[0] - workers * worker_boot[0]) / runs * 1e3,
        "inline_cpu_ms_per_run": (inline_cpu[0] - shell_boot[0]) / runs * 1e3,
    }


@contextmanager
def cpu_time() -> Iterator[list[float]]:
    """Seconds of CPU (user + system) used by the children that ended inside the block."""
    spent = [0.0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    yield spent
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    spent[0] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _forget_queue(redis_url: str, queue: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"*{queue.removesuffix('-q')}*", count=1000))
    if keys:
        client.delete(*keys)
    client.srem("rq:queues", f"rq:queue:{queue}")
    client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--workers", default="1,2", help="worker counts, comma-separated")
    parser.add_argument(
        "--worker-class",
        default=None,
        help="rqworker --worker-class (default rq's Worker, one forked work horse per job; "
        "rq.worker.SimpleWorker runs jobs in the worker process)",
    )
    parser.add_argument(
        "--conn-max-age",
        type=int,
        default=None,
        help="the database's CONN_MAX_AGE (default Django's 0; a warm worker keeps its "
        "connection only with one)",
    )
    args = parser.parse_args()
    pg_url = services.postgres_url()
    redis_url = worker_redis_url(services.redis_url())
    print(
        f"{args.runs} runs x {STEPS} steps, ORM store on PostgreSQL, rq queue on {redis_url}, "
        f"worker class {args.worker_class or 'rq.worker.Worker'}, "
        f"CONN_MAX_AGE {args.conn_max_age or 0}"
    )
    print(
        "| rq workers | steps/s (drain) | steps/s (wall, boot included) "
        "| worker time per step (µs) | inline per step (µs) | rq overhead per step (µs) "
        "| worker CPU per run (ms) | inline CPU per run (ms) | queue CPU per run (ms) |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for workers in (int(n) for n in args.workers.split(",")):
        m = measure(workers, args.runs, pg_url, redis_url, args.worker_class, args.conn_max_age)
        overhead = m["worker_us_per_step"] - m["inline_us_per_step"]
        print(
            f"| {workers} | {m['steps_per_s']:,.0f} | {m['wall_steps_per_s']:,.0f} "
            f"| {m['worker_us_per_step']:,.0f} | {m['inline_us_per_step']:,.0f} "
            f"| {overhead:,.0f} | {m['worker_cpu_ms_per_run']:.1f} "
            f"| {m['inline_cpu_ms_per_run']:.1f} "
            f"| {m['worker_cpu_ms_per_run'] - m['inline_cpu_ms_per_run']:.1f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
