"""Per-step persistence cost of warlock_ai, DBOS and LangGraph on one PostgreSQL, with a floor.

A run is 10 measured steps over a state holding one big value (row-like dicts of text, 1 KB to
10 MiB of JSON): a step 0 stores the big value, then each measured step changes one small key
and leaves the big value alone. The figure is the steady-state cost per step: the time from
the start of step 1 to the end of the run, divided by 10 (step 0's write is not in it).

Contenders, all on the same PostgreSQL 16 server (``tests.services.postgres_url()``: a pgserver,
or ``$WARLOCK_TEST_PG_URL``), each in a database of its own created here:

- ``floor``: one raw psycopg upsert of the whole state document per step (``ours_worker.py``);
- ``warlock-sync`` / ``warlock-async``: ``execute`` / ``aexecute`` on ``ai.snapshot.db()``
  (``ours_worker.py``, this interpreter);
- ``dbos``: a ``@DBOS.workflow()`` of ``@DBOS.step()``s (``dbos_worker.py``);
- ``langgraph``: a ``StateGraph`` on ``PostgresSaver``, ``durability="sync"``
  (``langgraph_worker.py``).

What each does per step is in each worker's docstring. DBOS and LangGraph run under
``.bench/peers-venv``, made here (``python -m venv`` + pip, the versions in ``PINS``) when it is
missing or holds other versions. Each worker is a long-lived subprocess answering JSON lines
(``common.serve``). Rounds are interleaved: for each round, for each size, for each contender
(the contenders' order rotated by one each round), one measurement of ``--runs`` runs, after
warm-up runs of every contender at every size. A measurement's figure is the median of its
runs; the table gives the median over rounds and the range.

Run: ``make bench-peers`` or ``.venv/bin/python bench/peers/run.py [--rounds R] [--runs N]
[--sizes 1KB,100KB,1MiB,10MiB] [--only floor,warlock-sync,warlock-async,dbos,langgraph]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))

from common import SIZES, big_value

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
PEERS_VENV = ROOT / ".bench" / "peers-venv"
#: The newest releases on PyPI on 2026-12-04.
PINS = {
    "dbos": "3.4.0",
    "langgraph": "1.2.24",
    "langgraph-checkpoint": "4.3.2",
    "langgraph-checkpoint-postgres": "3.2.0",
    "psycopg": "3.3.9",
    "psycopg-binary": "3.3.9",
}
CONTENDERS = ("floor", "warlock-sync", "warlock-async", "dbos", "langgraph")
WORKER_OF = {
    "floor": "ours",
    "warlock-sync": "ours",
    "warlock-async": "ours",
    "dbos": "dbos",
    "langgraph": "langgraph",
}
#: Runs per measurement by size: the whole default run takes under 10 minutes on 2 cores.
DEFAULT_RUNS = {"1KB": 100, "100KB": 30, "1MiB": 10, "10MiB": 3}
WARMUP_RUNS = {"1KB": 5, "100KB": 3, "1MiB": 2, "10MiB": 1}


def peers_python() -> str:
    """The interpreter of ``.bench/peers-venv``, made or brought to ``PINS`` first."""
    python = PEERS_VENV / "bin" / "python"
    if python.exists() and installed(python) == PINS:
        return str(python)
    if not python.exists():
        print(f"making {PEERS_VENV}", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(PEERS_VENV)], check=True)
    pins = [f"{name}=={pin}" for name, pin in PINS.items()]
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", *pins], check=True)
    found = installed(python)
    if found != PINS:
        raise SystemExit(f"{PEERS_VENV} holds {found}, not {PINS}")
    return str(python)


def installed(python: Path) -> dict[str, str | None]:
    code = (
        "import json, sys\nfrom importlib.metadata import version, PackageNotFoundError\n"
        "def v(n):\n    try:\n        return version(n)\n    except PackageNotFoundError:\n"
        "        return None\nprint(json.dumps({n: v(n) for n in sys.argv[1:]}))"
    )
    done = subprocess.run(
        [str(python), "-c", code, *PINS], capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout)


class Worker:
    """A long-lived subprocess answering one JSON line per request."""

    def __init__(self, name: str, python: str, url: str) -> None:
        self.name = name
        script = HERE / f"{name}_worker.py"
        self.process = subprocess.Popen(
            [python, str(script), url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self.hello = self.read()

    def read(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            code = self.process.wait()
            raise SystemExit(f"worker {self.name} exited (status {code}); its stderr is above")
        message = json.loads(line)
        if "error" in message:
            raise SystemExit(f"worker {self.name} failed:\n{message['error']}")
        return message

    def measure(self, contender: str, size: int, runs: int) -> list[float]:
        assert self.process.stdin is not None
        request = {"contender": contender, "size": size, "runs": runs}
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        return self.read()["samples"]

    def stop(self) -> None:
        """Close its stdin (it then exits); kill it if it has not within 30 seconds."""
        if self.process.poll() is None:
            try:
                if self.process.stdin is not None:
                    self.process.stdin.close()
                self.process.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()


def stored_bytes(url: str, size: int) -> int:
    """What PostgreSQL stores for the big value as jsonb (after TOAST compression)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TEMP TABLE sized (value JSONB)")
        conn.execute("INSERT INTO sized VALUES (%s::jsonb)", (json.dumps(big_value(size)),))
        return conn.execute("SELECT pg_column_size(value) FROM sized").fetchone()[0]


