from typing import Any

from warlock_ai.management.base import RunCommand, shown
from warlock_ai.sessions import discard_session, find_session, orchestrator_named


class Command(RunCommand):
    help = (
        "Delete a session of a registered orchestrator for good: its checkpoint rows and any "
        "stored turn snapshot, under the session's lock (so never under a turn in progress: "
        "it waits for it, up to the orchestrator's lock_timeout). Asks for confirmation on a "
        "terminal; --no-input (or its alias --yes) deletes without asking, and is needed "
        "when stdin is not a terminal. Exits with 1 on bad input, an unknown session, or when "
        "not confirmed."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("orchestrator", help="the registered orchestrator's name")
        parser.add_argument("session_id", help="the session to delete")
        self.add_no_input_arguments(parser)
        self.add_json_argument(parser, '{"orchestrator", "session_id", "removed"}')

    def handle(self, *args: Any, **options: Any) -> None:
        orch = orchestrator_named(options["orchestrator"])
        session_id = orch.check_session_id(options["session_id"])
        latest, pending = find_session(orch, session_id)
        turns = f"{latest.turn_index + 1} turn(s)" if latest is not None else "no settled turn"
        also = f" and interrupted turn {pending.turn_index}" if pending is not None else ""
        self.confirm(shown(f"Delete session {session_id} of {orch.name} ({turns}{also}) for good?"))
        removed = discard_session(orch, session_id)
        if self.json_output:
            self.write_json(
                {"orchestrator": orch.name, "session_id": session_id, "removed": removed}
            )
        elif self.verbosity >= 1:
            self.stdout.write(
                shown(
                    f"discarded session {session_id} of {orch.name}: {removed} stored "
                    "row(s) and snapshot(s) removed"
                )
            )
