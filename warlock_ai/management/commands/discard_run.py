from typing import Any

from django.core.management.base import CommandError

from warlock_ai.core.errors import AIError, UnreadableSnapshotError
from warlock_ai.management.base import RunCommand
from warlock_ai.operations import discard_run, load_snapshot


class Command(RunCommand):
    help = (
        "Delete the stored snapshots of one or more runs, for good. Every run id is checked "
        "first: if any is unknown, nothing is deleted. A run whose worker still holds its "
        "lease is refused (the error names the holder) and kept; the others are deleted. "
        "Asks for confirmation on a terminal; --no-input (or its alias --yes) deletes "
        "without asking, and is needed when stdin is not a terminal."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("run_ids", nargs="+", metavar="run_id", help="the runs to delete")
        self.add_no_input_arguments(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        run_ids = list(dict.fromkeys(options["run_ids"]))
        stored = [flow_and_status(run_id) for run_id in run_ids]  # unknown: nothing deleted
        described = ", ".join(f"{r} ({f}, {s})" for r, (f, s) in zip(run_ids, stored, strict=True))
        self.confirm(f"Delete {described} for good?")
        refused: list[str] = []
        for run_id, (_, status) in zip(run_ids, stored, strict=True):
            try:
                discard_run(run_id)
            except AIError as exc:
                refused.append(exc.message)
                continue
            if self.verbosity >= 1:
                self.stdout.write(f"discarded run {run_id} ({status})")
        if len(refused) == 1:
            raise CommandError(refused[0])
        if refused:
            raise CommandError(
                f"{len(refused)} of {len(run_ids)} runs were not discarded: " + "; ".join(refused)
            )


def flow_and_status(run_id: str) -> tuple[str, str]:
    """What the run's snapshot says of its flow and status; of a snapshot that cannot be
    read, what its row still says (``UnknownRunError`` when there is no such run)."""
    try:
        snapshot = load_snapshot(run_id)
    except UnreadableSnapshotError as exc:
        return exc.flow or "?", f"{exc.status or '?'}, unreadable"
    return snapshot.name, snapshot.status
