"""Per-step cost of the engine and of each snapshot store.

A 10-step workflow of trivial steps (each sets one key in the state) is executed many times;
the figure reported is wall time per step, median of several rounds, with the cost of
calling the same ten plain functions subtracted. Run: ``make bench`` or
``.venv/bin/python bench/step_overhead.py [--runs N] [--rounds R] [--markdown]``.
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


def store_factories() -> dict[str, Callable[[], object | None]]:
    """The stores measured: name -> factory (``None`` means no store at all)."""
    return {"no store": lambda: None, "memory": ai.snapshot.memory}


def measure(runs: int, rounds: int) -> list[dict[str, object]]:
    floor = statistics.median(baseline_per_step(runs) for _ in range(rounds))
    rows: list[dict[str, object]] = []
    for label, factory in store_factories().items():
        for mode, steps, timer in (
            ("sync", make_steps, time_sync),
            ("async", make_async_steps, time_async),
        ):
            samples = []
            for _ in range(rounds):
                wf = ai.workflow(name="bench", steps=steps(), snapshot_store=factory())
                samples.append(timer(wf, runs))
            per_step = statistics.median(samples)
            rows.append(
                {
                    "store": label,
                    "mode": mode,
                    "us_per_step": (per_step - floor) * 1e6,
                    "writes_per_run": STEPS + 1 if factory() is not None else 0,
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000, help="runs per round (default 2000)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds; the median is kept")
    args = parser.parse_args()
    print(render(measure(args.runs, args.rounds), args.runs, args.rounds))


if __name__ == "__main__":
    main()
