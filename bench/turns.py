"""Per-turn cost of the orchestrator, and what 500 turns of one session store.

(a) Per turn, on SQLite and PostgreSQL 16 (pgserver, or ``$WARLOCK_TEST_PG_URL``): one
checkpoint append through ``ai.checkpoint.db()`` (the ORM store), and whole ``execute`` turns
of an orchestrator with one trivial callback intent (``iterate=False``; ``iterate=True`` with
one iteration; ``iterate=False`` with ``session_lock=False``, so the lock's share shows), next
to the floor: a raw ``INSERT`` of the same row into the same table (psycopg on PostgreSQL,
the ``sqlite3`` module on SQLite; autocommit, the server's own ``synchronous_commit``). Each
turn is timed on its own: median and p95 in ms, and the ratio of the medians to the floor.

(b) Storage, on PostgreSQL: one session of ``--storage-turns`` turns (``iterate=True``) whose
state grows a little each turn (the message appended to a list capped at the last 20, a
counter), in a fresh database per setting (``keep_snapshots=100``, the default, and ``"all"``):
``pg_total_relation_size`` of the checkpoint and snapshot tables as left (autovacuum running
as it does), and after ``VACUUM FULL`` (the live rows only). ``--cap 0`` keeps every message
instead (a state that grows without bound).

With ``--langgraph-python PATH`` (an interpreter with ``langgraph`` and
``langgraph-checkpoint-postgres``) the same session runs through LangGraph's ``PostgresSaver``
on the same server (``bench/langgraph_turns.py``).

Run: ``.venv/bin/python bench/turns.py [--turns 300] [--rounds 3] [--storage-turns 500]
[--cap 20] [--databases sqlite,postgres] [--langgraph-python PATH]``.
"""

from __future__ import annotations

import argparse
import atexit
import json
import platform
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import warlock_ai as ai  # noqa: E402

WARMUP = 20  # turns run before the timed ones, in every series
TABLE = "warlock_ai_checkpoint"
COLUMNS = (
    "orchestrator_name, session_id, turn_index, state, last_route, signature, version, "
    "summarized_through, lock_acquired_at, lock_expires_at, saved_at"
)


# Messages are words drawn from a fixed list by a seeded generator: text that compresses
# about as well as prose does (a repeated sentence would compress to almost nothing).
_WORD_LIST = (
    "order parcel refund charge card account login password reset invoice receipt delivery "
    "address week yesterday today please thanks help still again never arrived broken wrong "
    "item size colour return label tracking number email phone support agent manager waiting "
    "days hours minutes cancel subscription plan upgrade price discount code error app website"
)
WORDS = _WORD_LIST.split()


def message(n: int) -> str:
    """Turn ``n``'s input: about 90 characters, like a short chat message."""
    rng = random.Random(n)
    text = f"message {n}:"
    while len(text) < 90:
        text += " " + rng.choice(WORDS)
    return text


def grow(cap: int) -> Callable[[Any], dict[str, Any]]:
    """The intent: append the message (keep the last ``cap``; 0 keeps all), count the turn."""

    def chat(ctx: Any) -> dict[str, Any]:
        messages = [*ctx.state.get("messages", []), ctx.input]
        kept = messages[-cap:] if cap else messages
        return {"messages": kept, "count": ctx.state.get("count", 0) + 1}

    return chat


def orchestrator(alias: str, *, iterate: bool, cap: int = 20, **options: Any) -> ai.Orchestrator:
    return ai.orchestrator(
        name="bench-turns",
        intents={"chat": ai.intent(grow(cap), description="d", next=lambda ctx: ai.END)},
        route=lambda ctx: "chat",
        iterate=iterate,
        checkpoint_store=ai.checkpoint.db(using=alias),
        snapshot_store=ai.snapshot.db(using=alias) if iterate else None,
        **options,
    )


# --- setup ------------------------------------------------------------------------------------


#: The storage runs (b): database alias -> (keep_snapshots, a plain VACUUM every N turns).
STORAGE_RUNS: dict[str, tuple[int | str, int]] = {
    "keep100": (100, 0),
    "keep100v": (100, 50),
    "keepall": ("all", 0),
}


