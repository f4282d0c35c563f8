"""Writers for the store conformance suite, in this process (threads) or in a real one.

Run as ``python -m tests.stores.worker COMMAND [ARGS]`` from the repository root. The store
comes from ``$WARLOCK_STORE_WORKER`` (JSON: ``kind``, and ``database``, the test's
``settings_dict`` for a database store, or ``redis_url`` and ``prefix``); a database worker
configures Django itself with that one database as "default". The worker prints one JSON line
when it is ready, waits for a line on stdin (so that two workers start together), does its
work and prints one JSON line saying what it did.

Commands:
    snapshots RUN_ID...        save a snapshot of each run id (unfenced), in order
    acquire RUN_ID...          try to take each run's lease as one new owner
    hammer RUN_ID COUNT        save COUNT snapshots of one run, reading it back after each save
    append NAME SESSION TURN... append one checkpoint per turn; conflicts are counted, not fatal
    hold RUN_ID                acquire the run's lease, print the owner, then sleep until killed

Also the builders the tests share with the workers: :func:`make_snapshot`, :func:`make_record`,
:func:`wait_for`.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

CONFIG_ENV = "WARLOCK_STORE_WORKER"
SNAPSHOT_PREFIX, CHECKPOINT_PREFIX = "snap:", "ckpt:"


# --- builders shared with the tests -------------------------------------------------------


def make_snapshot(run_id: str, state: dict[str, Any] | None = None, **fields: Any) -> Any:
    """A running ``WorkflowSnapshot`` of ``run_id`` (no lease claim: an unfenced save)."""
    from warlock_ai.core.workflow.snapshot import WorkflowSnapshot

    moment = datetime.now(UTC)
    values: dict[str, Any] = {
        "run_id": run_id,
        "workflow_name": "conformance",
        "signature": "0123456789abcdef",
        "version": "1",
        "input": {"n": 1},
        "state": state if state is not None else {},
        "steps": {},
        "next": "two",
        "status": "running",
        "started_at": moment,
        "saved_at": moment,
    }
    values.update(fields)
    return WorkflowSnapshot(**values)


def save_claimed(store: Any, snapshot: Any, owner: str | None, mode: str = "acquire") -> Any:
    """``store.save(snapshot)`` with the lease claim the run writer would pass (``owner=None``:
    none); returns what the store returned."""
    from warlock_ai.core.runs.leases import LeaseClaim

    claim = LeaseClaim(owner, mode) if owner is not None else None  # type: ignore[arg-type]
    return store.save(snapshot, claim=claim)


def make_record(
    turn: int,
    session_id: str = "sess-1",
    name: str = "support",
    state: dict[str, Any] | None = None,
    last_route: str | list[str] | None = "triage",
) -> Any:
    from warlock_ai.core.orchestrator.checkpoints import CheckpointRecord

    return CheckpointRecord(
        orchestrator_name=name,
        session_id=session_id,
        turn_index=turn,
        state=state if state is not None else {"turn": turn},
        last_route=last_route,
        signature="sig-support",
        version="v1",
        summarized_through=None,
    )


def start_thread(fn: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    """Run ``fn`` in a thread; the box gets its ``result`` or its ``error`` (any exception)."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = fn()
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    return thread, box


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "") -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(0.005)


# --- the work, shared by worker threads and worker processes ------------------------------


def write_snapshots(store: Any, run_ids: Iterable[str], writer: str) -> dict[str, Any]:
    saved = []
    for i, run_id in enumerate(run_ids):
        store.save(make_snapshot(run_id, {"writer": writer, "i": i}))
        saved.append(run_id)
    return {"saved": saved}


def hammer_snapshot(store: Any, run_id: str, count: int, writer: str) -> dict[str, Any]:
    """Save ``run_id`` ``count`` times; every read in between must be a whole snapshot."""
    torn = []
    for i in range(count):
        state = {"writer": writer, "i": i, "check": f"{writer}/{i}", "pad": "é" * (200 + i)}
        store.save(make_snapshot(run_id, state))
        seen = store.load(run_id)
        got = seen.state if seen is not None else None
        if not got or got.get("check") != f"{got.get('writer')}/{got.get('i')}":
            torn.append(repr(got)[:200])
    return {"saved": count, "torn": torn}


