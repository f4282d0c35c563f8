from typing import Any

from warlock_ai.management.base import RunCommand, shown
from warlock_ai.operations import request_cancel


class Command(RunCommand):
    help = (
        "Ask a running run to stop. The request is stored on its snapshot; the worker running "
        "it notices at its next checkpoint (the snapshot write after the current step) and "
        "ends the run 'cancelled', keeping its finished steps and state. Refused when the run "
        "is not running (exit code 1)."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("run_id", help="the id of the running run to cancel")
        parser.add_argument(
            "--reason", default="", help="why, stored on the run and shown in its error"
        )
        self.add_json_argument(parser, '{"run_id", "cancel_requested": true, "reason"}')

    def handle(self, *args: Any, **options: Any) -> None:
        run_id = options["run_id"]
        request_cancel(run_id, reason=options["reason"])
        if self.json_output:
            self.write_json(
                {"run_id": run_id, "cancel_requested": True, "reason": options["reason"]}
            )
        elif self.verbosity >= 1:
            self.stdout.write(
                f"cancellation of run {shown(run_id)} requested; its worker stops at its next "
                "checkpoint (after the current step) and the run ends cancelled"
            )
