"""The support-triage demo: a supervisor run killed mid-iteration, resumed, and paid for once.

Run it from the repository root::

    .venv/bin/python -m example_project.support_demo      # add --keep to keep the database

On a fresh SQLite database in a temporary directory it starts the ``support-triage``
supervisor of ``example_project/support`` on a double-charge ticket with ``manage.py
execute_run``, kills the process with SIGKILL while the billing agent waits for its model,
shows the stored snapshot, resumes the run with ``manage.py resume_run`` and proves, from the
``ModelCall`` rows the agents' middleware wrote in both processes, that no model call of a
settled iteration was made again and that the run's usage counts each snapshotted call once.
Then it triages the other tickets and prints what happened to each.

It always uses the offline model (``SUPPORT_LLM_*`` and ``OPENAI_*`` are removed from the
commands' environment), checks everything it claims and exits with status 1 if anything is
off, so it doubles as an end-to-end test.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from example_project.demo import REPO, TIMEOUT, Demo, drive, expect, phase, say

FLOW = "support-triage"
TICKETS = REPO / "example_project" / "support" / "data" / "tickets.json"
CRASH_TICKET = "T-1001"
MODEL_DELAY = "0.5"  # seconds per model call while the demo waits to kill the run
POLL = 0.02  # seconds between two looks at the database
# What the offline model decides for each ticket: the intents run, in order, and the state.
EXPECTED = {
    "T-1001": (["triage", "billing", "resolver"], {"category": "billing", "refund": "approved"}),
    "T-1002": (["triage", "resolver"], {"category": "account", "priority": "urgent"}),
    "T-1003": (["triage", "billing", "resolver"], {"category": "billing", "refund": "approved"}),
    "T-1004": (["triage", "resolver"], {"category": "other", "priority": "low"}),
}


def run_id_for(ticket: dict[str, Any]) -> str:
    return f"ticket-{ticket['id']}"


def wait_until(condition: Callable[[], bool], proc: subprocess.Popen[str], what: str) -> None:
    """Poll ``condition`` until it holds; fail if the process ends or TIMEOUT passes first."""
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        expect(proc.poll() is None, f"the run ended (exit {proc.returncode}) before {what}")
        expect(time.monotonic() < deadline, f"waited {TIMEOUT} s for {what}")
        time.sleep(POLL)


class SupportDemo(Demo):
    """``Demo``'s manage.py plumbing, with the support app's crash and its views of the rows."""

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        for key in [k for k in self.env if k.startswith("SUPPORT_LLM_")]:
            del self.env[key]
        self.env["SUPPORT_DEMO_MODEL_DELAY"] = "0"

    def show(self, args: list[str]) -> None:
        """Like ``Demo.show``, with a ticket's JSON shortened to its id."""
        shown = [shorten(a) if a.startswith("{") and len(a) > 60 else a for a in args]
        super().show(shown)

    def crash_mid_iteration(self, run_id: str, ticket: dict[str, Any]) -> int:
        """Start the run and SIGKILL it once the billing agent's model call has started."""
        from example_project.support.models import ModelCall

        proc = self.start(["execute_run", FLOW, "--input", json.dumps(ticket), "--run-id", run_id])
        echo = threading.Thread(target=echo_lines, args=(proc,))
        echo.start()
        billing = ModelCall.objects.for_run(run_id).filter(agent="billing")
        killed = False
        try:
            wait_until(billing.exists, proc, "the billing agent called its model")
            os.kill(proc.pid, signal.SIGKILL)
            killed = True
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            echo.join(TIMEOUT)
            errors = proc.stderr.read()
            proc.stdout.close()
            proc.stderr.close()
            if killed:
                print(
                    f"   simulating a crash: SIGKILL to pid {proc.pid} while the billing agent "
                    "waits for its model"
                )
            if errors.strip():
                print(textwrap.indent(errors.rstrip(), "     "))
        expect(proc.returncode == -signal.SIGKILL, f"{run_id}: exit {proc.returncode}")
        return proc.pid

    # --- looking at the database from here ------------------------------------------------

    def show_iterations(self, run_id: str) -> None:
        row = self.snapshot(run_id)
        print(f"     run id:     {row.run_id}")
        print(f"     status:     {row.status}")
        print(f"     iterations: {len(row.steps)} settled (last settled: {row.iteration})")
        for record in row.steps:
            decision = record["decision"]
            ran = ", ".join(record["result"]) or "-"
            tokens = record["usage"]["total"]
            line = f"#{record['iteration']}  {decision['source']:<13} -> {ran:<9} {tokens:>5}"
            print(f"       {line} tokens")
            if decision.get("reasoning"):
                print(f"           router: {decision['reasoning']}")
        print(f"     state:      {json.dumps(brief_state(row.state))}")

    @staticmethod
    def show_calls(run_id: str, crashed_pid: int | None = None) -> list[Any]:
        from example_project.support.models import ModelCall

        rows = list(ModelCall.objects.for_run(run_id).order_by("id"))
        for call in rows:
            who = ""
            if crashed_pid is not None:
                who = "killed process" if call.pid == crashed_pid else "resumed process"
            print(
                f"       #{call.iteration}  {call.agent:<9} {call.status:<9} "
                f"{call.total_tokens:>5} tokens  pid {call.pid} {who}".rstrip()
            )
        return rows


