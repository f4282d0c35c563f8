"""Per-iteration cost of the supervisor engine and of each snapshot store.

A supervisor whose route dispatches one trivial callback intent per iteration (it returns one
key to merge) for 10 iterations, then ends, is executed many times; the figure is wall time
per iteration (median of several rounds), each iteration including its snapshot write. With
``--databases`` the Django ORM store is measured on SQLite and PostgreSQL 16 (pgserver, or
``$WARLOCK_TEST_PG_URL``). Run: ``.venv/bin/python bench/supervisor_overhead.py
[--runs N] [--rounds R] [--databases sqlite,postgres]``.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import warlock_ai as ai
from bench.step_overhead import setup_django, store_factories

ITERATIONS = 10


def work(ctx: ai.SupervisorContext) -> dict[str, int]:
    return {f"k{ctx.iteration}": ctx.iteration}


def route(ctx: ai.SupervisorContext) -> str:
    return "work" if ctx.iteration < ITERATIONS else ai.END


def time_runs(store: object, runs: int) -> float:
    sup = ai.supervisor(
        name="bench-sv",
        intents={"work": work},
        route=route,
        max_iterations=ITERATIONS + 1,
        snapshot_store=store,
    )
    start = time.perf_counter()
    for n in range(runs):
        result = sup.execute({"n": n}, run_id=f"bench-sv-{n}")
        if result.error is not None:
            raise result.error
    return (time.perf_counter() - start) / (runs * (ITERATIONS + 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--databases", default="")
    args = parser.parse_args()
    databases = [d for d in args.databases.split(",") if d]
    if databases:
        setup_django(databases, tempfile.mkdtemp(prefix="warlock-bench-"))
    print(
        f"python {platform.python_version()}, {args.runs} runs x {ITERATIONS} iterations "
        f"(+ the END iteration), median of {args.rounds} rounds\n"
    )
    print("| store | us per iteration | snapshot writes per run |")
    print("|---|---:|---:|")
    for label, factory in store_factories(databases).items():
        per = statistics.median(time_runs(factory(), args.runs) for _ in range(args.rounds))
        writes = 0 if label == "no store" else ITERATIONS + 3
        print(f"| {label} | {per * 1e6:.0f} | {writes} |")


if __name__ == "__main__":
    main()
