"""Per-step cost of the engine and of each snapshot store.

A 10-step workflow of trivial steps (each sets one key in the state) is executed many times;
the figure reported is wall time per step, median of several rounds, with the cost of
calling the same ten plain functions subtracted. With ``--databases`` the Django ORM store is
measured on SQLite and on PostgreSQL 16 (pgserver, or ``$WARLOCK_TEST_PG_URL``), next to the
floor: one raw psycopg upsert of the same snapshot JSON (the table and statement of the
original library's pg store, on a connection with psycopg's defaults, which prepare a
statement from its fifth execution on). Run: ``make bench`` or
``.venv/bin/python bench/step_overhead.py [--runs N] [--rounds R] [--databases sqlite,postgres]``.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import warlock_ai as ai

STEPS = 10


def make_steps() -> list[ai.Step]:
    def body(i: int) -> Callable[[ai.WorkflowContext], None]:
        key = f"k{i}"

        def run(ctx: ai.WorkflowContext) -> None:
            ctx.state[key] = i

        return run

    return [ai.step(f"s{i}", body(i)) for i in range(STEPS)]


def make_async_steps() -> list[ai.Step]:
    def body(i: int):
        key = f"k{i}"

        async def run(ctx: ai.WorkflowContext) -> None:
            ctx.state[key] = i

        return run

    return [ai.step(f"s{i}", body(i)) for i in range(STEPS)]


def baseline_per_step(runs: int) -> float:
    """Seconds per step of calling the step bodies directly (the floor of any engine)."""
    bodies = [s.run for s in make_steps()]

    class Ctx:
        state: dict

    ctx = Ctx()
    start = time.perf_counter()
    for _ in range(runs):
        ctx.state = {}
        for fn in bodies:
            fn(ctx)
    return (time.perf_counter() - start) / (runs * STEPS)


def time_sync(wf: ai.Workflow, runs: int) -> float:
    start = time.perf_counter()
    for n in range(runs):
        result = wf.execute({"n": n}, run_id=f"bench-{n}")
        if result.error is not None:
            raise result.error
    return (time.perf_counter() - start) / (runs * STEPS)


def time_async(wf: ai.Workflow, runs: int) -> float:
    async def go() -> float:
        start = time.perf_counter()
        for n in range(runs):
            result = await wf.aexecute({"n": n}, run_id=f"bench-{n}")
            if result.error is not None:
                raise result.error
        return (time.perf_counter() - start) / (runs * STEPS)

    return asyncio.run(go())


def store_factories(databases: list[str]) -> dict[str, Callable[[], object | None]]:
    """The stores measured: name -> factory (``None`` means no store at all)."""
    factories: dict[str, Callable[[], object | None]] = {
        "no store": lambda: None,
        "memory": ai.snapshot.memory,
    }
    for alias in databases:
        factories[f"ORM {alias}"] = lambda alias=alias: ai.snapshot.db(using=alias)
        if alias == "postgres":
            # saves not prepared (before issue 16); aexecute through Django's sync thread
            factories["ORM postgres, prepared=False"] = lambda: ai.snapshot.db(
                using="postgres", prepared=False
            )
            factories["ORM postgres, native_async=False"] = lambda: ai.snapshot.db(
                using="postgres", native_async=False
            )
    return factories


def setup_django(databases: list[str], workdir: str) -> dict[str, str]:
    """Configure Django with one database per alias and migrate them; returns PG URLs."""
    import django
    from django.conf import settings
    from django.core.management import call_command

    from tests.services import create_database, database_settings, postgres_url

    configured: dict[str, dict] = {}
    urls: dict[str, str] = {}
    for alias in databases:
        if alias == "sqlite":
            configured[alias] = database_settings(f"sqlite:///{workdir}/bench.sqlite3")
        elif alias == "postgres":
            name = f"bench_{int(time.time())}"
            urls[alias] = create_database(postgres_url(), name)
            configured[alias] = database_settings(urls[alias])
        else:
            raise SystemExit(f"unknown database {alias!r}; use sqlite and/or postgres")
    configured["default"] = configured[databases[0]]
    settings.configure(
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "warlock_ai"],
        DATABASES=configured,
        USE_TZ=True,
        DEBUG=False,
        WARLOCK_AI={"FLOW_MODULES": [], "SNAPSHOT_STORE": None},
    )
    django.setup()
    for alias in configured:
        call_command("migrate", database=alias, verbosity=0)
    return urls


def sample_snapshot(store_factory: Callable[[], object]) -> object:
    """A realistic snapshot: the one written after step 5 of the benchmark workflow."""
    captured: list[object] = []

    class Capture(type(ai.snapshot.memory())):
        def save(self, snapshot, *, claim=None):
            captured.append(snapshot)

    wf = ai.workflow(name="bench", steps=make_steps(), snapshot_store=Capture())
    wf.execute({"n": 0}, run_id="bench-sample")
    return captured[6]


def time_floor(pg_url: str, payload: str, writes: int) -> float:
    """Seconds per raw psycopg upsert of ``payload`` (autocommit, like a store write)."""
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS warlock_bench_floor (run_id TEXT PRIMARY KEY, "
            "payload JSONB NOT NULL, saved_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        sql = (
            "INSERT INTO warlock_bench_floor (run_id, payload, saved_at) "
            "VALUES (%s, %s::jsonb, now()) ON CONFLICT (run_id) DO UPDATE "
            "SET payload = EXCLUDED.payload, saved_at = EXCLUDED.saved_at"
        )
        for n in range(200):
            conn.execute(sql, (f"floor-{n % 50}", payload))
        start = time.perf_counter()
        for n in range(writes):
            conn.execute(sql, (f"floor-{n % 50}", payload))
        return (time.perf_counter() - start) / writes


def time_store_save(store: object, snapshot: object, writes: int) -> float:
    """Seconds per ``store.save`` of an engine-made snapshot (50 distinct run ids, upserted)."""
    import dataclasses

    snaps = [dataclasses.replace(snapshot, run_id=f"save-{n}") for n in range(50)]
    for snap, src in ((s, snapshot) for s in snaps):
        object.__setattr__(snap, "encoded", src.encoded)
    for n in range(200):
        store.save(snaps[n % 50])
    start = time.perf_counter()
    for n in range(writes):
        store.save(snaps[n % 50])
    return (time.perf_counter() - start) / writes


def measure(runs: int, rounds: int, databases: list[str]) -> list[dict[str, object]]:
    floor = statistics.median(baseline_per_step(runs) for _ in range(rounds))
    rows: list[dict[str, object]] = []
    modes = (("sync", make_steps, time_sync), ("async", make_async_steps, time_async))
    for label, factory in store_factories(databases).items():
        # sync and async rounds alternate, so that both see the same machine
        samples: dict[str, list[float]] = {mode: [] for mode, _, _ in modes}
        for _ in range(rounds):
            for mode, steps, timer in modes:
                wf = ai.workflow(name="bench", steps=steps(), snapshot_store=factory())
                samples[mode].append(timer(wf, runs))
        for mode, _, _ in modes:
            per_step = statistics.median(samples[mode])
            rows.append(
                {
                    "store": label,
                    "mode": mode,
                    "us_per_step": (per_step - floor) * 1e6,
                    "writes_per_run": STEPS + 1 if label != "no store" else 0,
                }
            )
    return rows


def render(rows: list[dict[str, object]], runs: int, rounds: int) -> str:
    lines = [
        f"python {platform.python_version()} on {platform.machine()}, "
        f"{runs} runs x {STEPS} steps, median of {rounds} rounds",
        "",
        "| store | mode | engine overhead per step (us) | snapshot writes per run |",
        "|---|---|---:|---:|",
    ]
    for row in rows:
        cells = (row["store"], row["mode"], f"{row['us_per_step']:.1f}", row["writes_per_run"])
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def measure_writes(pg_url: str | None, databases: list[str], writes: int, rounds: int) -> str:
    """Per-write cost of each ORM store against the raw psycopg floor."""
    snapshot = sample_snapshot(ai.snapshot.memory)
    payload = snapshot.to_json()
    lines = [
        "",
        f"one snapshot write ({len(payload)} bytes of JSON), {writes} writes, median of {rounds}",
        "",
        "| write | us per write | ratio to floor |",
        "|---|---:|---:|",
    ]
    floor = None
    if pg_url:
        floor = statistics.median(time_floor(pg_url, payload, writes) for _ in range(rounds))
        lines.append(f"| floor: raw psycopg upsert (PostgreSQL) | {floor * 1e6:.0f} | 1.00 |")
    stores = {f"ORM store save ({alias})": ai.snapshot.db(using=alias) for alias in databases}
    if "postgres" in databases:
        stores["ORM store save (postgres), prepared=False"] = ai.snapshot.db(
            using="postgres", prepared=False
        )
    for label, store in stores.items():
        cost = statistics.median(time_store_save(store, snapshot, writes) for _ in range(rounds))
        ratio = f"{cost / floor:.2f}" if floor and "postgres" in label else "-"
        lines.append(f"| {label} | {cost * 1e6:.0f} | {ratio} |")
    return "\n".join(lines)


def measure_steps_against_floor(pg_url: str, runs: int, rounds: int) -> str:
    """Per step, engine included, against the floor, in interleaved rounds (the floor of this
    machine moves by a third in minutes, so a ratio of figures taken apart does too): each
    round times the floor (one raw upsert of the same snapshot JSON per step), then
    ``execute`` and ``aexecute`` on the PostgreSQL ORM store."""
    payload = sample_snapshot(ai.snapshot.memory).to_json()
    timers = {
        "floor: raw psycopg upsert per step": lambda: time_floor(pg_url, payload, runs * STEPS),
        "ORM postgres, execute": lambda: time_sync(
            ai.workflow(
                name="bench", steps=make_steps(), snapshot_store=ai.snapshot.db("postgres")
            ),
            runs,
        ),
        "ORM postgres, aexecute": lambda: time_async(
            ai.workflow(
                name="bench", steps=make_async_steps(), snapshot_store=ai.snapshot.db("postgres")
            ),
            runs,
        ),
    }
    samples: dict[str, list[float]] = {label: [] for label in timers}
    for _ in range(rounds):
        for label, timer in timers.items():
            samples[label].append(timer())
    floor = statistics.median(next(iter(samples.values())))
    lines = [
        "",
        f"per step against the floor, {runs} runs x {STEPS} steps a round, {rounds} interleaved "
        "rounds (median, range)",
        "",
        "| per step | us | range | ratio to floor |",
        "|---|---:|---:|---:|",
    ]
    for label, found in samples.items():
        median = statistics.median(found)
        spread = f"{min(found) * 1e6:.0f}-{max(found) * 1e6:.0f}"
        lines.append(f"| {label} | {median * 1e6:.0f} | {spread} | {median / floor:.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000, help="runs per round (default 2000)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds; the median is kept")
    parser.add_argument(
        "--databases",
        default="",
        help="comma-separated: sqlite,postgres (measures the Django ORM store on each)",
    )
    parser.add_argument("--writes", type=int, default=2000, help="writes per round (default 2000)")
    args = parser.parse_args()
    databases = [d for d in args.databases.split(",") if d]
    urls: dict[str, str] = {}
    if databases:
        import tempfile

        urls = setup_django(databases, tempfile.mkdtemp(prefix="warlock-bench-"))
    print(render(measure(args.runs, args.rounds, databases), args.runs, args.rounds))
    if databases:
        print(measure_writes(urls.get("postgres"), databases, args.writes, args.rounds))
    if "postgres" in urls:
        print(measure_steps_against_floor(urls["postgres"], min(args.runs, 300), args.rounds))


if __name__ == "__main__":
    main()