def setup_django(databases: list[str], workdir: str, storage: int) -> dict[str, str]:
    """One database alias per timed database, plus a fresh PostgreSQL database for each
    storage run (``STORAGE_RUNS``); migrate them all. Returns their URLs."""
    import django
    from django.conf import settings
    from django.core.management import call_command

    from tests.services import create_database, database_settings, postgres_url

    urls: dict[str, str] = {}
    stamp = int(time.time())
    for alias in databases:
        if alias == "sqlite":
            urls[alias] = f"sqlite://{workdir}/turns.sqlite3"  # sqlite:///abs/path
        elif alias == "postgres":
            urls[alias] = create_database(postgres_url(), f"bench_turns_{stamp}")
        else:
            raise SystemExit(f"unknown database {alias!r}; use sqlite and/or postgres")
    if storage:
        for alias in STORAGE_RUNS:
            urls[alias] = create_database(postgres_url(), f"bench_turns_{alias}_{stamp}")
    configured = {alias: database_settings(url) for alias, url in urls.items()}
    configured["default"] = configured[next(iter(configured))]
    settings.configure(
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "warlock_ai"],
        DATABASES=configured,
        USE_TZ=True,
        DEBUG=False,
        WARLOCK_AI={"FLOW_MODULES": [], "SNAPSHOT_STORE": None},
    )
    django.setup()
    for alias in configured:
        call_command("migrate", database=alias, verbosity=0)
    return urls


# --- (a) per-turn cost --------------------------------------------------------------------------


def summary(samples: list[float]) -> tuple[float, float]:
    """(median, p95) in ms."""
    p95 = statistics.quantiles(samples, n=20, method="inclusive")[18]
    return statistics.median(samples) * 1e3, p95 * 1e3


def sample_state(cap: int = 20) -> dict[str, Any]:
    return {"messages": [message(n) for n in range(cap)], "count": cap}


def time_turns(orch: ai.Orchestrator, session: str, turns: int) -> list[float]:
    samples = []
    for n in range(WARMUP + turns):
        start = time.perf_counter()
        result = orch.execute(message(n), session_id=session)
        took = time.perf_counter() - start
        if result.error is not None:
            raise result.error
        if n >= WARMUP:
            samples.append(took)
    return samples


def time_appends(alias: str, session: str, turns: int) -> list[float]:
    """``store.save`` of a new turn's record, each turn on its own."""
    store = ai.checkpoint.db(using=alias)
    state = sample_state()
    samples = []
    for n in range(WARMUP + turns):
        record = ai.CheckpointRecord(
            orchestrator_name="bench-append",
            session_id=session,
            turn_index=n,
            state=state,
            last_route="chat",
            signature="0123abcd",
            version=None,
        )
        start = time.perf_counter()
        store.save(record)
        took = time.perf_counter() - start
        if n >= WARMUP:
            samples.append(took)
    return samples


def floor_row(session: str, n: int, state_json: str) -> tuple[Any, ...]:
    return ("bench-floor", session, n, state_json, '"chat"', "0123abcd", None)


def time_floor_postgres(
    url: str, session: str, turns: int, client_side: bool = False
) -> tuple[list[float], str]:
    """A raw psycopg INSERT of the same row into the same table, autocommit: with psycopg's
    defaults (server-side binding, prepared from the 5th execution), or with client-side
    binding (``ClientCursor``: the whole statement text every time, as Django sends it)."""
    import psycopg

    state_json = json.dumps(sample_state(), separators=(",", ":"))
    sql = (
        f"INSERT INTO {TABLE} ({COLUMNS}) "
        "VALUES (%s, %s, %s, %s::jsonb, %s::jsonb, %s, %s, NULL, NULL, NULL, now())"
    )
    samples = []
    factory = psycopg.ClientCursor if client_side else psycopg.Cursor
    with psycopg.connect(url, autocommit=True, cursor_factory=factory) as conn:
        commit = conn.execute("SHOW synchronous_commit").fetchone()[0]
        for n in range(WARMUP + turns):
            start = time.perf_counter()
            conn.execute(sql, floor_row(session, n, state_json))
            took = time.perf_counter() - start
            if n >= WARMUP:
                samples.append(took)
    return samples, commit


def time_floor_sqlite(path: str, session: str, turns: int) -> tuple[list[float], str]:
    """A raw ``sqlite3`` INSERT of the same row into the same table, autocommit."""
    state_json = json.dumps(sample_state(), separators=(",", ":"))
    sql = (
        f"INSERT INTO {TABLE} ({COLUMNS}) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, NULL, NULL, NULL, datetime('now'))"
    )
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
        sync = conn.execute("PRAGMA synchronous").fetchone()[0]
        samples = []
        for n in range(WARMUP + turns):
            start = time.perf_counter()
            conn.execute(sql, floor_row(session, n, state_json))
            took = time.perf_counter() - start
            if n >= WARMUP:
                samples.append(took)
    finally:
        conn.close()
    return samples, f"journal_mode={mode}, synchronous={sync}"


