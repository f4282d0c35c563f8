from typing import Any

from warlock_ai.management.base import RunCommand
from warlock_ai.operations import request_cancel


class Command(RunCommand):
    help = (
        "Cancel a running run. When no live worker holds it (its worker died, or its lease "
        "expired), it is marked cancelled at once. Otherwise the request is stored on its "
        "snapshot: the worker's heartbeat sets ctx.cancel within a third of LEASE_SECONDS and "
        "the worker ends the run 'cancelled' at its next checkpoint, keeping its finished "
        "steps and state. A second request while one is pending keeps the first (exit 0). "
        "Refused when the run is not running."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("run_id", help="the id of the running run to cancel")
        parser.add_argument(
            "--reason", default="", help="why, stored on the run and shown in its error"
        )
        self.add_json_argument(
            parser, '{"run_id", "action": "cancelled"|"requested"|"pending", "message", ...}'
        )

    def handle(self, *args: Any, **options: Any) -> None:
        outcome = request_cancel(options["run_id"], reason=options["reason"])
        if self.json_output:
            self.write_json(outcome.to_dict())
        elif self.verbosity >= 1:
            self.stdout.write(outcome.message)
