"""The flows the rq worker tests and ``bench/rq_throughput.py`` run on real workers.

- ``worker-soak``: 5 steps, each records a ``SideEffect`` row then sleeps a random moment
  (up to ``$WARLOCK_TEST_STEP_SLEEP`` seconds), so a SIGKILL lands inside steps.
- ``worker-gate``: ``before``; ``gate``, which records a row, then waits until the file
  ``$WARLOCK_TEST_GATE_DIR/<run_id>`` exists (a test opens the gate when it is ready); ``after``.
- ``worker-bench``: 10 trivial steps (each sets one key of the state), nothing recorded.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path
from typing import Any

import warlock_ai as ai

from .models import SideEffect

GATE_TIMEOUT = 120.0  # seconds a gate waits before failing the step (a test went wrong)


def record(ctx: Any, step: str) -> None:
    SideEffect.objects.create(run_id=ctx.run_id, step=step, pid=os.getpid())


def soak_step(name: str) -> ai.Step:
    def run(ctx: Any) -> None:
        record(ctx, name)
        time.sleep(random.uniform(0, float(os.environ.get("WARLOCK_TEST_STEP_SLEEP", "0.05"))))
        ctx.state[name] = os.getpid()

    return ai.step(name, run)


def gate(ctx: Any) -> None:
    record(ctx, "gate")
    path = Path(os.environ["WARLOCK_TEST_GATE_DIR"]) / ctx.run_id
    deadline = time.monotonic() + GATE_TIMEOUT
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"the gate {path} was never opened")
        time.sleep(0.01)


def before(ctx: Any) -> None:
    record(ctx, "before")


def after(ctx: Any) -> None:
    record(ctx, "after")


def bench_step(i: int) -> ai.Step:
    key = f"k{i}"

    def run(ctx: Any) -> None:
        ctx.state[key] = i

    return ai.step(f"s{i}", run)


SOAK_STEPS = ("s1", "s2", "s3", "s4", "s5")

worker_soak = ai.workflow(name="worker-soak", steps=[soak_step(n) for n in SOAK_STEPS])
worker_gate = ai.workflow(
    name="worker-gate",
    steps=[ai.step("before", before), ai.step("gate", gate), ai.step("after", after)],
)
worker_bench = ai.workflow(name="worker-bench", steps=[bench_step(i) for i in range(10)])