def shorten(ticket_json: str) -> str:
    """``{"id": "T-1001", ...}``: the ticket's id, the rest elided."""
    return ticket_json[: ticket_json.index(",") + 1] + " ...}"


def echo_lines(proc: subprocess.Popen[str]) -> None:
    for line in proc.stdout:
        print(f"     {line.rstrip()}")


def brief_state(state: dict[str, Any]) -> dict[str, Any]:
    """The state without the long strings (the summary, the note and the reply)."""
    return {k: v for k, v in state.items() if k not in ("summary", "billing_note", "reply")}


def check_paid_once(demo: SupportDemo, run_id: str, crashed_pid: int, settled: int) -> None:
    """Every call of a settled iteration was made once, and the usage counts each kept call
    once: iterations before the crash by the killed process, the others by the resumed one."""
    from example_project.support.models import ModelCall

    row = demo.snapshot(run_id)
    calls = list(ModelCall.objects.for_run(run_id))
    kept = [c for c in calls if (c.iteration < settled) == (c.pid == crashed_pid)]
    lost = [c for c in calls if c not in kept]
    for record in row.steps:
        index = record["iteration"]
        mine = [c for c in kept if c.iteration == index]
        counted = sum(c.total_tokens for c in mine)
        expect(
            all(c.status == "finished" for c in mine),
            f"iteration {index}: a kept call did not finish",
        )
        expect(
            counted == record["usage"]["total"],
            f"iteration {index}: the snapshot counts {record['usage']['total']} tokens, "
            f"the calls that produced it cost {counted}",
        )
    expect(
        not [c for c in calls if c.iteration < settled and c.pid != crashed_pid],
        "the resumed process called a model for an iteration the snapshot had settled",
    )
    expected = snapshotted_calls(row.steps)
    expect(len(kept) == expected, f"{len(kept)} calls kept, the snapshot holds {expected}")
    total = sum(c.total_tokens for c in kept)
    expect(row.usage["total"] == total, f"run usage {row.usage['total']}, kept calls {total}")
    expect(
        all(c.iteration == settled for c in lost),
        "a lost call does not belong to the iteration the crash interrupted",
    )
    settled_agents = ", ".join(c.agent for c in calls if c.iteration < settled)
    paid_again = ", ".join(c.agent for c in lost if c.status == "finished") or "none"
    in_flight = ", ".join(c.agent for c in lost if c.status == "started") or "none"
    say(
        f"The calls of the settled iterations ({settled_agents}) were made once, by the killed "
        "process; the resumed process made none of them again. The run's usage, "
        f"{row.usage['total']} tokens, is exactly the sum of the {len(kept)} calls whose "
        "answers are in the snapshot, each counted once."
    )
    say(
        "What the crash cost: the iteration it interrupted was not snapshotted, so it ran "
        f"again from its start. Its calls that had answered, made again: {paid_again} ("
        f"{sum(c.total_tokens for c in lost)} tokens, which the run's usage does not count). "
        f"Its calls in flight when the process died, never answered: {in_flight}."
    )


