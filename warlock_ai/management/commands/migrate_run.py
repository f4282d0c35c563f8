from typing import Any

from django.core.management.base import CommandError

from warlock_ai.management.base import RunCommand, shown
from warlock_ai.operations import load_snapshot, migrate_run


class Command(RunCommand):
    help = (
        "Carry a run over to the current definition of its flow after a deploy changed it: "
        "rename step records (--rename OLD=NEW, repeatable), then, with --accept-signature, "
        "adopt the current signature so resume_run no longer reports drift. A step name that "
        "is not in the run, or not in the current definition, is refused and nothing is saved. "
        "Refused while a worker holds the run's lease. Exits with 1 when refused."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("run_id", help="the id of the run to migrate")
        parser.add_argument(
            "--rename",
            action="append",
            default=[],
            metavar="OLD=NEW",
            help="rename the step record OLD to NEW (a step of the current definition)",
        )
        parser.add_argument(
            "--accept-signature",
            action="store_true",
            help="store the current definition's signature on the run (ends the drift)",
        )
        self.add_json_argument(
            parser,
            '{"run_id", "renamed", "signature_before", "signature", "status", "next_step"}',
        )

    def handle(self, *args: Any, **options: Any) -> None:
        run_id = options["run_id"]
        renames = parse_renames(options["rename"])
        if not renames and not options["accept_signature"]:
            raise CommandError("nothing to do: give --rename OLD=NEW and/or --accept-signature")
        before = load_snapshot(run_id)
        after = migrate_run(run_id, renames, accept_signature=options["accept_signature"])
        if self.json_output:
            self.write_json(
                {
                    "run_id": run_id,
                    "renamed": renames,
                    "signature_before": before.signature,
                    "signature": after.signature,
                    "status": after.status,
                    "next_step": after.next_step,
                }
            )
            return
        if self.verbosity < 1:
            return
        for old, new in renames.items():
            self.stdout.write(shown(f"  renamed step {old} -> {new}"))
        if before.signature != after.signature:
            self.stdout.write(f"  signature {before.signature} -> {after.signature}")
        elif options["accept_signature"]:
            self.stdout.write(f"  signature {after.signature} was already the current one")
        self.stdout.write(
            self.style.SUCCESS(f"run {shown(run_id)} migrated")
            + shown(
                f" (status {after.status}, next step {after.next_step or '-'}); "
                f"continue it with: manage.py resume_run {run_id}"
            )
        )


def parse_renames(values: list[str]) -> dict[str, str]:
    """``["old=new", ...]`` as ``{"old": "new"}``; malformed or repeated names are refused."""
    renames: dict[str, str] = {}
    for value in values:
        old, sep, new = value.partition("=")
        old, new = old.strip(), new.strip()
        if not sep or not old or not new:
            raise CommandError(f"--rename expects OLD=NEW (two step names), got {value!r}")
        if old in renames:
            raise CommandError(f"--rename: step {old!r} is renamed twice")
        if new in renames.values():
            raise CommandError(f"--rename: two steps are renamed to {new!r}")
        renames[old] = new
    return renames
