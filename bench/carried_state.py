"""Per-step cost with a large value carried in the state, on each snapshot store.

The run of ``bench/peers`` (a step 0 puts a list of row-like dicts of SIZE in the state, then
10 measured steps each change one small key) on the stores that benchmark does not cover:
memory, Redis (``$WARLOCK_TEST_REDIS_URL`` or 127.0.0.1:6379, db 0, keys under a fresh
prefix, removed at the end) and the ORM store on SQLite (a file in a temp dir). The figure is
the median over runs of (end of the run - start of step 1's body) / 10.

Run: ``.venv/bin/python bench/carried_state.py [--stores memory,redis,sqlite]
[--sizes 1KB,1MiB,10MiB] [--runs 20]``.
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
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench" / "peers"))

from common import SIZES, big_value  # noqa: E402

import warlock_ai as ai  # noqa: E402

STEPS = 10


def per_step(store: Any, size: int, runs: int) -> float:
    value = big_value(size)
    marks: list[float] = []

    def load(ctx: ai.WorkflowContext) -> None:
        ctx.state["rows"] = value

    def small(i: int) -> Any:
        def run(ctx: ai.WorkflowContext) -> None:
            if i == 1:
                marks.append(time.perf_counter())
            ctx.state["counter"] = i

        return run

    steps = [ai.step("s0", load)] + [ai.step(f"s{i}", small(i)) for i in range(1, STEPS + 1)]
    wf = ai.workflow(name=f"carried-{size}", steps=steps, snapshot_store=store)
    samples = []
    for n in range(runs + 1):
        marks.clear()
        result = wf.execute({}, run_id=f"carried-{size}-{n}")
        end = time.perf_counter()
        if result.error is not None:
            raise result.error
        if n:  # the first run warms up
            samples.append((end - marks[0]) / STEPS)
    return statistics.median(samples)


def setup_sqlite(workdir: str) -> None:
    import django
    from django.conf import settings
    from django.core.management import call_command

    settings.configure(
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "warlock_ai"],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": f"{workdir}/c.db"}},
        USE_TZ=True,
        WARLOCK_AI={"FLOW_MODULES": [], "SNAPSHOT_STORE": None},
    )
    django.setup()
    call_command("migrate", verbosity=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stores", default="memory,redis,sqlite")
    parser.add_argument("--sizes", default="1KB,1MiB,10MiB")
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    stores = args.stores.split(",")
    sizes = [(label, SIZES[label]) for label in args.sizes.split(",")]
    workdir = tempfile.mkdtemp()
    if "sqlite" in stores:
        setup_sqlite(workdir)
    prefix = f"bench-carried-{uuid.uuid4().hex[:8]}:"
    url = os.environ.get("WARLOCK_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    factories = {
        "memory": ai.snapshot.memory,
        "redis": lambda: ai.snapshot.redis(url=url, prefix=prefix),
        "sqlite": ai.snapshot.db,
    }
    print("| store | " + " | ".join(label for label, _ in sizes) + " |")
    print("|---|" + "---:|" * len(sizes))
    try:
        for name in stores:
            figures = []
            for _, size in sizes:
                runs = max(3, args.runs // 4) if size > 5_000_000 else args.runs
                figures.append(f"{per_step(factories[name](), size, runs) * 1000:.2f}")
            print(f"| {name} | " + " | ".join(figures) + " ms |")
    finally:
        if "redis" in stores:
            import redis

            client = redis.Redis.from_url(url)
            for key in client.scan_iter(match=f"{prefix}*"):
                client.delete(key)


if __name__ == "__main__":
    main()
