"""The floor and warlock_ai, as one worker of ``bench/peers/run.py`` (the project's interpreter).

``python bench/peers/ours_worker.py URL`` (URL: an empty PostgreSQL database; Django is
configured on it in-process and migrated). Contenders:

- ``floor``: per step, one raw psycopg upsert (autocommit) of the whole state document,
  ``{"rows": BIG, "counter": i}``, as one jsonb value: the table and statement of ``time_floor``
  in ``bench/step_overhead.py``. The 11 documents of a run are encoded before it is timed.
- ``warlock-sync`` / ``warlock-async``: ``execute`` / ``aexecute`` of an 11-step workflow on
  ``ai.snapshot.db()``: step ``s0`` sets ``ctx.state["rows"] = BIG``, steps ``s1``..``s10`` set
  ``ctx.state["counter"] = i``.

A run's measured time starts when step 1 (the first measured step) begins and ends when the
run returns; the write that first stored BIG (step 0) is before it. Samples are seconds per
measured step, one per run. Requests and answers: ``common.serve``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable
from functools import cache
from itertools import count
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))

from common import STEPS, big_value, serve, size_label

import warlock_ai as ai

#: perf_counter() when the first measured step of the current run began.
started = [0.0]
run_numbers = count()

FLOOR_TABLE = (
    "CREATE TABLE IF NOT EXISTS warlock_bench_floor (run_id TEXT PRIMARY KEY, "
    "payload JSONB NOT NULL, saved_at TIMESTAMPTZ NOT NULL DEFAULT now())"
)
FLOOR_UPSERT = (
    "INSERT INTO warlock_bench_floor (run_id, payload, saved_at) "
    "VALUES (%s, %s::jsonb, now()) ON CONFLICT (run_id) DO UPDATE "
    "SET payload = EXCLUDED.payload, saved_at = EXCLUDED.saved_at"
)


def setup_django(url: str) -> None:
    import django
    from django.conf import settings
    from django.core.management import call_command

    from tests.services import database_settings

    settings.configure(
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "warlock_ai"],
        DATABASES={"default": database_settings(url)},
        USE_TZ=True,
        DEBUG=False,
        WARLOCK_AI={"FLOW_MODULES": [], "SNAPSHOT_STORE": None},
    )
    django.setup()
    call_command("migrate", verbosity=0)


# --- warlock_ai -------------------------------------------------------------------------------


def step_bodies(size: int, asynchronous: bool) -> list[Callable[[Any], Any]]:
    def body(i: int) -> Callable[[Any], None]:
        def run(ctx: ai.WorkflowContext) -> None:
            if i == 0:
                ctx.state["rows"] = big_value(size)
                return
            if i == 1:
                started[0] = time.perf_counter()
            ctx.state["counter"] = i

        return run

    def async_body(i: int) -> Callable[[Any], Any]:
        sync = body(i)

        async def run(ctx: ai.WorkflowContext) -> None:
            sync(ctx)

        return run

    return [(async_body if asynchronous else body)(i) for i in range(STEPS + 1)]


@cache
def workflow(size: int, asynchronous: bool) -> ai.Workflow:
    bodies = step_bodies(size, asynchronous)
    return ai.workflow(
        name=f"peers-{size_label(size)}-{'async' if asynchronous else 'sync'}",
        steps=[ai.step(f"s{i}", fn) for i, fn in enumerate(bodies)],
        snapshot_store=ai.snapshot.db(),
    )


def checked(result: Any) -> None:
    if result.error is not None:
        raise result.error
    if result.report.state["counter"] != STEPS:
        raise AssertionError(f"the run ended with state {result.report.state['counter']!r}")


def warlock_sync(size: int, runs: int) -> list[float]:
    wf, samples = workflow(size, False), []
    for _ in range(runs):
        result = wf.execute({}, run_id=f"sync-{size}-{next(run_numbers)}")
        samples.append((time.perf_counter() - started[0]) / STEPS)
        checked(result)
    return samples


def warlock_async(size: int, runs: int) -> list[float]:
    wf = workflow(size, True)

    async def go() -> list[float]:
        samples = []
        for _ in range(runs):
            result = await wf.aexecute({}, run_id=f"async-{size}-{next(run_numbers)}")
            samples.append((time.perf_counter() - started[0]) / STEPS)
            checked(result)
        return samples

    return asyncio.run(go())


# --- the floor --------------------------------------------------------------------------------


@cache
def documents(size: int) -> tuple[str, ...]:
    """The state after each step, encoded: ``{"rows": BIG}``, then with counter 1..10."""
    rows = json.dumps(big_value(size))
    first = '{"rows": ' + rows + "}"
    return (first, *('{"rows": ' + rows + f', "counter": {i}}}' for i in range(1, STEPS + 1)))


class Floor:
    def __init__(self, url: str) -> None:
        import psycopg

        self.conn = psycopg.connect(url, autocommit=True)
        self.conn.execute(FLOOR_TABLE)

    def __call__(self, size: int, runs: int) -> list[float]:
        first, *measured = documents(size)
        samples = []
        for _ in range(runs):
            run_id = f"floor-{size}-{next(run_numbers)}"
            self.conn.execute(FLOOR_UPSERT, (run_id, first))
            start = time.perf_counter()
            for document in measured:
                self.conn.execute(FLOOR_UPSERT, (run_id, document))
            samples.append((time.perf_counter() - start) / STEPS)
        return samples

    def settings(self) -> dict[str, str]:
        names = ("server_version", "synchronous_commit", "default_toast_compression")
        return {n: self.conn.execute(f"SHOW {n}").fetchone()[0] for n in names}


def main() -> None:
    url = sys.argv[1]
    setup_django(url)
    floor = Floor(url)
    contenders: dict[str, Callable[[int, int], list[float]]] = {
        "floor": floor,
        "warlock-sync": warlock_sync,
        "warlock-async": warlock_async,
    }
    from importlib.metadata import version

    hello = {"versions": {"Django": version("Django"), "psycopg": version("psycopg")}}
    serve(
        lambda contender, size, runs: contenders[contender](size, runs),
        {**hello, **floor.settings()},
    )


if __name__ == "__main__":
    main()
