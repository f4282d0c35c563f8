"""Drive the example project's ``manage.py`` in child processes and read its database directly.

The children use ``example_project.settings`` on the database of ``fresh_project_db`` (its
``env`` carries ``WARLOCK_DB_URL``). The database is read with ``sqlite3`` / ``psycopg``, not
through Django, so what a test sees is what a killed child left on disk.
"""

from __future__ import annotations

import json
import os
import queue
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from contextlib import closing
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

REPO_ROOT = Path(__file__).resolve().parents[2]
SETTINGS = "example_project.settings"
FLOW = "catalog-import"
#: The settings of children that run the orchestrators of tests/turns_app (and django-rq).
TURN_SETTINGS = "tests.workers.settings"
FEED = REPO_ROOT / "example_project" / "catalog" / "data" / "vendor_feed.json"
COMMAND_TIMEOUT = 60  # seconds any one manage.py command may take

# Columns of warlock_ai_snapshot holding JSON (text on SQLite, jsonb on PostgreSQL).
_JSON_COLUMNS = ("input", "state", "steps", "usage", "error", "fingerprint", "attempts")


def project_env(db: dict[str, Any], **extra: str) -> dict[str, str]:
    """``db["env"]`` for a ``manage.py`` child: example settings (``db["settings"]`` when
    given), unbuffered, no model delay."""
    settings = db.get("settings", SETTINGS)
    env = {**db["env"], "DJANGO_SETTINGS_MODULE": settings, "PYTHONUNBUFFERED": "1"}
    env["WARLOCK_DEMO_WRITE_DELAY"] = "0"
    env.pop("CATALOG_IMPORT_VERSION", None)  # version 1 unless a test says otherwise
    env.update(extra)
    return env


def manage_args(*args: str) -> list[str]:
    return [sys.executable, "manage.py", *args]


def manage(
    db: dict[str, Any], *args: str, timeout: float = COMMAND_TIMEOUT, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run ``manage.py *args`` to the end; stdout and stderr captured as text."""
    return subprocess.run(
        manage_args(*args),
        cwd=REPO_ROOT,
        env=project_env(db, **env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def check(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    """``result`` when it exited 0; otherwise an assertion showing its output."""
    assert result.returncode == 0, describe(result)
    return result


def describe(result: subprocess.CompletedProcess[str]) -> str:
    return (
        f"{' '.join(map(str, result.args[1:]))} exited {result.returncode}\n"
        f"--- stdout\n{result.stdout}--- stderr\n{result.stderr}"
    )


def migrate(db: dict[str, Any]) -> None:
    check(manage(db, "migrate", "--no-input", "-v", "0"))


def shell(db: dict[str, Any], code: str, **env: str) -> str:
    """``manage.py shell -c code``; returns its stdout."""
    return check(manage(db, "shell", "-v", "0", "-c", code, **env)).stdout


def execute_in_shell(db: dict[str, Any], run_id: str, payload: dict[str, Any]) -> str:
    """Run catalog-import through the Python API (not execute_run); returns the status."""
    code = (
        "import json\n"
        "from warlock_ai.registry import registry\n"
        f"result = registry.find({FLOW!r}).execute(json.loads({json.dumps(payload)!r}), "
        f"run_id={run_id!r})\n"
        "print(result.report.status)\n"
    )
    return shell(db, code).strip().splitlines()[-1]


class LineReader:
    """Read a child's stdout line by line in a thread; wait for lines with a deadline."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, predicate: Any, count: int, timeout: float) -> list[str]:
        """Block until ``count`` lines matched ``predicate``; fail after ``timeout`` seconds
        or when the child closes its stdout first."""
        deadline = time.monotonic() + timeout
        matched: list[str] = []
        while len(matched) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"after {timeout:.0f} s only {len(matched)} of {count} expected lines; "
                    "output so far:\n" + "\n".join(self.lines)
                )
            try:
                line = self._queue.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(
                    f"the child closed its output (exit code {self.process.poll()}) after "
                    f"{len(matched)} of {count} expected lines; output:\n" + "\n".join(self.lines)
                )
            self.lines.append(line)
            if predicate(line):
                matched.append(line)
        return matched

    def join(self, timeout: float = 10) -> None:
        self._thread.join(timeout)


# --- reading the project database directly ----------------------------------------------


def _connect(db: dict[str, Any]) -> Any:
    if db["vendor"] == "sqlite":
        return sqlite3.connect(urlsplit(db["url"]).path, timeout=10)
    import psycopg

    return psycopg.connect(db["url"], autocommit=True, connect_timeout=5)


