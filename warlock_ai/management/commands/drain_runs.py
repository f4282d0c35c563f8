from collections import Counter
from collections.abc import Sequence
from typing import Any

from warlock_ai.core.runs.interrupts import signal_exit_code
from warlock_ai.management.base import (
    EXIT_FAILED,
    EXIT_NOT_DURABLE,
    EXIT_OK,
    Reported,
    RunCommand,
    check_enqueue_options,
    shown,
)
from warlock_ai.management.interrupts import interruptible, stop
from warlock_ai.operations import Drained, drain_runs

#: Outcomes (their first word) that leave nothing to do: the run completed, went to a
#: worker's queue, or another host is running it.
SETTLED = frozenset({"completed", "enqueued", "skipped"})


class Command(RunCommand):
    help = (
        "Resume every running run whose worker is gone (its lease expired, or its process on "
        "this host died), inline or, with --enqueue, as background jobs (django-rq or Django's "
        "tasks framework); an interrupted orchestrator "
        "turn is finished as its session's next turn (its line names the session and turn). "
        "Safe on every worker boot and from several hosts at once: leases decide who runs "
        "what, and a run another host took is skipped. Prints one line per run and a "
        "summary. Exit codes: 0 nothing was stale, or every stale run completed, was enqueued "
        "or was skipped (another host has it); 1 a resumed run did not complete (failed, "
        "cancelled...) or could not be resumed; 3 a resumed run ended but a snapshot write "
        "failed (the stored run is behind)."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--enqueue",
            action="store_true",
            help="enqueue a resume job per stale run (django-rq or the tasks framework) instead "
            "of running it here, after putting back the jobs of workers that died",
        )
        self.add_json_argument(
            parser, '[{"run_id", "outcome", "ok"} (a turn also "session_id", "turn_index"), ...]'
        )

    def handle(self, *args: Any, **options: Any) -> None:
        check_enqueue_options({"queue": None, **options})
        progress = None if options["json"] else self.progress_bar("draining")
        try:
            with self.run_output(), interruptible(self) as run:
                outcomes = drain_runs(
                    enqueue=options["enqueue"], progress=progress, cancel=run.token
                )
        finally:
            if progress is not None:
                progress.close()
        signal_name = run.state.signal_name
        if signal_name is not None:  # SIGINT/SIGTERM: the run in progress stopped cleanly
            items = [item(drained) for drained in outcomes]
            if not options["json"]:
                for drained in outcomes:
                    self.stdout.write(line(drained))
            stop(
                self,
                f"interrupted by {signal_name}: drain_runs stopped after {len(outcomes)} "
                "run(s), each left resumable; run drain_runs again for the rest",
                None,
                signal_exit_code(signal_name),
                outcomes=items,
            )
        code = exit_code(outcomes)
        if options["json"]:
            self.write_json(
                [{**item(drained), "ok": word(drained.outcome) in SETTLED} for drained in outcomes]
            )
        elif self.verbosity >= 1 or code != EXIT_OK:
            for drained in outcomes:
                if self.verbosity >= 1 or word(drained.outcome) not in SETTLED:
                    self.stdout.write(line(drained))
            self.stdout.write(summary(outcomes))
        if code != EXIT_OK:
            if not options["json"]:
                self.stderr.write(f"error: not every stale run completed ({summary(outcomes)})")
            raise Reported(summary(outcomes), returncode=code)


def item(drained: Drained) -> dict[str, Any]:
    return {"run_id": drained.run_id, "outcome": drained.outcome, **drained.about}


def line(drained: Drained) -> str:
    """``run <id>: <outcome>``; a turn's ``run <id> (session_id=S, turn_index=N): ...``."""
    about = ", ".join(f"{key}={value}" for key, value in drained.about.items())
    where = f" ({about})" if about else ""
    return shown(f"run {drained.run_id}{where}: {drained.outcome}")


def word(outcome: str) -> str:
    """The kind of an outcome: its first word (``completed``, ``failed``, ``skipped``...)."""
    return outcome.split(":", 1)[0].split()[0]


def exit_code(outcomes: Sequence[tuple[str, str]]) -> int:
    words = {word(outcome) for _, outcome in outcomes}
    if "not-durable" in words:
        return EXIT_NOT_DURABLE
    return EXIT_OK if words <= SETTLED else EXIT_FAILED


def summary(outcomes: Sequence[tuple[str, str]]) -> str:
    """``3 stale runs: 2 completed, 1 skipped`` (outcomes grouped by their first word)."""
    if not outcomes:
        return "no stale runs"
    counts = Counter(word(outcome) for _, outcome in outcomes)
    runs = "run" if len(outcomes) == 1 else "runs"
    details = ", ".join(f"{n} {kind}" for kind, n in counts.most_common())
    return f"{len(outcomes)} stale {runs}: {details}"
