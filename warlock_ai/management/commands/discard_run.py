from typing import Any

from django.core.management.base import CommandError

from warlock_ai.core.errors import AIError, UnreadableSnapshotError
from warlock_ai.management.base import Reported, RunCommand, shown
from warlock_ai.operations import discard_run, load_snapshot


class Command(RunCommand):
    help = (
        "Delete the stored snapshots of one or more runs, for good. Every run id is checked "
        "first: if any is unknown, nothing is deleted. A run whose worker still holds its "
        "lease is refused (the error names the holder) and kept; the others are deleted. "
        "Asks for confirmation on a terminal; --no-input (or its alias --yes) deletes "
        "without asking, and is needed when stdin is not a terminal. Exits with 1 when any "
        "run was refused or unknown."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("run_ids", nargs="+", metavar="run_id", help="the runs to delete")
        self.add_no_input_arguments(parser)
        self.add_json_argument(
            parser, '{"discarded": [{"run_id", "status"}], "refused": [{"run_id", "message"}]}'
        )

    def handle(self, *args: Any, **options: Any) -> None:
        run_ids = list(dict.fromkeys(options["run_ids"]))
        stored = [flow_and_status(run_id) for run_id in run_ids]  # unknown: nothing deleted
        described = ", ".join(f"{r} ({f}, {s})" for r, (f, s) in zip(run_ids, stored, strict=True))
        self.confirm(shown(f"Delete {described} for good?"))
        refused: list[dict[str, str]] = []
        discarded: list[dict[str, str]] = []
        for run_id, (_, status) in zip(run_ids, stored, strict=True):
            try:
                discard_run(run_id)
            except AIError as exc:
                refused.append({"run_id": run_id, "code": exc.code, "message": exc.message})
                continue
            discarded.append({"run_id": run_id, "status": status})
            if self.verbosity >= 1 and not self.json_output:
                self.stdout.write(shown(f"discarded run {run_id} ({status})"))
        message = refused_message(refused, len(run_ids))
        if self.json_output:
            document: dict[str, object] = {"discarded": discarded, "refused": refused}
            if message:
                document["error"] = {"code": refused[0]["code"], "message": message}
            self.write_json(document)
            if message:
                raise Reported(message)
        elif message:
            raise CommandError(message)


def refused_message(refused: list[dict[str, str]], total: int) -> str:
    """One line for the runs that were not discarded ("" when none was refused)."""
    if len(refused) == 1:
        return refused[0]["message"]
    if refused:
        reasons = "; ".join(item["message"] for item in refused)
        return f"{len(refused)} of {total} runs were not discarded: {reasons}"
    return ""


def flow_and_status(run_id: str) -> tuple[str, str]:
    """What the run's snapshot says of its flow and status; of a snapshot that cannot be
    read, what its row still says (``UnknownRunError`` when there is no such run)."""
    try:
        snapshot = load_snapshot(run_id)
    except UnreadableSnapshotError as exc:
        return exc.flow or "?", f"{exc.status or '?'}, unreadable"
    return snapshot.name, snapshot.status
