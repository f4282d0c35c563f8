from typing import Any

from warlock_ai.core.errors import AIError
from warlock_ai.core.runs.kinds import kind_named
from warlock_ai.core.runs.leases import held_error
from warlock_ai.management.base import check_enqueue_options, enqueue, shown
from warlock_ai.management.interrupts import interruptible, stop_if_interrupted
from warlock_ai.management.turns import TURN_EXIT_CODES_HELP, TurnCommand, refused
from warlock_ai.runs import live_lease
from warlock_ai.sessions import interrupted_turn


class Command(TurnCommand):
    help = (
        "Finish the interrupted turn of a session (an orchestrator with iterate=True whose "
        "turn stopped mid-way: a crash, a signal): its settled iterations do not run again, "
        "and the turn appends its checkpoint row. When there is nothing to finish it says so "
        "and exits with 0. With --enqueue a background worker (django-rq or the tasks "
        "framework) finishes it instead. " + TURN_EXIT_CODES_HELP
    )

    def add_arguments(self, parser: Any) -> None:
        self.add_session_arguments(parser, "finish the turn")
        parser.add_argument("--context", default=None, help="per-call context as a JSON object")
        self.add_json_argument(
            parser, 'the turn\'s result with "resumed": true, or {"resumed": false, ...}'
        )

    def handle(self, *args: Any, **options: Any) -> None:
        orch, session_id = self.session(options)
        context = self.parse_json("--context", options["context"], want_object=True)
        check_enqueue_options(options)
        if options["enqueue"]:
            from warlock_ai.background import enqueue_resume_turn

            job = enqueue(enqueue_resume_turn, orch.name, session_id, options["force"])
            if job is None:
                self.nothing_to_resume(orch, session_id)
            else:
                self.report_enqueued(job)
            return
        stored = interrupted_turn(orch, session_id)
        if stored is not None:
            lease = live_lease(stored.run_id, orch.store)
            if lease is not None:  # a live worker is on the turn: it is not interrupted
                raise held_error(stored.run_id, *lease, doing="resume")
        if stored is not None and self.verbosity >= 1:
            self.progress_out.write(
                shown(
                    f"finishing turn {stored.turn_index} of session {session_id} "
                    f"({orch.name}, run {stored.run_id}; {kind_named(orch.kind).progress(stored)})"
                )
            )
        after = self.afterwards(orch, session_id)
        with self.run_output(), interruptible(self, after=after) as run:
            handlers = self.progress_handlers(orch.kind)
            handlers["orchestrator.turn.starting"] = run.starting_handler
            try:
                result = orch.resume(
                    session_id,
                    force=options["force"],
                    context=context,
                    cancel=run.token,
                    on=handlers,
                )
            except AIError as exc:
                raise refused(exc, orch.name, session_id) from exc
        if result is None:
            self.nothing_to_resume(orch, session_id)
            return
        stop_if_interrupted(self, result, after)
        self.report_turn(result, resumed=True)

    def nothing_to_resume(self, orch: Any, session_id: str) -> None:
        latest = orch.latest(session_id)
        where = f"at turn {latest.turn_index}" if latest is not None else "with no turn yet"
        line = (
            f"nothing to resume: session {session_id} of {orch.name} has no interrupted turn; "
            f"it is {where}"
        )
        if not orch.iterate:
            line += f" ({orch.name} does not iterate, so its turns are never left half-done)"
        if self.json_output:
            self.write_json(
                {
                    "resumed": False,
                    "session_id": session_id,
                    "orchestrator": orch.name,
                    "latest_turn": latest.turn_index if latest is not None else None,
                    "message": line,
                }
            )
        elif self.verbosity >= 1:
            self.stdout.write(shown(line))
