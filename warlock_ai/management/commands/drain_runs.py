from collections import Counter
from typing import Any

from warlock_ai.management.base import RunCommand
from warlock_ai.operations import drain_runs


class Command(RunCommand):
    help = (
        "Resume every running run whose worker is gone (its lease expired, or its process on "
        "this host died), inline or, with --enqueue, as rq jobs. Safe on every worker boot "
        "and from several hosts at once: leases decide who runs what, and a run another host "
        "took is skipped. Prints one line per run and a summary; exits 0 when nothing was "
        "stale, and also when a resumed run failed (its snapshot says why)."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--enqueue",
            action="store_true",
            help="enqueue a resume job per stale run (django-rq) instead of running it here",
        )
        parser.add_argument(
            "--json", action="store_true", help='print [{"run_id", "outcome"}, ...] as JSON'
        )

    def handle(self, *args: Any, **options: Any) -> None:
        progress = None if options["json"] else self.progress_bar("draining")
        try:
            outcomes = drain_runs(enqueue=options["enqueue"], progress=progress)
        finally:
            if progress is not None:
                progress.close()
        if options["json"]:
            self.write_json(
                [{"run_id": run_id, "outcome": outcome} for run_id, outcome in outcomes]
            )
            return
        if self.verbosity < 1:
            return
        for run_id, outcome in outcomes:
            self.stdout.write(f"run {run_id}: {outcome}")
        self.stdout.write(summary(outcomes))


def summary(outcomes: list[tuple[str, str]]) -> str:
    """``3 stale runs: 2 completed, 1 skipped`` (outcomes grouped by their first word)."""
    if not outcomes:
        return "no stale runs"
    counts = Counter(outcome.split(":", 1)[0].split()[0] for _, outcome in outcomes)
    runs = "run" if len(outcomes) == 1 else "runs"
    details = ", ".join(f"{n} {word}" for word, n in counts.most_common())
    return f"{len(outcomes)} stale {runs}: {details}"
