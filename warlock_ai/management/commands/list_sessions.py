from typing import Any

from django.utils import timezone

from warlock_ai.management.base import RunCommand
from warlock_ai.sessions import SessionInfo, list_sessions, orchestrator_named


class Command(RunCommand):
    help = (
        "List the sessions of a registered orchestrator (of every registered one when none "
        "is named), read through each orchestrator's checkpoint store (database or Redis): "
        "orchestrator, session id, latest turn, turns taken, last route, when the latest turn "
        "was saved, and the session's next turn when it is stored mid-way (iterate=True): "
        "'interrupted' (resume_turn or drain_runs finishes it) or running on a live worker. "
        "Exits with 1 on bad input."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "orchestrator", nargs="?", default=None, help="a registered orchestrator's name"
        )
        parser.add_argument(
            "--prefix", default="", help="only sessions whose id starts with this (exact case)"
        )
        self.add_json_argument(
            parser,
            'a JSON array of {"orchestrator", "session_id", "latest_turn", "turn_count", '
            '"last_route", "saved_at", "interrupted_turn"}',
        )

    def handle(self, *args: Any, **options: Any) -> None:
        name = options["orchestrator"]
        orch = orchestrator_named(name) if name is not None else None
        sessions = list_sessions(orch, options["prefix"])
        if self.json_output:
            self.write_json([session.to_dict() for session in sessions])
            return
        if not sessions:
            if self.verbosity >= 1:
                self.stdout.write("no sessions match")
            return
        header = ("ORCHESTRATOR", "SESSION", "LATEST TURN", "TURNS", "LAST ROUTE", "SAVED AT")
        self.write_table((*header, "NEXT TURN"), [row(session) for session in sessions])
        if self.verbosity >= 1:
            count = len(sessions)
            self.stdout.write(f"{count} session{'s' if count != 1 else ''}")


def row(session: SessionInfo) -> tuple[Any, ...]:
    route = session.last_route
    saved = session.saved_at
    return (
        session.orchestrator,
        session.session_id,
        "-" if session.latest_turn is None else session.latest_turn,
        session.turn_count,
        ", ".join(route) if isinstance(route, list) else (route or "-"),
        f"{timezone.localtime(saved):%Y-%m-%d %H:%M:%S}" if saved else "-",
        next_turn(session),
    )


def next_turn(session: SessionInfo) -> str:
    turn = session.next_turn
    if turn is None:
        return "-"
    if turn.in_progress:
        return f"turn {turn.turn_index} running on {turn.lease_owner}"
    return f"turn {turn.turn_index} interrupted"
