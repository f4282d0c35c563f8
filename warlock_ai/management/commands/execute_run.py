from typing import Any

from warlock_ai.management.base import (
    EXIT_CODES_HELP,
    RunCommand,
    add_enqueue_arguments,
    check_enqueue_options,
    enqueue,
    shown,
)
from warlock_ai.management.interrupts import interruptible, stop_if_interrupted
from warlock_ai.operations import execute_flow
from warlock_ai.runs import startable


class Command(RunCommand):
    help = (
        "Start a registered flow (a workflow defined in an app's flows.py) and run it to the end, "
        "printing each step as it starts and ends (duration, attempts, retries; none with -v 0). "
        "Its snapshot is written after every step, so a killed run can be continued with "
        "resume_run. The input comes from --input JSON, --input - (stdin) or --input-file "
        "PATH. With --enqueue the run goes to a background worker instead, and the command "
        "prints its job id and run id. " + EXIT_CODES_HELP
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("flow", help="registered flow name (kind:name when two kinds share it)")
        self.add_json_source_arguments(parser, "input", "the run's input", required=False)
        parser.add_argument("--run-id", default=None, help="run id to use (default: generated)")
        parser.add_argument("--context", default=None, help="per-call context as a JSON object")
        add_enqueue_arguments(parser, "run it")
        self.add_json_argument(parser, "the run's result (or the enqueued job)")

    def handle(self, *args: Any, **options: Any) -> None:
        definition = startable(options["flow"])
        payload = self.read_json_source("--input", options["input"], options["input_file"])
        context = self.parse_json("--context", options["context"], want_object=True)
        check_enqueue_options(options)
        if options["enqueue"]:
            from warlock_ai.background import enqueue_execute

            job = enqueue(
                enqueue_execute, options["flow"], payload, options["run_id"], options["queue"]
            )
            self.report_enqueued(job)
            return
        handlers = self.progress_handlers(definition.kind)
        if self.verbosity >= 1:

            def starting(event: dict[str, Any]) -> None:
                self.progress_out.write(
                    f"starting {definition.kind} {shown(definition.name)} run "
                    f"{shown(event['run_id'])} (version {shown(definition.version or '-')}, "
                    f"signature {definition.signature})"
                )

            handlers[f"{definition.kind}.starting"] = starting
        with self.run_output(), interruptible(self, options["run_id"]) as run:
            handlers = _also(handlers, f"{definition.kind}.starting", run.starting_handler)
            result = execute_flow(
                options["flow"],
                payload,
                run_id=options["run_id"],
                context=context,
                on=handlers,
                cancel=run.token,
            )
        stop_if_interrupted(self, result)
        self.report(result)


def _also(handlers: dict[str, Any], event: str, handler: Any) -> dict[str, Any]:
    """``handlers`` with ``handler`` also called for ``event``."""
    first = handlers.get(event)
    if first is None:
        return {**handlers, event: handler}

    def both(payload: dict[str, Any]) -> None:
        first(payload)
        handler(payload)

    return {**handlers, event: both}
