"""The support-chat demo: a multi-turn chat whose turn is killed mid-way, then resumed.

Run it from the repository root::

    .venv/bin/python -m example_project.chat_demo      # add --keep to keep the database

On a fresh SQLite database in a temporary directory, a customer chats with the
``support-chat`` orchestrator of ``example_project/support`` (one turn per message, through
the Python API, in this process): each turn prints its input, its route, what it changed in
the session's state and its turn index. Then one turn runs in another process
(``manage.py shell``) and is killed with SIGKILL in the middle, after two of its iterations
settled; the demo shows the interrupted turn (a ``running`` snapshot), resumes it from a third
process, proves from the ``ModelCall`` rows that the settled iterations did not run again,
shows that the memory is per customer, and prints the session's checkpoint rows.

It always uses the offline model, checks everything it claims and exits with status 1 if
anything is off, so it doubles as an end-to-end test.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

from example_project.demo import TIMEOUT, Demo, drive, expect, phase, say

CHAT = "support-chat"
SESSION = "ann:chat-1"
CUSTOMER = {"customer": "Ann Example", "email": "ann@example.com"}
PAUSE_FILE_VARIABLE = "SUPPORT_CHAT_PAUSE_FILE"  # example_project/support/chat.py reads it
LLM_VARIABLES = ("SUPPORT_LLM_", "OPENAI_", "SUPPORT_DEMO_MODEL_DELAY", PAUSE_FILE_VARIABLE)
POLL = 0.02
PROSE = ("reply", "summary", "billing_note")  # long texts left out of the state lines

# (message, the intents its turn runs in order, state the turn must leave)
TURNS = [
    (
        "Hi, I was charged twice for my May subscription, $12.00 each time.",
        ["intake", "triage", "billing", "resolver"],
        {"message_count": 1, "category": "billing", "refund": "approved", "refund_amount": 12.0},
    ),
    (
        "My order number is A-1042.",
        ["intake", "triage", "resolver"],
        {"message_count": 2, "order_number": "A-1042", "category": "billing"},
    ),
    (
        "Thanks! When will I see the money?",
        ["intake", "triage", "resolver"],
        {"message_count": 3, "category": "billing", "replies": 3},
    ),
]
CRASH_MESSAGE = "I also cannot log in, my account is locked!"
LAST_MESSAGE = "Great, that works. Thanks!"

CRASH_CODE = """\
import json
from pathlib import Path
from warlock_ai.registry import registry
chat = registry.get("orchestrator", "support-chat")
history = json.loads(Path("{history}").read_text())
result = chat.execute({message}, session_id="{session}", history=history)
print(f"turn {{result.turn_index}}: {{result.report.status}}")"""

RESUME_CODE = """\
from warlock_ai.registry import registry
chat = registry.get("orchestrator", "support-chat")
ran = []
on = {{"supervisor.iteration.starting": lambda event: ran.append(event["iteration"])}}
result = chat.resume("{session}", on=on)
print(f"turn {{result.turn_index}} of {{result.session_id}}: {{result.report.status}}; "
      f"iterations run by this process: {{ran}}")"""


class ChatDemo(Demo):
    """``Demo``'s manage.py plumbing, with the chat's turns, its crash and its rows."""

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        for env in (self.env, os.environ):  # the offline model, here and in the commands
            for key in [k for k in env if k.startswith(LLM_VARIABLES)]:
                del env[key]
        self.history: list[dict[str, str]] = []
        self.pause_file = workdir / "paused"
        self.history_file = workdir / "history.json"

    @staticmethod
    def orchestrator() -> Any:
        from warlock_ai.registry import registry

        return registry.get("orchestrator", CHAT)

    # --- a turn in this process ---------------------------------------------------------

    def turn(self, message: str, session: str = SESSION, **options: Any) -> Any:
        """One turn through the API; prints its input, route, state change and turn index."""
        seen: dict[str, Any] = {}
        on = {
            "orchestrator.history.windowed": lambda e: seen.update(window=e["message_count"]),
            "orchestrator.memory.recalled": lambda e: seen.update(recalled=e["count"]),
        }
        before = latest_state(session)
        history = self.history if session == SESSION else []
        result = self.orchestrator().execute(
            message, session_id=session, history=history, on=on, **options
        )
        expect(result.error is None, f"turn of {session} failed: {result.error}")
        expect(result.report.status == "awaiting-input", f"status {result.report.status}")
        show_turn(result, message, before, seen, len(history))
        if session == SESSION:
            self.history += [
                {"role": "user", "content": message},
                {"role": "assistant", "content": result.data["reply"]},
            ]
        return result

    # --- a turn in another process, killed ----------------------------------------------

    def crash_turn(self, message: str) -> tuple[int, str, int]:
        """Run a turn in ``manage.py shell``; SIGKILL it once its resolver says it started.
        Returns the killed pid, the turn's run id and the iteration it was in."""
        self.history_file.write_text(json.dumps(self.history), encoding="utf-8")
        code = CRASH_CODE.format(
            history=self.history_file, message=json.dumps(message), session=SESSION
        )
        self.env[PAUSE_FILE_VARIABLE] = str(self.pause_file)
        try:
            proc = self.start(["shell", "--no-imports", "-c", code])
        finally:
            del self.env[PAUSE_FILE_VARIABLE]
        killed = False
        try:
            deadline = time.monotonic() + TIMEOUT
            while not self.pause_file.exists():
                expect(proc.poll() is None, f"the turn ended (exit {proc.returncode}) too soon")
                expect(time.monotonic() < deadline, f"waited {TIMEOUT} s for the resolver")
                time.sleep(POLL)
            pid, run_id, iteration = self.pause_file.read_text(encoding="utf-8").split()
            expect(int(pid) == proc.pid, f"the pause file names pid {pid}, not {proc.pid}")
            os.kill(proc.pid, signal.SIGKILL)
            killed = True
        finally:
            if proc.poll() is None:
                proc.kill()
            out, errors = proc.communicate(timeout=TIMEOUT)
        for line in (out + errors).splitlines():
            print(f"     {line}")
        expect(killed and proc.returncode == -signal.SIGKILL, f"exit {proc.returncode}")
        print(
            f"   simulating a crash: SIGKILL to pid {proc.pid} while its turn was in iteration "
            f"{iteration} ({run_id})"
        )
        return proc.pid, run_id, int(iteration)


