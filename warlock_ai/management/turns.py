"""What ``execute_turn`` and ``resume_turn`` share: the orchestrator and session arguments,
the refusals an operator can act on in one line, and a turn's outcome."""

from __future__ import annotations

from typing import Any

from ..core.errors import AIError, InterruptedTurnError, OrchestratorDriftError, SessionBusyError
from ..operations import resume_turn_command
from ..sessions import orchestrator_named
from .base import RunCommand, add_enqueue_arguments
from .interrupts import Afterwards, manage_command

TURN_EXIT_CODES_HELP = (
    "Exit codes: 0 the turn ended cleanly (the session awaits its next input) and is "
    "stored; 1 bad input or refused (the orchestrator changed since the session was saved, "
    "the session is busy, its next turn is an interrupted one), or the turn failed or was "
    "cancelled (nothing is appended); 3 the turn ended but a snapshot write failed, so what "
    "is stored is behind; 130 (SIGINT) or 143 (SIGTERM) the turn was interrupted (one line "
    "says how to go on: resume_turn, or for an orchestrator without iterate, run the turn "
    "again)."
)


class TurnCommand(RunCommand):
    """A command acting on one session of a registered orchestrator."""

    def add_session_arguments(self, parser: Any, what: str) -> None:
        parser.add_argument("orchestrator", help="the registered orchestrator's name")
        parser.add_argument(
            "--session", required=True, metavar="ID", help="the session id (printable text)"
        )
        parser.add_argument(
            "--force",
            action="store_true",
            help="run even though the orchestrator changed since the session was saved (the "
            "new signature is stored with the turn)",
        )
        add_enqueue_arguments(parser, what, prints="the job id")

    def session(self, options: dict[str, Any]) -> tuple[Any, str]:
        """The registered orchestrator and the checked session id of ``options``."""
        orch = orchestrator_named(options["orchestrator"])
        return orch, orch.check_session_id(options["session"])

    @staticmethod
    def afterwards(orch: Any, session_id: str) -> Afterwards:
        """What a turn a signal stopped leaves, and the command that finishes it."""
        if orch.iterate:
            return Afterwards(
                resume=resume_turn_command(orch.name, session_id),
                mid_step="stopped during an iteration; its lease is released and that "
                "iteration runs again on resume",
            )
        stopped = (
            "stopped before it was checkpointed; nothing was stored and the session stays "
            "at its previous turn (resume_turn has nothing to finish): run the turn again"
        )
        return Afterwards(resume="", mid_step=stopped, at_check_point=stopped)

    def report_turn(self, result: Any, resumed: bool | None = None) -> None:
        """Print the turn's outcome (``turn N of session S: <status> in ...``) and end with
        its exit code."""
        extra: dict[str, Any] = {
            "session_id": result.session_id,
            "turn_index": result.turn_index,
            "checkpointed": result.report.checkpointed,
        }
        if resumed is not None:
            extra["resumed"] = resumed
        headline = f"turn {result.turn_index} of session {result.session_id}"
        self.report(result, headline=headline, extra=extra)


def refused(exc: AIError, name: str, session_id: str) -> AIError:
    """``exc`` (a turn the engine refused before running it) with a message naming what to
    do with this command's options; its code stays (``--json`` shows it)."""
    where = f'session "{session_id}" of orchestrator "{name}"'
    fields = {field: getattr(exc, field, None) for field in exc.fields}
    if isinstance(exc, OrchestratorDriftError):
        discard = manage_command("discard_session", name, session_id)
        message = (
            f"{where} was saved by another version of the orchestrator (saved signature "
            f"{fields['saved_signature']}, current {fields['current_signature']}); run the "
            f"turn with --force if the change is safe, or discard the session with: {discard}"
        )
    elif isinstance(exc, InterruptedTurnError):
        resume = resume_turn_command(name, session_id)
        message = (
            f"{where} has an interrupted turn {fields['turn_index']} (run {fields['run_id']}); "
            f"finish it with: {resume}, or give --discard-interrupted to drop it and run this "
            "input instead"
        )
    elif isinstance(exc, SessionBusyError):
        holder = f" (held by {fields['holder']})" if fields["holder"] else ""
        message = (
            f"{where} is busy: another turn held its lock for the whole "
            f"{fields['waited_seconds']:g} s wait{holder}; try again when that turn has ended"
        )
    else:
        return exc
    return type(exc)(message, code=exc.code, **fields)
