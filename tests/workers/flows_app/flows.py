"""The flows the rq worker tests and ``bench/rq_throughput.py`` run on real workers.

- ``worker-soak``: 5 steps, each records a ``SideEffect`` row then sleeps a random moment
  (up to ``$WARLOCK_TEST_STEP_SLEEP`` seconds), so a SIGKILL lands inside steps.
- ``worker-gate``: ``before``; ``gate``, which records a row, then waits until the file
  ``$WARLOCK_TEST_GATE_DIR/<run_id>`` exists (a test opens the gate when it is ready); ``after``.
- ``worker-bench``: 10 trivial steps (each sets one key of the state), nothing recorded.
- ``worker-cancellable``: ``before``; ``poll``, which records a row, then polls ``ctx.cancel``
  and, once it is set, records ``poll-noticed`` and stops unfinished; ``after``.
- ``worker-billed``: 4 steps, each a paid model call: a line appended to the ledger file
  ``$WARLOCK_TEST_LEDGER`` (the call's id, run, step, host and pid; a file, so a host whose
  network is cut bills too), then a sleep of up to ``$WARLOCK_TEST_STEP_SLEEP`` seconds;
  the step's result in the state is its call's id (the call that settled).
"""

from __future__ import annotations

import json
import os
import random
import socket
import time
import uuid
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


def poll_cancel(ctx: Any) -> None:
    record(ctx, "poll")
    deadline = time.monotonic() + GATE_TIMEOUT
    while not ctx.cancel.wait(0.01):
        if time.monotonic() > deadline:
            raise TimeoutError("ctx.cancel was never set")
    record(ctx, "poll-noticed")
    raise ai.WorkflowCancelledError(ctx.cancel.reason_text)


def billed_step(name: str) -> ai.Step:
    def run(ctx: Any) -> None:
        call = uuid.uuid4().hex
        line = {"call": call, "run": ctx.run_id, "step": name, "host": socket.gethostname()}
        line.update(pid=os.getpid(), at=time.time())
        fd = os.open(os.environ["WARLOCK_TEST_LEDGER"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            os.write(fd, (json.dumps(line) + "\n").encode())  # one write: lines never interleave
        finally:
            os.close(fd)
        time.sleep(random.uniform(0, float(os.environ.get("WARLOCK_TEST_STEP_SLEEP", "0.05"))))
        ctx.state[name] = call

    return ai.step(name, run)


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
BILLED_STEPS = ("b1", "b2", "b3", "b4")
worker_billed = ai.workflow(name="worker-billed", steps=[billed_step(n) for n in BILLED_STEPS])
worker_bench = ai.workflow(name="worker-bench", steps=[bench_step(i) for i in range(10)])
worker_cancellable = ai.workflow(
    name="worker-cancellable",
    steps=[ai.step("before", before), ai.step("poll", poll_cancel), ai.step("after", after)],
)


# --- worker-supervisor: a supervisor whose agents run on counted fake models -----------------

PER_CALL = {"input": 12, "output": 4}  # the usage every model call reports


class CountedModel:
    """A ``FakeModel`` that writes a ``SideEffect`` row before answering (what a paid model
    call would cost), so a test counts the calls across processes. The prompt carries the run
    id and the iteration; iteration 2's ``research`` call waits at the run's gate."""

    provider = "fake"

    def __init__(self, name: str, reply: dict[str, Any]) -> None:
        from warlock_ai.testing import FakeModel

        self.name = name
        self.inner = FakeModel([{"content": json.dumps(reply), "usage": PER_CALL}], name=name)

    def complete(self, messages: Any, **options: Any) -> Any:
        run_id, iteration = messages[-1].content.split("|")[:2]
        SideEffect.objects.create(run_id=run_id, step=f"{self.name}:{iteration}", pid=os.getpid())
        if self.name == "research" and iteration == "2":
            wait_at_gate(run_id)
        return self.inner.complete(messages, **options)


def wait_at_gate(run_id: str) -> None:
    path = Path(os.environ["WARLOCK_TEST_GATE_DIR"]) / run_id
    deadline = time.monotonic() + GATE_TIMEOUT
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"the gate {path} was never opened")
        time.sleep(0.01)


def counted_agent(name: str, reply: dict[str, Any]) -> Any:
    return ai.intent(
        ai.agent(name=name, model=CountedModel(name, reply), description=f"{name} things"),
        input=lambda ctx: f"{ctx.run_id}|{ctx.iteration}|{name} the topic {ctx.input}",
        output={"type": "object"},
    )


def supervisor_route(ctx: Any) -> Any:
    return {0: "research", 1: "write", 2: ["research", "write"]}.get(ctx.iteration, ai.END)


worker_supervisor = ai.supervisor(
    name="worker-supervisor",
    intents={
        "research": counted_agent("research", {"notes": "three facts"}),
        "write": counted_agent("write", {"draft": "a paragraph"}),
    },
    route=supervisor_route,
)
