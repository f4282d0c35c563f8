"""The orchestrators of the turn command and job tests: counter-style callbacks, no network.

- ``turn-counter`` (``iterate=False``): one dispatch per turn; the state counts the turns
  and keeps every input in order (``inputs``), so a test reads from the checkpoint rows that
  every input landed exactly once.
- ``turn-steps`` (``iterate=True``): three iterations of ``step`` per turn, each adding one
  to ``steps``; a turn killed mid-way is a ``running`` snapshot that resume finishes.

Every intent call appends ``<run_id> <iteration>`` to ``$WARLOCK_TEST_TURN_DIR/calls.log``
(one ``write`` of a short line on a file opened for appending: whole lines, even from several
processes), so a test counts calls across processes. An input ``{"hold": N}`` makes the call
of iteration N hold (``turn-counter`` has only iteration 0): it creates ``held-<run_id>`` in
that directory, then waits until ``release-<run_id>`` exists or ``ctx.cancel`` is set (at
most ``HOLD_TIMEOUT``); only the first time: a call that finds ``held-<run_id>`` goes on at
once, so a resumed or retried turn does not hold again. ``{"fail": true}`` fails the turn.

A file ``hold-after-append-<session>`` there holds ``turn-counter``'s turns of that session
just after their row is appended (``hold_after_append``).

``$WARLOCK_TEST_TURN_EXTRA=1`` adds an intent to ``turn-counter`` (a changed definition: its
sessions drift); ``$WARLOCK_TEST_TURN_LOCK_TIMEOUT`` sets both lock timeouts (default 30 s).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import warlock_ai as ai
from warlock_ai import END

HOLD_TIMEOUT = 120.0


def turn_dir() -> Path | None:
    value = os.environ.get("WARLOCK_TEST_TURN_DIR")
    return Path(value) if value else None


def note_call(ctx: Any) -> None:
    where = turn_dir()
    if where is None:
        return
    fd = os.open(where / "calls.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{ctx.run_id} {ctx.iteration}\n".encode())
    finally:
        os.close(fd)


def hold_if_asked(ctx: Any) -> None:
    where = turn_dir()
    asked = isinstance(ctx.input, dict) and "hold" in ctx.input
    if where is None or not asked:
        return
    if ctx.input["hold"] != ctx.iteration:
        return
    held = where / f"held-{ctx.run_id}"
    if held.exists():
        return
    held.touch()
    release = where / f"release-{ctx.run_id}"
    deadline = time.monotonic() + HOLD_TIMEOUT
    while not release.exists() and not ctx.cancel.wait(0.02):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{release} was never created")


def count(ctx: Any) -> dict[str, Any]:
    note_call(ctx)
    hold_if_asked(ctx)
    if isinstance(ctx.input, dict) and ctx.input.get("fail"):
        raise ValueError("the input asked this turn to fail")
    return {
        "count": ctx.state.get("count", 0) + 1,
        "inputs": [*ctx.state.get("inputs", []), ctx.input],
    }


def step(ctx: Any) -> dict[str, Any]:
    note_call(ctx)
    hold_if_asked(ctx)
    return {"steps": ctx.state.get("steps", 0) + 1, "last_input": ctx.input}


def hold_after_append(event: dict[str, Any]) -> None:
    """While ``hold-after-append-<session>`` exists in the turn directory, a turn whose row
    was just appended creates ``appended-<session>`` and waits (a worker killed here has
    stored its turn but not yet noted it on its job)."""
    where = turn_dir()
    if where is None:
        return
    hold = where / f"hold-after-append-{event['session_id']}"
    if not hold.exists():
        return
    (where / f"appended-{event['session_id']}").touch()
    deadline = time.monotonic() + HOLD_TIMEOUT
    while hold.exists() and time.monotonic() < deadline:
        time.sleep(0.02)


def steps_route(ctx: Any) -> Any:
    return "step" if ctx.iteration < 3 else END


LOCK_TIMEOUT = float(os.environ.get("WARLOCK_TEST_TURN_LOCK_TIMEOUT", "30"))

counter_intents: dict[str, Any] = {
    "count": ai.intent(count, description="Count the turn and keep its input", next=lambda c: END)
}
if os.environ.get("WARLOCK_TEST_TURN_EXTRA") == "1":
    counter_intents["extra"] = ai.intent(lambda ctx: {}, description="A later addition")

turn_counter = ai.orchestrator(
    name="turn-counter",
    intents=counter_intents,
    route=lambda ctx: "count",
    lock_timeout=LOCK_TIMEOUT,
    on={"orchestrator.checkpoint.persisted": hold_after_append},
)
turn_steps = ai.orchestrator(
    name="turn-steps",
    intents={"step": ai.intent(step, description="One step of the turn")},
    route=steps_route,
    iterate=True,
    lock_timeout=LOCK_TIMEOUT,
)