def measure(
    workers: dict[str, Worker],
    contenders: list[str],
    sizes: list[str],
    rounds: int,
    runs: dict[str, int],
) -> dict[str, dict[str, list[float]]]:
    """Seconds per step, per size and contender: one figure (a median of runs) per round."""
    for label in sizes:
        for contender in contenders:
            workers[WORKER_OF[contender]].measure(contender, SIZES[label], WARMUP_RUNS[label])
    found: dict[str, dict[str, list[float]]] = {s: {c: [] for c in contenders} for s in sizes}
    for r in range(rounds):
        order = contenders[r % len(contenders) :] + contenders[: r % len(contenders)]
        for label in sizes:
            for contender in order:
                worker = workers[WORKER_OF[contender]]
                samples = worker.measure(contender, SIZES[label], runs[label])
                found[label][contender].append(statistics.median(samples))
        print(f"round {r + 1} of {rounds} done", file=sys.stderr)
    return found


def ratio(value: float, base: float | None) -> str:
    return f"{value / base:.2f}" if base else "-"


def render(found: dict[str, dict[str, list[float]]], stored: dict[str, int]) -> str:
    lines = []
    for label, by_contender in found.items():
        encoded = len(json.dumps(big_value(SIZES[label])))
        lines += [
            f"### {label}: {encoded:,} bytes of JSON, {stored[label]:,} stored as jsonb",
            "",
            "| contender | ms per step, median (min-max) | x floor | x warlock_ai sync |",
            "|---|---:|---:|---:|",
        ]
        medians = {c: statistics.median(v) for c, v in by_contender.items()}
        floor, ours = medians.get("floor"), medians.get("warlock-sync")
        for contender, samples in by_contender.items():
            spread = f"{min(samples) * 1e3:.2f}-{max(samples) * 1e3:.2f}"
            cells = [
                contender,
                f"{medians[contender] * 1e3:.2f} ({spread})",
                ratio(medians[contender], floor),
                ratio(medians[contender], ours),
            ]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def render_ratios(found: dict[str, dict[str, list[float]]]) -> str:
    """Each contender's median as a multiple of the floor and of warlock_ai sync, by size."""
    sizes = list(found)
    contenders = list(next(iter(found.values())))
    lines = [
        "| contender | " + " | ".join(f"{s} x floor | {s} x ours" for s in sizes) + " |",
        "|---|" + "---:|" * (2 * len(sizes)),
    ]
    for contender in contenders:
        cells = [contender]
        for label in sizes:
            medians = {c: statistics.median(v) for c, v in found[label].items()}
            cells.append(ratio(medians[contender], medians.get("floor")))
            cells.append(ratio(medians[contender], medians.get("warlock-sync")))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument(
        "--runs",
        type=int,
        default=0,
        help="runs per measurement, every size (default by size: "
        + ", ".join(f"{s} {n}" for s, n in DEFAULT_RUNS.items())
        + ")",
    )
    parser.add_argument("--sizes", default=",".join(SIZES), help="comma-separated, of: %(default)s")
    parser.add_argument(
        "--only", default=",".join(CONTENDERS), help="comma-separated, of: %(default)s"
    )
    args = parser.parse_args()
    args.sizes = [s for s in args.sizes.split(",") if s]
    args.only = [c for c in args.only.split(",") if c]
    for s in args.sizes:
        if s not in SIZES:
            parser.error(f"unknown size {s!r}; use {', '.join(SIZES)}")
    for c in args.only:
        if c not in CONTENDERS:
            parser.error(f"unknown contender {c!r}; use {', '.join(CONTENDERS)}")
    return args


def main() -> None:
    from tests.services import create_database, drop_database, postgres_url

    args = options()
    runs = {s: args.runs or DEFAULT_RUNS[s] for s in args.sizes}
    needed = sorted({WORKER_OF[c] for c in args.only})
    pythons = {"ours": sys.executable}
    if "dbos" in needed or "langgraph" in needed:
        pythons["dbos"] = pythons["langgraph"] = peers_python()
    clock = time.perf_counter()
    server = postgres_url()
    stamp = f"bench_peers_{int(time.time())}"
    databases: list[str] = []
    workers: dict[str, Worker] = {}
    try:
        for name in needed:
            url = create_database(server, f"{stamp}_{name}")
            databases.append(f"{stamp}_{name}")
            workers[name] = Worker(name, pythons[name], url)
        found = measure(workers, args.only, args.sizes, args.rounds, runs)
        stored = {s: stored_bytes(server, SIZES[s]) for s in args.sizes}
    finally:
        for worker in workers.values():
            worker.stop()
        for name in databases:
            drop_database(server, name)
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    versions = {"warlock_ai": commit or "?"}
    for worker in workers.values():
        versions.update(worker.hello["versions"])
    settings = workers["ours"].hello if "ours" in workers else {}
    print(
        f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cores; "
        f"PostgreSQL {settings.get('server_version', '?')}, synchronous_commit "
        f"{settings.get('synchronous_commit', '?')}, TOAST compression "
        f"{settings.get('default_toast_compression', '?')}\n"
        + ", ".join(f"{name} {v}" for name, v in versions.items())
        + f"\n{args.rounds} interleaved rounds; runs per measurement: "
        + ", ".join(f"{s} {n}" for s, n in runs.items())
        + f"; {time.perf_counter() - clock:.0f} s in all\n"
    )
    print(render(found, stored))
    print(render_ratios(found))


if __name__ == "__main__":
    main()