def query(db: dict[str, Any], sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    """Rows of ``sql`` (``?`` placeholders, rewritten for psycopg) as dicts."""
    if db["vendor"] != "sqlite":
        sql = sql.replace("?", "%s")
    with closing(_connect(db)) as conn:
        cursor = conn.cursor()
        cursor.execute(sql, params)
        names = [c[0] for c in cursor.description]
        rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        if db["vendor"] == "sqlite":
            conn.commit()
    return rows


def _decode(row: dict[str, Any], vendor: str) -> dict[str, Any]:
    """SQLite returns JSON columns as text; psycopg decodes jsonb itself (a JSON string value
    comes back as a ``str`` that must not be decoded again)."""
    if vendor == "sqlite":
        for key in _JSON_COLUMNS:
            if isinstance(row.get(key), str):
                row[key] = json.loads(row[key])
    return row


def snapshot_row(db: dict[str, Any], run_id: str) -> dict[str, Any] | None:
    """The ``warlock_ai_snapshot`` row of ``run_id`` (JSON columns decoded), or ``None``."""
    rows = query(db, "SELECT * FROM warlock_ai_snapshot WHERE run_id = ?", (run_id,))
    return _decode(rows[0], db["vendor"]) if rows else None


def snapshot_table(db: dict[str, Any]) -> list[dict[str, Any]]:
    """Every snapshot row, every column, ordered by run id: compare it before and after."""
    rows = query(db, "SELECT * FROM warlock_ai_snapshot ORDER BY run_id")
    return [_decode(row, db["vendor"]) for row in rows]


def step_counts(db: dict[str, Any], run_id: str) -> Counter[str]:
    """How many times each step body of ``run_id`` started (``StepExecution`` rows)."""
    rows = query(
        db,
        "SELECT step, COUNT(*) AS n FROM catalog_stepexecution WHERE run_id = ? GROUP BY step",
        (run_id,),
    )
    return Counter({row["step"]: row["n"] for row in rows})


def stored_turns(db: dict[str, Any], name: str, session_id: str) -> list[dict[str, Any]]:
    """The ``warlock_ai_checkpoint`` rows of a session, oldest first, ``state`` decoded."""
    found = query(
        db,
        "SELECT turn_index, state, turn_key FROM warlock_ai_checkpoint WHERE orchestrator_name = ? "
        "AND session_id = ? ORDER BY turn_index",
        (name, session_id),
    )
    for row in found:
        if isinstance(row["state"], str):
            row["state"] = json.loads(row["state"])
    return found


def turn_calls(turn_dir: Path, run_id: str) -> list[int]:
    """The iterations of ``run_id`` whose intent was called, in call order, as the
    orchestrators of tests/turns_app log them in ``turn_dir``."""
    log = turn_dir / "calls.log"
    lines = log.read_text().splitlines() if log.exists() else []
    return [int(line.split()[1]) for line in lines if line.split()[0] == run_id]


def step_execution_total(db: dict[str, Any]) -> int:
    return query(db, "SELECT COUNT(*) AS n FROM catalog_stepexecution")[0]["n"]


def products(db: dict[str, Any], vendor_id: str = "acme") -> list[dict[str, Any]]:
    return query(
        db,
        "SELECT sku, title, description FROM catalog_product WHERE vendor_id = ? ORDER BY sku",
        (vendor_id,),
    )


def feed_skus(path: str | os.PathLike[str] = FEED) -> set[str]:
    """Every SKU of the vendor feed, as the workflow normalises it."""
    with open(path, encoding="utf-8") as fh:
        return {str(row["sku"]).strip().upper() for row in json.load(fh)["products"]}


def completed_steps(row: dict[str, Any]) -> list[str]:
    return [name for name, record in row["steps"].items() if record.get("status") == "completed"]


def assert_refused(result, *fragments: str) -> str:
    """Exit code 1, exactly one line on stderr, ``error: ...``, no traceback anywhere."""
    output = result.stdout + result.stderr
    assert "Traceback" not in output, describe(result)
    assert result.returncode == 1, describe(result)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, describe(result)
    (line,) = lines
    assert line.startswith("error: "), describe(result)
    for fragment in fragments:
        assert fragment in line, f"{fragment!r} not in {line!r}"
    return line


def sqlite_project(path: Path) -> dict[str, Any]:
    """A project database dict (``{"vendor", "url", "env"}``, as ``fresh_project_db`` gives)
    for the SQLite file ``path``, for fixtures wider than one test."""
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    url = f"sqlite://{path}"
    return {"vendor": "sqlite", "url": url, "env": {**env, "WARLOCK_DB_URL": url}}


def clone_run(path: Path, source: str, run_id: str, **columns: object) -> None:
    """Copy the snapshot row ``source`` of the SQLite file ``path`` as ``run_id`` with
    ``columns`` changed."""
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.row_factory = sqlite3.Row
        row = dict(
            conn.execute("SELECT * FROM warlock_ai_snapshot WHERE run_id = ?", (source,)).fetchone()
        )
        row.update(run_id=run_id, **columns)
        names = ", ".join(f'"{name}"' for name in row)
        marks = ", ".join("?" for _ in row)
        conn.execute(
            f"INSERT INTO warlock_ai_snapshot ({names}) VALUES ({marks})", list(row.values())
        )