def append_turns(
    store: Any, name: str, session_id: str, turns: Iterable[int], writer: str
) -> dict[str, Any]:
    from warlock_ai.core.errors import CheckpointConflictError

    landed, conflicts = [], []
    for turn in turns:
        record = make_record(turn, session_id, name, state={"writer": writer, "turn": turn})
        try:
            store.save(record)
        except CheckpointConflictError:
            conflicts.append(turn)
        else:
            landed.append(turn)
    return {"landed": landed, "conflicts": conflicts}


def acquire_runs(store: Any, run_ids: Iterable[str], writer: str) -> dict[str, Any]:
    """Try to take the lease of each run as one new owner; count wins and refusals."""
    from warlock_ai.core.errors import LeaseHeldError
    from warlock_ai.core.runs.leases import new_owner_id

    # An owner "on another host": the race is about atomicity, and a holder on this host
    # that has already exited would rightly be taken over as dead (owner_is_dead).
    owner = "elsewhere:" + new_owner_id().split(":", 1)[1]
    won, held = [], []
    for run_id in run_ids:
        try:
            save_claimed(store, make_snapshot(run_id, {"owner": owner}), owner)
        except LeaseHeldError:
            held.append(run_id)
        else:
            won.append(run_id)
    return {"owner": owner, "won": won, "held": held}


def run_command(store: Any, command: str, args: list[str], writer: str) -> dict[str, Any]:
    if command == "snapshots":
        return write_snapshots(store, args, writer)
    if command == "hammer":
        return hammer_snapshot(store, args[0], int(args[1]), writer)
    if command == "acquire":
        return acquire_runs(store, args, writer)
    if command == "append":
        return append_turns(store, args[0], args[1], map(int, args[2:]), writer)
    raise SystemExit(f"worker: unknown command {command!r}")


# --- the process --------------------------------------------------------------------------


def configure_django(database: dict[str, Any]) -> None:
    import django
    from django.conf import settings

    settings.configure(
        DATABASES={"default": database},
        INSTALLED_APPS=["warlock_ai"],
        USE_TZ=True,
        TIME_ZONE="UTC",
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
    )
    django.setup()


def build_store(
    config: dict[str, Any], contract: str, using: str | None = "default", **options: Any
) -> Any:
    """The store of ``config`` for ``contract`` ("snapshot" or "checkpoint"); a database
    store uses the alias ``using``."""
    import warlock_ai as ai

    factories = ai.snapshot if contract == "snapshot" else ai.checkpoint
    kind = config["kind"]
    if config.get("database") is not None:
        return factories.db(using=using, **options)
    if kind == "redis":
        part = SNAPSHOT_PREFIX if contract == "snapshot" else CHECKPOINT_PREFIX
        return factories.redis(url=config["redis_url"], prefix=config["prefix"] + part, **options)
    raise SystemExit(f"worker: a {kind!r} store cannot be shared with another process")


def _say(data: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(data) + "\n")
    sys.stdout.flush()


def main(argv: list[str]) -> int:
    command, args = argv[0], argv[1:]
    config = json.loads(os.environ[CONFIG_ENV])
    writer = f"pid-{os.getpid()}"
    if command == "hold" and config["kind"] == "memory":
        # A memory store lives in the test's process: the test writes the lease for us.
        from warlock_ai.core.runs.leases import new_owner_id

        _say({"ready": True, "owner": new_owner_id()})
        time.sleep(600)
        return 0
    if config.get("database") is not None:
        configure_django(config["database"])
    contract = "checkpoint" if command == "append" else "snapshot"
    store = build_store(config, contract)
    if command == "hold":
        from warlock_ai.core.runs.leases import new_owner_id

        owner = new_owner_id()
        save_claimed(store, make_snapshot(args[0], {"held_by": owner}), owner)
        _say({"ready": True, "owner": owner})
        time.sleep(600)
        return 0
    # Touch the store once so that connecting is not part of the race.
    store.load("warm", "up") if contract == "checkpoint" else store.load("warm-up")
    _say({"ready": True})
    sys.stdin.readline()
    _say({"writer": writer, **run_command(store, command, args, writer)})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
