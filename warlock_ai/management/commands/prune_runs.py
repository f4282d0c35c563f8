from datetime import datetime
from typing import Any

from django.core.management.base import CommandError
from django.utils import timezone

from warlock_ai.management.base import RunCommand, int_option, parse_duration
from warlock_ai.models import TERMINAL
from warlock_ai.operations import prune_runs

PRUNABLE = [str(status) for status in TERMINAL]
#: Rows per DELETE: more would lock the table for long (and pass SQLite's variable limit).
MAX_BATCH_SIZE = 10_000


class Command(RunCommand):
    help = (
        "Delete the snapshots of finished runs last saved longer ago than --older-than, in "
        "batches (--batch-size rows per DELETE), so a large table is never locked for long. "
        "Only the statuses given are deleted (default: completed); a running run is never "
        "deleted. --dry-run counts without deleting. Asks for confirmation on a terminal, "
        "showing how many runs it would delete; --no-input (or its alias --yes) deletes "
        "without asking, and is needed when stdin is not a terminal (cron jobs, scripts). "
        "Exits with 1 on bad input or when not confirmed."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--older-than",
            required=True,
            metavar="AGE",
            help="minimum age since the last save: 30d, 12h, 90m, 45s (or sums such as 1d12h); "
            "0s for every finished run, at most 36500d",
        )
        parser.add_argument(
            "--status",
            default="completed",
            help=f"comma-separated statuses to delete (default completed): {', '.join(PRUNABLE)}",
        )
        parser.add_argument(
            "--batch-size",
            type=int_option("--batch-size", 1, MAX_BATCH_SIZE),
            default=500,
            help=f"rows deleted per statement, 1 to {MAX_BATCH_SIZE} (default 500)",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="count what would be deleted, delete nothing"
        )
        self.add_json_argument(
            parser, '{"deleted", "matched", "dry_run", "statuses", "saved_before"}'
        )
        self.add_no_input_arguments(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        older_than = parse_duration("--older-than", options["older_than"])
        statuses = self.parse_statuses(options["status"])
        if not 1 <= options["batch_size"] <= MAX_BATCH_SIZE:  # call_command skips the type
            raise CommandError(
                f"--batch-size must be from 1 to {MAX_BATCH_SIZE}, got {options['batch_size']}"
            )
        cutoff = timezone.now() - older_than
        if self.interactive and not options["dry_run"]:
            matched = prune_runs(saved_before=cutoff, statuses=statuses, dry_run=True)
            if matched:  # nothing matches: nothing to ask
                runs = "run" if matched == 1 else "runs"
                self.confirm(
                    f"Delete {matched} {'/'.join(statuses)} {runs} saved before "
                    f"{self.local(cutoff)} for good?"
                )
        count = self.prune(cutoff, statuses, options)
        if options["json"]:
            self.write_json(
                {
                    "deleted": 0 if options["dry_run"] else count,
                    "matched": count,
                    "dry_run": options["dry_run"],
                    "statuses": statuses,
                    "saved_before": cutoff,
                }
            )
        elif self.verbosity >= 1:
            verb = "would delete" if options["dry_run"] else "deleted"
            runs = "run" if count == 1 else "runs"
            self.stdout.write(
                f"{verb} {count} {'/'.join(statuses)} {runs} saved before {self.local(cutoff)}"
            )

    def prune(self, cutoff: datetime, statuses: list[str], options: dict[str, Any]) -> int:
        """``prune_runs`` of the runs saved before ``cutoff``: the cutoff the question showed,
        however long the answer took."""
        progress = self.progress_bar("pruning")
        try:
            return prune_runs(
                saved_before=cutoff,
                statuses=statuses,
                batch_size=options["batch_size"],
                dry_run=options["dry_run"],
                progress=progress,
            )
        finally:
            if progress is not None:
                progress.close()

    @staticmethod
    def local(moment: datetime) -> str:
        return timezone.localtime(moment).isoformat(timespec="seconds")

    def parse_statuses(self, text: str) -> list[str]:
        values = [item.strip() for item in text.split(",")]
        if "running" in values:
            raise CommandError(
                "prune_runs never deletes running runs (a worker may still be on them); "
                "use discard_run RUN_ID for one you know is dead, or drain_runs to finish them"
            )
        return self.parse_choices("--status", text, PRUNABLE)