# --- printing ----------------------------------------------------------------------------------


def latest_state(session: str) -> dict[str, Any]:
    from warlock_ai.models import Checkpoint

    row = Checkpoint.objects.for_session(CHAT, session).order_by("-turn_index").first()
    return dict(row.state) if row is not None else {}


def route_of(records: list[dict[str, Any]]) -> list[str]:
    return [key for record in records for key in record["result"]]


def brief(value: Any, width: int = 36) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def state_changes(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """``key old -> new`` for what changed (lists of messages as their length), without the
    prose (the reply is shown on its own line)."""
    changes = []
    for key, value in after.items():
        old = before.get(key)
        if key in PROSE or value == old:
            continue
        if key in ("messages", "recalled"):
            if len(old or []) != len(value):
                changes.append(f"{key} {len(old or [])} -> {len(value)}")
        elif old is None:
            changes.append(f"{key} {brief(value)}")
        else:
            changes.append(f"{key} {brief(old)} -> {brief(value)}")
    return changes


def show_turn(
    result: Any, message: str, before: dict[str, Any], seen: dict[str, Any], given: int
) -> None:
    from example_project.support.models import ModelCall

    records = result.report.snapshots
    hops = " -> ".join(" + ".join(record["result"]) for record in records)
    calls = ModelCall.objects.for_run(result.run_id).count()
    print(f"   turn {result.turn_index}  {result.session_id}  customer: {message!r}")
    print(f"       route:   {hops}  ({len(records)} iterations, {calls} model calls)")
    lines = textwrap.wrap("; ".join(state_changes(before, result.data)), 78)
    print(f"       state:   {lines[0] if lines else '(unchanged)'}")
    for line in lines[1:]:
        print(f"                {line}")
    print(
        f"       context: history {given} messages, {seen.get('window', 0)} given to the "
        f"agents; memory: {seen.get('recalled', 0)} notes recalled"
    )
    reply = result.data["reply"].split("\n\n")[1]
    print(f"       reply:   {brief(reply, 78)}")


def show_snapshot(run_id: str) -> Any:
    from warlock_ai.models import Snapshot

    row = Snapshot.objects.get(run_id=run_id)
    print(f"     run id:     {row.run_id}  (kind {row.kind}, {row.name})")
    print(f"     status:     {row.status}")
    print(f"     iterations: {len(row.steps)} settled")
    for record in row.steps:
        print(f"       #{record['iteration']}  {' + '.join(record['result'])}")
    state = row.state
    print(
        f"     state:      message_count {state['message_count']}, category "
        f"{state['category']}, priority {state['priority']}"
    )
    return row


def show_calls(run_id: str, crashed: int) -> list[Any]:
    from example_project.support.models import ModelCall

    rows = list(ModelCall.objects.for_run(run_id).order_by("id"))
    for call in rows:
        who = "killed process" if call.pid == crashed else "resuming process"
        print(
            f"       #{call.iteration}  {call.agent:<9} {call.status:<9} "
            f"{call.total_tokens:>4} tokens  pid {call.pid} ({who})"
        )
    return rows


def show_checkpoints(session: str) -> list[Any]:
    from warlock_ai.models import Checkpoint

    rows = list(Checkpoint.objects.for_session(CHAT, session).order_by("turn_index"))
    print(f"     {'turn':>4}  {'route':<9} {'saved at':<12} state")
    for row in rows:
        state = row.state
        summary = (
            f"message_count {state['message_count']}, issues {'+'.join(state['issues'])}, "
            f"refund {state.get('refund', '-')}, order {state.get('order_number', '-')}, "
            f"replies {state['replies']}"
        )
        saved = f"{row.saved_at:%H:%M:%S.%f}"[:12]
        print(f"     {row.turn_index:>4}  {brief(row.last_route, 9):<9} {saved:<12} {summary}")
    return rows


# --- the story ---------------------------------------------------------------------------------


def run(demo: ChatDemo) -> None:
    from example_project.support.models import ModelCall
    from warlock_ai import InterruptedTurnError
    from warlock_ai.models import Checkpoint, Snapshot

    print("warlock_ai demo: a support chat that survives a crash in the middle of a turn")
    print("===========================================================================")
    say(
        "The support-chat orchestrator (example_project/support/flows.py and chat.py) holds "
        "one customer chat per session; every customer message is a turn. A turn runs a short "
        "loop over the support agents: intake (counts the message, notes an order number), "
        "triage (the message's category), billing (once, for a billing issue) and resolver "
        "(the reply). The session's state accumulates turn after turn, one append-only "
        "checkpoint row per turn; with iterate=True each iteration of a turn is snapshotted, "
        "so a turn killed in the middle resumes where it stopped."
    )

    phase(1, "A fresh database")
    say(f"A new SQLite file in a temporary directory: {demo.db}")
    expect(demo.manage("migrate", "-v", "0").code == 0, "manage.py migrate failed")
    say("Tables created.")

    phase(2, "A chat, turn by turn")
    say(
        f'Ann writes to support. Each message is one execute() of the session "{SESSION}" '
        "(through the Python API, in this process), with the conversation so far as history. "
        "Every turn starts with intake (the initial agent); a route function picks the rest."
    )
    for index, (message, route, expected) in enumerate(TURNS):
        result = demo.turn(message, state=CUSTOMER if index == 0 else None)
        expect(result.turn_index == index, f"turn index {result.turn_index}, expected {index}")
        got = route_of(result.report.snapshots)
        expect(got == route, f"turn {index}: route {got}, expected {route}")
        for key, value in expected.items():
            expect(result.data.get(key) == value, f"turn {index}: {key}={result.data.get(key)!r}")
    rows = Checkpoint.objects.for_session(CHAT, SESSION)
    expect(rows.count() == len(TURNS), f"{rows.count()} checkpoint rows, expected {len(TURNS)}")

    phase(3, "A turn that crashes")
    crash_turn = len(TURNS)
    say(
        f"Ann's next message runs in another process. Its resolver waits (the demo set "
        f"{PAUSE_FILE_VARIABLE}) once intake and triage have settled; we kill the process "
        "with SIGKILL: no chance to clean up or save anything."
    )
    crashed, run_id, iteration = demo.crash_turn(CRASH_MESSAGE)
    expect(run_id == f"{SESSION}.unversioned.{crash_turn}", f"the turn's run id is {run_id}")
    expect(iteration == 2, f"killed in iteration {iteration}, expected 2")

    phase(4, "What the crash left behind")
    say("The interrupted turn is a snapshot of kind orchestrator, still running:")
    row = show_snapshot(run_id)
    expect(row.status == "running", f"the turn's snapshot is {row.status!r}")
    expect(route_of(row.steps) == ["intake", "triage"], f"settled: {route_of(row.steps)}")
    expect(row.state["category"] == "account", "triage's answer is not in the snapshot")
    latest = Checkpoint.objects.for_session(CHAT, SESSION).order_by("-turn_index").first()
    expect(latest.turn_index == crash_turn - 1, f"latest checkpoint: turn {latest.turn_index}")
    say(
        f"The session's latest checkpoint row is still turn {latest.turn_index}: a turn appends "
        "its row only once it has settled. The model calls of the turn so far:"
    )
    before = show_calls(run_id, crashed)
    expect(
        [(c.agent, c.status, c.pid) for c in before] == [("triage", "finished", crashed)],
        f"unexpected model calls after the crash: {before}",
    )
    say("A new message now is refused, with nothing run, until the turn is finished:")
    try:
        demo.orchestrator().execute("Hello?", session_id=SESSION)
    except InterruptedTurnError as exc:
        print(textwrap.indent(textwrap.fill(f"InterruptedTurnError: {exc.message}", 88), "     "))
    else:
        expect(False, "execute() ran a new turn over the interrupted one")

    phase(5, "Resume the turn")
    say("Later (after a restart, a redeploy), another process resumes the session:")
    outcome = demo.manage("shell", "--no-imports", "-c", RESUME_CODE.format(session=SESSION))
    expect(outcome.code == 0, f"the resume exited {outcome.code}")
    said = "awaiting-input; iterations run by this process: [2]"
    expect(
        any(said in line for line in outcome.stdout),
        f"the resume ran other iterations: {outcome.stdout}",
    )
    expect(not Snapshot.objects.filter(run_id=run_id).exists(), "the turn's snapshot is left")
    say("Every model call of the turn, from both processes:")
    calls = show_calls(run_id, crashed)
    agents = [(c.agent, c.pid == crashed) for c in calls]
    expect(agents == [("triage", True), ("resolver", False)], f"model calls: {agents}")
    state = latest_state(SESSION)
    expect(state["message_count"] == crash_turn + 1, f"message_count {state['message_count']}")
    expect(state["category"] == "account", f"category {state['category']}")
    say(
        "The resuming process started at iteration 2: intake and triage, settled before the "
        "crash, did not run again (one triage call in all, by the killed process; "
        f"message_count is {state['message_count']}, counted once). The turn's row is appended "
        "and its snapshot removed. Ann's chat goes on:"
    )
    demo.history += [
        {"role": "user", "content": CRASH_MESSAGE},
        {"role": "assistant", "content": state["reply"]},
    ]
    result = demo.turn(LAST_MESSAGE)
    expect(result.turn_index == crash_turn + 1, f"turn index {result.turn_index}")
    expect(result.data["issues"] == ["billing", "account"], f"issues {result.data['issues']}")

    phase(6, "Memory: per customer, across chats")
    say(
        "The chat's memory is scoped by customer (session ids are <customer>:<chat>): Ann's "
        "second chat starts with what she said in the first; Bob's sees none of it."
    )
    ann = demo.turn(
        "Hello again, where can I download my invoice?", session="ann:chat-2", state=CUSTOMER
    )
    bob = demo.turn(
        "Hello, the app shows an error when I export.",
        session="bob:chat-1",
        state={"customer": "Bob Sample", "email": "bob@example.com"},
    )
    expect(ann.data["recalled"][0] == LAST_MESSAGE, f"Ann recalled {ann.data['recalled']}")
    expect(len(ann.data["recalled"]) == 3, f"Ann recalled {len(ann.data['recalled'])} notes")
    expect(bob.data["recalled"] == [], f"Bob recalled {bob.data['recalled']}")
    expect(ann.data["ticket_id"] != result.data["ticket_id"], "one ticket id for two chats")

    phase(7, "The session's checkpoint rows")
    say(f'Checkpoint.objects.for_session("{CHAT}", "{SESSION}"): one row per settled turn.')
    rows = show_checkpoints(SESSION)
    expect([r.turn_index for r in rows] == list(range(crash_turn + 2)), "a turn row is missing")
    expect(
        [r.state["message_count"] for r in rows] == list(range(1, crash_turn + 3)),
        "message_count does not grow by one per turn",
    )
    total = ModelCall.objects.filter(run_id__startswith=f"{SESSION}.").count()
    say()
    say(
        f"{len(rows)} turns, 1 crash, 0 settled iterations run again, {total} model calls for "
        "the whole chat. Every check passed."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the demo database")
    args = parser.parse_args(argv)
    return drive(ChatDemo, run, "warlock-chat-demo-", keep=args.keep)


if __name__ == "__main__":
    sys.exit(main())
