from dataclasses import replace
from datetime import datetime
from typing import Any

from django.core.management.base import CommandError
from django.utils import timezone

from warlock_ai.core.runs.kinds import kind_names
from warlock_ai.core.runs.leases import LeaseState, lease_state
from warlock_ai.core.runs.snapshots import COMPLETED, STATUSES
from warlock_ai.management.base import RunCommand, int_option
from warlock_ai.operations import snapshot_store
from warlock_ai.registry import registry
from warlock_ai.stores.base import RunInfo, RunQuery, SnapshotStore

FIELDS = (
    "run_id",
    "kind",
    "name",
    "status",
    "next_step",
    "started_at",
    "saved_at",
    "finished_at",
    "lease_owner",
    "lease_expires_at",
    "cancel_requested_at",
)
DEFAULT_LIMIT = 50
MAX_LIMIT = 1_000_000_000


class Command(RunCommand):
    help = (
        "List stored runs, most recently saved first: run id, flow, status, next step, age "
        "since the last save, version, signature, whether the flow's registered definition "
        "drifted from the run's (yes/no, for runs that can still resume; - when the run is "
        "completed or its flow is not registered), and who holds the lease until when. "
        "Filters combine. --json prints a JSON array with the same fields (ISO 8601 "
        "timestamps) for scripts. Exits with 1 on bad input."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--status",
            default=None,
            help=f"comma-separated statuses to show: {', '.join(STATUSES)}",
        )
        parser.add_argument(
            "--flow", default=None, help="only runs of this flow (kind:name to pick a kind)"
        )
        parser.add_argument(
            "--stale",
            action="store_true",
            help="only running runs whose worker is gone (lease expired, or its process on this "
            "host died): what drain_runs would resume",
        )
        parser.add_argument(
            "--limit",
            type=int_option("--limit", 0, MAX_LIMIT, zero="shows all"),
            default=DEFAULT_LIMIT,
            help=f"show at most N runs (default {DEFAULT_LIMIT}; 0 shows all)",
        )
        self.add_json_argument(parser, "a JSON array of the runs")

    def handle(self, *args: Any, **options: Any) -> None:
        if not 0 <= options["limit"] <= MAX_LIMIT:  # call_command skips the argparse type
            raise CommandError(
                f"--limit must be from 0 (all) to {MAX_LIMIT}, got {options['limit']}"
            )
        store = snapshot_store()
        query = self.query(options, store)
        limit = options["limit"]
        rows = [self.row(info) for info in store.runs(replace(query, limit=limit or None))]
        if options["json"]:
            self.write_json(rows)
            return
        if not rows:
            if self.verbosity >= 1:
                self.stdout.write("no runs match")
            return
        self.write_runs(rows)
        # Counted only when the page is full: otherwise what is shown is all there is.
        total = store.count(query) if limit and len(rows) == limit else len(rows)
        if len(rows) < total:
            self.stdout.write(f"showing {len(rows)} of {total} runs (--limit 0 shows all)")
        elif self.verbosity >= 1:
            self.stdout.write(f"{total} run{'s' if total != 1 else ''}")

    def query(self, options: dict[str, Any], store: SnapshotStore) -> RunQuery:
        statuses = None
        if options["status"] is not None:
            statuses = frozenset(self.parse_choices("--status", options["status"], STATUSES))
        kind, name = None, None
        if options["flow"] is not None:
            kind, name = self.flow(options["flow"], store)
        return RunQuery(statuses=statuses, kind=kind, name=name, stale=options["stale"])

    @staticmethod
    def flow(flow: str, store: SnapshotStore) -> tuple[str | None, str]:
        """``(kind, name)`` of ``--flow``; a name neither registered nor stored is a typo."""
        named_kind = flow.split(":", 1)[0] in kind_names()
        kind, _, name = flow.partition(":") if named_kind else ("", "", flow)
        registered = any(d.name == name and kind in ("", d.kind) for d in registry.all())
        if not registered and not store.runs(RunQuery(kind=kind or None, name=name, limit=1)):
            registry.find(flow)  # raises UnknownFlowError listing the registered flows
        return kind or None, name

    @staticmethod
    def row(info: RunInfo) -> dict[str, Any]:
        age = (timezone.now() - info.saved_at).total_seconds()
        return {
            "run_id": info.run_id,
            "flow": info.name,
            "kind": info.kind,
            "status": info.status,
            "next_step": info.next_step,
            "age_seconds": round(age, 3),
            "version": info.version,
            "signature": info.signature,
            "drifted": drifted(info),
            **{field: getattr(info, field) for field in FIELDS[5:]},
            # Why the stored snapshot cannot be read (resume refuses it; discard_run works).
            "unreadable": info.unreadable,
            # Each execution: worker, started_at, resumed_at, ended_at, end, detail.
            "attempts": list(info.attempts) if info.attempts is not None else None,
        }

    def write_runs(self, rows: list[dict[str, Any]]) -> None:
        header = (
            "RUN ID",
            "FLOW",
            "STATUS",
            "NEXT STEP",
            "AGE",
            "VERSION",
            "SIGNATURE",
            "DRIFTED",
            "LEASE",
        )
        self.write_table(
            header,
            [
                (
                    r["run_id"],
                    r["flow"],
                    r["status"]
                    + (" (cancel requested)" if r["cancel_requested_at"] else "")
                    + (" (unreadable)" if r["unreadable"] else ""),
                    r["next_step"] or "-",
                    format_age(r["age_seconds"]),
                    r["version"] or "-",
                    r["signature"] or "-",
                    {True: "yes", False: "no", None: "-"}[r["drifted"]],
                    format_lease(r["lease_owner"], r["lease_expires_at"], r["status"]),
                )
                for r in rows
            ],
        )


def drifted(info: RunInfo) -> bool | None:
    """Whether the registered definition of the run's flow has another signature than the
    one the run was started with: decided only for runs that can still resume (every status
    but completed); None when the run is completed, or its flow or signature is unknown."""
    if info.status == COMPLETED or info.signature is None:
        return None
    definition = registry.lookup(info.kind, info.name)
    if definition is None:
        return None
    return bool(definition.signature != info.signature)


def format_age(seconds: float) -> str:
    """``45s``, ``12m``, ``3h``, ``4d``: the largest whole unit."""
    seconds = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def format_lease(owner: str | None, expires_at: datetime | None, status: str) -> str:
    """The lease as ``leases.lease_state`` reads it: who holds the run until when, or why
    nobody does any more."""
    state = lease_state(owner, expires_at, timezone.now(), status)
    if state is LeaseState.NONE:
        return "-"
    if state is LeaseState.LIVE and expires_at is not None:
        return f"{owner} until {timezone.localtime(expires_at):%Y-%m-%d %H:%M:%S}"
    return f"{owner} ({state.value})"