def statements_per_turn(alias: str, iterate: bool) -> tuple[int, int]:
    """Statements one turn sends on a new session, and past ``keep_snapshots`` (100) turns,
    where every turn also prunes the oldest row."""
    from django.db import connections
    from django.test.utils import CaptureQueriesContext

    orch = orchestrator(alias, iterate=iterate)
    session = f"count-{iterate}"
    counts = []
    for n in range(102):
        with CaptureQueriesContext(connections[alias]) as captured:
            orch.execute(message(n), session_id=session)
        if n in (0, 101):
            counts.append(len(captured))
    return counts[0], counts[1]


def engine_only(turns: int, rounds: int) -> list[float]:
    """Whole turns on the memory checkpoint store: the engine's share of a turn."""
    samples: list[float] = []
    for r in range(rounds):
        orch = ai.orchestrator(
            name="bench-turns",
            intents={"chat": ai.intent(grow(20), description="d", next=lambda ctx: ai.END)},
            route=lambda ctx: "chat",
            checkpoint_store=ai.checkpoint.memory(),
        )
        samples += time_turns(orch, f"m{r}", turns)
    return samples


def measure_turns(alias: str, url: str, turns: int, rounds: int) -> tuple[list[list[str]], str]:
    label = "PostgreSQL 16" if alias == "postgres" else "SQLite"
    series: dict[str, list[float]] = {}
    notes = ""
    for r in range(rounds):
        if alias == "postgres":
            floor, commit = time_floor_postgres(url, f"f{r}", turns)
            client, _ = time_floor_postgres(url, f"c{r}", turns, client_side=True)
            series.setdefault("floor-client", []).extend(client)
            notes = f"synchronous_commit={commit}"
        else:
            floor, notes = time_floor_sqlite(url.removeprefix("sqlite://"), f"f{r}", turns)
        series.setdefault("floor", []).extend(floor)
        series.setdefault("append", []).extend(time_appends(alias, f"a{r}", turns))
        for key, iterate, options in (
            ("turn", False, {}),
            ("turn-keepall", False, {"keep_snapshots": "all"}),
            ("turn-nolock", False, {"session_lock": False}),
            ("turn-iterate", True, {}),
        ):
            orch = orchestrator(alias, iterate=iterate, **options)
            series.setdefault(key, []).extend(time_turns(orch, f"{key}-{r}", turns))
    plain, iterating = statements_per_turn(alias, False), statements_per_turn(alias, True)
    lock = orchestrator(alias, iterate=False).lock_for(ai.checkpoint.db(using=alias))
    names = {
        "floor": "floor: raw INSERT of the row (1 statement)",
        "floor-client": "raw INSERT, client-side binding as Django sends it",
        "append": "ai.checkpoint.db().save(record) (1 statement)",
        "turn": "execute turn, iterate=False ({}, {} past turn 100 statements)".format(*plain),
        "turn-keepall": 'execute turn, iterate=False, keep_snapshots="all" (no prune)',
        "turn-nolock": "execute turn, iterate=False, session_lock=False",
        "turn-iterate": "execute turn, iterate=True, 1 iteration ({}, {})".format(*iterating),
    }
    floor_median = summary(series["floor"])[0]
    rows = []
    for key, name in names.items():
        if key not in series:
            continue
        median, p95 = summary(series[key])
        rows.append([label, name, f"{median:.2f}", f"{p95:.2f}", f"{median / floor_median:.1f}"])
    lock_note = f"session lock in force: {lock!r} (cross_process={type(lock).cross_process})"
    return rows, f"{label}: {notes}; {lock_note}"


# --- (b) storage ----------------------------------------------------------------------------------


def sizes(url: str) -> dict[str, int]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        found = conn.execute(
            "SELECT pg_total_relation_size('warlock_ai_checkpoint'), "
            "pg_total_relation_size('warlock_ai_snapshot'), "
            "(SELECT count(*) FROM warlock_ai_checkpoint), "
            "(SELECT coalesce(sum(pg_column_size(state)), 0) FROM warlock_ai_checkpoint), "
            "(SELECT coalesce(pg_column_size(state), 0) FROM warlock_ai_checkpoint "
            " ORDER BY turn_index DESC LIMIT 1)"
        ).fetchone()
    keys = ("checkpoint", "snapshot", "rows", "state_bytes", "last_state")
    return dict(zip(keys, found, strict=True))