def triage_ticket(demo: SupportDemo, ticket: dict[str, Any]) -> None:
    from example_project.support.models import ModelCall

    run_id = run_id_for(ticket)
    outcome = demo.manage("execute_run", FLOW, "--input", json.dumps(ticket), "--run-id", run_id)
    expect(outcome.code == 0, f"execute_run {run_id} exited {outcome.code}")
    demo.check_status(run_id, "completed")
    calls = ModelCall.objects.for_run(run_id)
    expect(
        calls.count() == calls.finished().count(),
        f"{run_id}: a model call did not finish",
    )
    usage = demo.snapshot(run_id).usage["total"]
    expect(
        calls.total_tokens() == usage,
        f"{run_id}: usage {usage} tokens, the model calls cost {calls.total_tokens()}",
    )


def snapshotted_calls(iterations: list[dict[str, Any]]) -> int:
    """The model calls whose answers a run's iterations hold: the router's and each agent's."""
    return sum(len(r["result"]) + (r["decision"]["source"] == "router") for r in iterations)


def check_outcome(demo: SupportDemo, ticket: dict[str, Any]) -> list[str]:
    row = demo.snapshot(run_id_for(ticket))
    route = [intent for record in row.steps for intent in record["result"]]
    expected_route, expected_state = EXPECTED[ticket["id"]]
    expect(route == expected_route, f"{ticket['id']}: route {route}, expected {expected_route}")
    for key, value in expected_state.items():
        got = row.state.get(key)
        expect(got == value, f"{ticket['id']}: state {key}={got!r}, expected {value!r}")
    expect(bool(row.state.get("reply")), f"{ticket['id']}: no reply in the state")
    expect(row.usage["total"] > 0, f"{ticket['id']}: the run's usage is zero")
    verdict = row.steps[-1].get("evaluate_verdict") or {}
    expect(verdict.get("satisfied") is True, f"{ticket['id']}: evaluate did not end the run")
    return route


def print_summary(demo: SupportDemo, tickets: list[dict[str, Any]], crashed: str) -> None:
    from example_project.support.models import ModelCall

    for ticket in tickets:
        run_id = run_id_for(ticket)
        row = demo.snapshot(run_id)
        route = check_outcome(demo, ticket)
        state = row.state
        refund = state.get("refund")
        money = f", refund {refund} ${state.get('refund_amount', 0):.2f}" if refund else ""
        kept = snapshotted_calls(row.steps)
        made = ModelCall.objects.for_run(run_id).count()
        extra = f" ({made - kept} more made, and lost, in the crash)" if made > kept else ""
        story = " (crashed, resumed)" if ticket["id"] == crashed else ""
        print(f"     {ticket['id']}  {ticket['subject']}{story}")
        print(f"       route:  {' -> '.join(route)}; evaluate: satisfied, run {row.status}")
        print(f"       state:  {state['category']}, priority {state['priority']}{money}")
        print(f"       usage:  {row.usage['total']} tokens in {kept} model calls{extra}")
        first = state["reply"].split("\n\n")[1]
        print(
            textwrap.fill(first, 88, initial_indent="       reply:  ", subsequent_indent=" " * 15)
        )


