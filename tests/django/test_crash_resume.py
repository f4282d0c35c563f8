"""A catalog-import run killed with SIGKILL in the middle of ``enrich`` resumes at ``enrich``.

Real ``manage.py`` processes on a brand-new database (SQLite and PostgreSQL): ``execute_run``
is killed after three products were enriched, the database is read directly to see what the
dead process left, then ``resume_run`` finishes the run. Only the killed step runs twice.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import uuid

import pytest
import redis

from tests.django.project import (
    FLOW,
    REPO_ROOT,
    LineReader,
    completed_steps,
    describe,
    feed_skus,
    manage,
    manage_args,
    migrate,
    products,
    project_env,
    snapshot_row,
    step_counts,
)

pytestmark = pytest.mark.crash

RUN_ID = "crash-1"
KILL_AFTER = 3  # "enrich: i/n sku" lines seen before the kill
WAIT_FOR_LINES = 60  # seconds: fail, do not hang, if the child never gets there
WRITE_DELAY = "0.2"  # seconds per product in enrich: the kill lands in the middle of it


@pytest.mark.parametrize("fresh_project_db", ["sqlite", "postgres"], indirect=True)
def test_killed_run_resumes_at_the_killed_step(fresh_project_db):
    db = fresh_project_db
    migrate(db)

    kill_in_enrich(db, RUN_ID)

    # What the killed process left behind: fetch and normalize done, enrich in flight.
    row = snapshot_row(db, RUN_ID)
    assert row is not None, "no snapshot for the killed run"
    assert row["status"] == "running"
    assert row["next_step"] == "enrich"
    assert row["name"] == FLOW
    # A set: PostgreSQL's jsonb does not keep the order of the keys of ``steps``.
    assert set(completed_steps(row)) == {"fetch", "normalize"}
    assert row["steps"].get("enrich", {}).get("status") != "completed"
    assert step_counts(db, RUN_ID) == {"fetch": 1, "normalize": 1, "enrich": 1}
    assert products(db) == []

    resumed = manage(db, "resume_run", RUN_ID, WARLOCK_DEMO_WRITE_DELAY="0")
    assert resumed.returncode == 0, describe(resumed)
    assert "completed" in resumed.stdout, describe(resumed)
    assert "Traceback" not in resumed.stdout + resumed.stderr, describe(resumed)

    # Only the killed step ran twice; the finished ones were not run again.
    counts = step_counts(db, RUN_ID)
    assert counts == {"fetch": 1, "normalize": 1, "enrich": 2, "upsert": 1}, counts
    row = snapshot_row(db, RUN_ID)
    assert row["status"] == "completed"
    assert set(completed_steps(row)) == {"fetch", "normalize", "enrich", "upsert"}
    imported = products(db)
    assert {p["sku"] for p in imported} == feed_skus()
    assert len(imported) == len(feed_skus())
    assert all(p["description"].strip() for p in imported), imported


def test_a_killed_run_on_the_redis_store_is_listed_and_drained(fresh_project_db, redis_url):
    """With WARLOCK_AI["SNAPSHOT_STORE"] on Redis, as a user configures it: the run a SIGKILL
    left in Redis is listed, seen stale (its worker is dead) and drained to the end."""
    db = fresh_project_db
    migrate(db)
    prefix = f"warlock-crash-{uuid.uuid4().hex[:8]}:"
    redis_env = {"WARLOCK_SNAPSHOT_REDIS_URL": redis_url, "WARLOCK_SNAPSHOT_REDIS_PREFIX": prefix}
    try:
        kill_in_enrich(db, "redis-1", **redis_env)
        listed = manage(db, "list_runs", "--json", **redis_env)
        assert listed.returncode == 0, describe(listed)
        (row,) = json.loads(listed.stdout)
        assert (row["run_id"], row["status"], row["next_step"]) == ("redis-1", "running", "enrich")
        stale = manage(db, "list_runs", "--stale", "--json", **redis_env)
        assert [r["run_id"] for r in json.loads(stale.stdout)] == ["redis-1"], describe(stale)

        drained = manage(db, "drain_runs", **redis_env)
        assert drained.returncode == 0, describe(drained)
        assert "run redis-1: completed" in drained.stdout, describe(drained)
        counts = step_counts(db, "redis-1")
        assert counts == {"fetch": 1, "normalize": 1, "enrich": 2, "upsert": 1}, counts
        assert snapshot_row(db, "redis-1") is None  # nothing went to the database
        after = manage(db, "list_runs", "--status", "completed", "--json", **redis_env)
        assert [r["run_id"] for r in json.loads(after.stdout)] == ["redis-1"]
    finally:
        client = redis.Redis.from_url(redis_url)
        keys = list(client.scan_iter(match=f"{prefix}*"))
        if keys:
            client.delete(*keys)
        client.close()


def kill_in_enrich(db: dict, run_id: str, **env: str) -> None:
    """Start the catalog import as ``run_id`` and SIGKILL it in the middle of ``enrich``."""
    args = ["execute_run", FLOW, "--input", '{"vendor_id": "acme"}', "--run-id", run_id]
    child = subprocess.Popen(
        manage_args(*args),
        cwd=REPO_ROOT,
        env=project_env(db, WARLOCK_DEMO_WRITE_DELAY=WRITE_DELAY, **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    reader = LineReader(child)
    try:
        reader.wait_for(lambda line: line.startswith("enrich:"), KILL_AFTER, WAIT_FOR_LINES)
        assert child.poll() is None, "execute_run ended before it could be killed"
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(timeout=10) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        reader.join()
        if child.stdout:
            child.stdout.close()
    assert "Traceback" not in "\n".join(reader.lines)
