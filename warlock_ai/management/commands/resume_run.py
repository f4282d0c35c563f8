from typing import Any

from django.core.management.base import CommandError

from warlock_ai.core.errors import DriftError
from warlock_ai.core.runs.kinds import kind_named
from warlock_ai.management.base import (
    EXIT_CODES_HELP,
    RunCommand,
    add_enqueue_arguments,
    check_enqueue_options,
    enqueue,
    shown,
)
from warlock_ai.management.interrupts import interruptible, stop_if_interrupted
from warlock_ai.operations import definition_for, load_snapshot, resume_run


class Command(RunCommand):
    help = (
        "Continue a stored run where it stopped, with its registered definition; finished "
        "steps do not run again; each step left prints as it starts and ends (duration, "
        "attempts, retries; none with -v 0). An interrupted orchestrator turn is finished as "
        "its session's next turn (as resume_turn does); one that had been checkpointed "
        "already runs nothing (exit 0). A run whose definition changed since it started "
        "is refused unless --force is given. With --enqueue a background worker resumes it "
        "instead, and the command prints its job id and run id. " + EXIT_CODES_HELP
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("run_id", help="the id of the run to resume")
        parser.add_argument(
            "--force",
            action="store_true",
            help="resume even though the definition changed (skips the drift check)",
        )
        parser.add_argument("--context", default=None, help="per-call context as a JSON object")
        add_enqueue_arguments(parser, "resume it")
        self.add_json_argument(parser, "the run's result (or the enqueued job)")

    def handle(self, *args: Any, **options: Any) -> None:
        run_id = options["run_id"]
        context = self.parse_json("--context", options["context"], want_object=True)
        check_enqueue_options(options)
        snapshot = load_snapshot(run_id)
        definition = definition_for(snapshot)
        if options["enqueue"]:
            from warlock_ai.background import enqueue_resume

            try:
                job = enqueue(enqueue_resume, run_id, options["force"], options["queue"])
            except DriftError as exc:
                raise CommandError(drift_message(run_id, snapshot, exc)) from exc
            self.report_enqueued(job)
            return
        out = self.progress_out
        if snapshot.status == "completed" and self.verbosity >= 1:
            out.write(f"run {shown(run_id)} already completed; nothing to run")
        elif self.verbosity >= 1:
            out.write(
                f"resuming {snapshot.kind} {shown(snapshot.name)} run {shown(run_id)} "
                f"(was {snapshot.status}; {shown(progress(snapshot))})"
            )
            if options["force"] and snapshot.signature != definition.signature:
                out.write(
                    f"  --force: drift check bypassed (saved signature {snapshot.signature}, "
                    f"current {definition.signature})"
                )
        try:
            with self.run_output(), interruptible(self, run_id) as run:
                result = resume_run(
                    run_id,
                    force=options["force"],
                    context=context,
                    on=self.progress_handlers(snapshot.kind),
                    cancel=run.token,
                )
        except DriftError as exc:
            raise CommandError(drift_message(run_id, snapshot, exc)) from exc
        if result is None:  # a turn that had settled (or was not interrupted) after all
            line = f"run {run_id} ({progress(snapshot)}): nothing left to run"
            if self.json_output:
                self.write_json({"run_id": run_id, "resumed": False, "message": line})
            elif self.verbosity >= 1:
                self.stdout.write(shown(line))
            return
        stop_if_interrupted(self, result)
        self.report(result)


def progress(snapshot: Any) -> str:
    return kind_named(snapshot.kind).progress(snapshot)


def drift_message(run_id: str, snapshot: Any, exc: Any) -> str:
    where = progress(snapshot)
    completed = getattr(exc, "completed_steps", None)
    if completed is not None:  # what the drift error knows is newer than the stored run
        where = f"completed: {', '.join(completed) or 'none'}; next: {exc.pending_step or '-'}"
    fixes = "migrate it, " if kind_named(snapshot.kind).migratable else ""
    return (
        f'run "{run_id}" was started by another version of {snapshot.name} '
        f"(saved signature {exc.saved_signature}, current {exc.current_signature}; "
        f"{where}); discard it and start again, {fixes}"
        "or resume it with --force if the change is safe"
    )