def run(demo: SupportDemo) -> None:
    from example_project.support.models import ModelCall

    tickets = json.loads(TICKETS.read_text(encoding="utf-8"))
    crash = next(t for t in tickets if t["id"] == CRASH_TICKET)
    run_id = run_id_for(crash)

    print("warlock_ai demo: a support supervisor that never pays twice")
    print("===========================================================")
    say(
        "The support-triage supervisor (example_project/support/flows.py) handles one customer "
        "ticket per run. Each iteration a router agent picks the next specialist from the "
        "state: triage (category, priority), billing (the refund decision) or resolver (the "
        "reply); the specialist's JSON answer merges into the state, and the run ends once a "
        "reply exists. warlock_ai snapshots the run after every iteration."
    )
    say(
        "The agents run on an offline stand-in for a language model. A middleware on every "
        "agent writes a ModelCall row when a model call starts and fills in its tokens when "
        "it answers, so we can count the calls of every process, killed ones included."
    )

    phase(1, "A fresh database")
    say(f"A new SQLite file in a temporary directory: {demo.db}")
    expect(demo.manage("migrate", "-v", "0").code == 0, "manage.py migrate failed")
    say("Tables created.")

    phase(2, "Triage a ticket, and crash the run")
    say(
        f"Ticket {crash['id']}: {crash['subject']}. Each model call now takes {MODEL_DELAY} s. "
        "We watch the ModelCall table and, as soon as the billing agent's call has started, "
        "kill the process with SIGKILL: no chance to clean up or save anything."
    )
    demo.env["SUPPORT_DEMO_MODEL_DELAY"] = MODEL_DELAY
    crashed_pid = demo.crash_mid_iteration(run_id, crash)
    demo.env["SUPPORT_DEMO_MODEL_DELAY"] = "0"
    say("The process is gone.")

    phase(3, "What the crash left behind")
    say("The snapshot of the run, read from the database (the warlock_ai Snapshot model):")
    demo.show_iterations(run_id)
    row = demo.snapshot(run_id)
    settled = len(row.steps)
    expect(row.status == "running", f"after the crash the status is {row.status!r}")
    ran = [list(r["result"]) for r in row.steps]
    expect(
        ran == [["triage"]],
        f"expected only the triage iteration to be settled, got {ran}; the kill came too late",
    )
    say("The model calls, as the middleware logged them:")
    before = {c.pk for c in demo.show_calls(run_id)}
    statuses = list(ModelCall.objects.for_run(run_id).values_list("agent", "status"))
    expect(
        statuses == [("triage", "finished"), ("router", "finished"), ("billing", "started")],
        f"unexpected model calls after the crash: {statuses}",
    )
    say(
        "Iteration 0 (triage) is settled and saved. Iteration 1 was in the middle: the router "
        'had answered "billing" and the billing agent was waiting for its model. Neither '
        "answer reached the snapshot, which is taken after each iteration, not inside one."
    )

    phase(4, "Resume the run")
    say("Later (after a restart, a redeploy), we resume the run by its id:")
    outcome = demo.manage("resume_run", run_id)
    expect(outcome.code == 0, f"resume_run {run_id} exited {outcome.code}")
    demo.check_status(run_id, "completed")
    demo.show_iterations(run_id)

    phase(5, "Proof: no settled call was paid twice")
    say("Every model call of the run, from both processes:")
    demo.show_calls(run_id, crashed_pid)
    settled_calls = {c.pk for c in ModelCall.objects.for_run(run_id).filter(iteration__lt=settled)}
    expect(settled_calls <= before, "a settled iteration's call was made after the crash")
    check_paid_once(demo, run_id, crashed_pid, settled)

    phase(6, "The other tickets")
    for ticket in tickets:
        if ticket is not crash:
            triage_ticket(demo, ticket)

    phase(7, "Summary")
    print_summary(demo, tickets, crashed=crash["id"])
    say()
    say(
        f"{len(tickets)} tickets, 1 crash, 0 model calls of a settled iteration made again. "
        "Every check passed."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the demo database")
    args = parser.parse_args(argv)
    return drive(SupportDemo, run, "warlock-support-demo-", keep=args.keep)


if __name__ == "__main__":
    sys.exit(main())