def vacuum(url: str, full: bool = False) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        what = "FULL " if full else ""
        conn.execute(f"VACUUM {what}warlock_ai_checkpoint, warlock_ai_snapshot")


def measure_storage(urls: dict[str, str], turns: int, cap: int) -> list[list[str]]:
    rows = []
    for alias, (keep, every) in STORAGE_RUNS.items():
        empty = sizes(urls[alias])
        orch = orchestrator(alias, iterate=True, cap=cap, keep_snapshots=keep)
        took = 0.0
        for n in range(turns):
            start = time.perf_counter()
            result = orch.execute(message(n), session_id="storage")
            took += time.perf_counter() - start
            if result.error is not None:
                raise result.error
            if every and (n + 1) % every == 0:
                vacuum(urls[alias])
        left = sizes(urls[alias])
        vacuum(urls[alias], full=True)
        live = sizes(urls[alias])
        mb = 1024 * 1024
        rows.append(
            [
                str(keep),
                f"every {every} turns" if every else "none (autovacuum)",
                str(left["rows"]),
                f"{left['last_state']:,}",
                f"{left['checkpoint'] / mb:.2f}",
                f"{left['snapshot'] / mb:.2f}",
                f"{live['checkpoint'] / mb:.2f}",
                f"{live['snapshot'] / mb:.2f}",
                f"{empty['checkpoint'] / mb:.2f}",
                f"{took / turns * 1e3:.1f}",
            ]
        )
    return rows


def langgraph(python: str, server_url: str, turns: int, cap: int) -> str:
    from tests.services import create_database

    url = create_database(server_url, f"bench_langgraph_{int(time.time())}")
    done = subprocess.run(
        [python, str(ROOT / "bench" / "langgraph_turns.py"), url, str(turns), str(cap)],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if done.returncode != 0:
        raise SystemExit(f"bench/langgraph_turns.py failed:\n{done.stdout}{done.stderr}")
    return done.stdout.rstrip()


# --- main ---------------------------------------------------------------------------------------


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=300, help="timed turns per series")
    parser.add_argument("--rounds", type=int, default=3, help="series per measure, pooled")
    parser.add_argument("--storage-turns", type=int, default=500, help="0 skips (b)")
    parser.add_argument("--cap", type=int, default=20, help="messages kept in the state (b)")
    parser.add_argument("--databases", default="sqlite,postgres")
    parser.add_argument("--langgraph-python", default="", help="an interpreter with langgraph")
    args = parser.parse_args()
    databases = [d for d in args.databases.split(",") if d]
    workdir = tempfile.mkdtemp(prefix="warlock-bench-turns-")
    atexit.register(shutil.rmtree, workdir, ignore_errors=True)
    urls = setup_django(databases, workdir, args.storage_turns)
    print(
        f"python {platform.python_version()} on {platform.machine()}, {args.rounds} x "
        f"{args.turns} timed turns per row (after {WARMUP} untimed), one session per series\n"
    )
    rows, notes = [], []
    for alias in databases:
        found, note = measure_turns(alias, urls[alias], args.turns, args.rounds)
        rows += found
        notes.append(note)
    if rows:
        median, p95 = summary(engine_only(args.turns, args.rounds))
        row = ["none", "execute turn, iterate=False, ai.checkpoint.memory()", f"{median:.2f}"]
        rows.append([*row, f"{p95:.2f}", "-"])
        header = ["database", "per turn", "median ms", "p95 ms", "x floor (median)"]
        print(table(header, rows))
        print("\n" + "\n".join(notes))
    if args.storage_turns:
        print(
            f"\n{args.storage_turns} turns of one session, iterate=True, state: the last "
            f"{args.cap or 'all'} messages (~90 characters each) and a counter; PostgreSQL 16\n"
        )
        header = [
            "keep_snapshots",
            "VACUUM",
            "rows",
            "last row's state, bytes stored",
            "checkpoint MB",
            "snapshot MB",
            "checkpoint MB after VACUUM FULL",
            "snapshot MB after VACUUM FULL",
            "empty checkpoint MB",
            "ms per turn",
        ]
        print(table(header, measure_storage(urls, args.storage_turns, args.cap)))
        if args.langgraph_python:
            from tests.services import postgres_url

            print()
            print(langgraph(args.langgraph_python, postgres_url(), args.storage_turns, args.cap))


if __name__ == "__main__":
    main()
