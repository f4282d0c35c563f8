from functools import partial
from typing import Any

from django.core.management.base import CommandError

from warlock_ai.core.errors import AIError
from warlock_ai.management.base import check_enqueue_options, enqueue
from warlock_ai.management.interrupts import interruptible, stop_if_interrupted
from warlock_ai.management.turns import TURN_EXIT_CODES_HELP, TurnCommand, refused


class Command(TurnCommand):
    help = (
        "Run one turn of a session of a registered orchestrator (defined in an app's "
        "flows.py): the session's latest checkpoint is loaded, the turn runs under the "
        "session's lock, and a clean turn appends the next checkpoint row. The input comes "
        "from --input JSON, --input - (stdin) or --input-file PATH. With --enqueue the turn "
        "goes to a background worker instead (one job per turn: the same turn enqueued twice "
        "is one job). " + TURN_EXIT_CODES_HELP
    )

    def add_arguments(self, parser: Any) -> None:
        self.add_session_arguments(parser, "run the turn")
        self.add_json_source_arguments(parser, "input", "the turn's input", required=True)
        self.add_json_source_arguments(
            parser, "history", "the conversation so far (an array of messages)", False
        )
        parser.add_argument(
            "--state", default=None, help="a JSON object merged into the session's state"
        )
        parser.add_argument("--context", default=None, help="per-call context as a JSON object")
        parser.add_argument(
            "--discard-interrupted",
            action="store_true",
            help="when the session's next turn is an interrupted one, drop it and run this "
            "input instead (default: refused; finish it with resume_turn)",
        )
        parser.add_argument(
            "--turn-key",
            default=None,
            help="with --enqueue: what makes this turn one job (default: a hash of the input)",
        )
        self.add_json_argument(parser, "the turn's result (or the enqueued job)")

    def handle(self, *args: Any, **options: Any) -> None:
        orch, session_id = self.session(options)
        payload = self.read_json_source("--input", options["input"], options["input_file"])
        history = self.read_json_source("--history", options["history"], options["history_file"])
        if history is not None and not isinstance(history, list):
            raise CommandError(f"--history must be a JSON array, got {type(history).__name__}")
        state = self.parse_json("--state", options["state"], want_object=True)
        context = self.parse_json("--context", options["context"], want_object=True)
        check_enqueue_options({**options, "context": None})  # a turn's job carries its context
        if options["turn_key"] is not None and not options["enqueue"]:
            raise CommandError("--turn-key only applies with --enqueue")
        turn = {"history": history, "state": state, "context": context, "force": options["force"]}
        if options["enqueue"]:
            from warlock_ai.background import enqueue_turn

            queue = {"turn_key": options["turn_key"], "queue": options["queue"]}
            job = enqueue(partial(enqueue_turn, **turn, **queue), orch.name, session_id, payload)
            self.report_enqueued(job)
            return
        after = self.afterwards(orch, session_id)
        with self.run_output(), interruptible(self, after=after) as run:
            handlers = self.progress_handlers(orch.kind)
            handlers["orchestrator.turn.starting"] = run.starting_handler
            try:
                result = orch.execute(
                    payload,
                    session_id=session_id,
                    discard_interrupted=options["discard_interrupted"],
                    cancel=run.token,
                    on=handlers,
                    **turn,
                )
            except AIError as exc:
                raise refused(exc, orch.name, session_id) from exc
        stop_if_interrupted(self, result, after)
        self.report_turn(result)
