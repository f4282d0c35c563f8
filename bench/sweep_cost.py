# ruff: noqa: E501  (the SQL of the code run in the project's shell)
"""What one sweep's stale-runs query costs on a large table: ``--finished`` finished runs and
``--running`` running runs held by live workers of another host (nothing stale), on a fresh
PostgreSQL database (pgserver, or ``$WARLOCK_TEST_PG_URL``). Prints PostgreSQL's plan of
``Snapshot.objects.stale()`` and the time of the store's ``runs(RunQuery(stale=True))``, which
is what each sweep asks (median and p90 of 50 calls).

Run: ``.venv/bin/python bench/sweep_cost.py [--finished 100000] [--running 50]``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import services  # noqa: E402

CODE = """
import time, json
from django.db import connection
from warlock_ai.models import Snapshot
from warlock_ai.runs import snapshot_store
from warlock_ai.stores.base import RunQuery
from warlock_ai import operations
operations.execute_flow("worker-bench", {{}}, run_id="tmpl")
with connection.cursor() as c:
    c.execute("SELECT column_name FROM information_schema.columns WHERE table_name='warlock_ai_snapshot'")
    cols = [r[0] for r in c.fetchall()]
    def sel(over):
        return ", ".join(over.get(col, col) for col in cols)
    names = ", ".join(cols)
    done = {{"run_id": "'done-'||g", "status": "CASE WHEN g % 10 = 0 THEN 'failed' ELSE 'completed' END", "saved_at": "now() - (g||' seconds')::interval"}}
    live = {{"run_id": "'live-'||g", "status": "'running'", "lease_owner": "'otherhost:'||g||':x'", "lease_expires_at": "now() + interval '5 minutes'"}}
    c.execute(f"INSERT INTO warlock_ai_snapshot ({{names}}) SELECT {{sel(done)}} FROM warlock_ai_snapshot, generate_series(1, {finished}) g WHERE run_id='tmpl'")
    c.execute(f"INSERT INTO warlock_ai_snapshot ({{names}}) SELECT {{sel(live)}} FROM warlock_ai_snapshot, generate_series(1, {running}) g WHERE run_id='tmpl'")
    c.execute("ANALYZE warlock_ai_snapshot")
store = snapshot_store()
print(Snapshot.objects.stale().explain(analyze=True))
ts = []
for i in range(50):
    t = time.perf_counter(); store.runs(RunQuery(stale=True, oldest_first=True)); ts.append(time.perf_counter() - t)
ts.sort(); print(json.dumps({{"median_ms": ts[25] * 1000, "p90_ms": ts[45] * 1000}}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--finished", type=int, default=100_000)
    parser.add_argument("--running", type=int, default=50)
    args = parser.parse_args()
    pg_url = services.postgres_url()
    name = f"warlock_bench_{uuid.uuid4().hex[:10]}"
    url = services.create_database(pg_url, name)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "WARLOCK_DB_URL": url,
        "DJANGO_SETTINGS_MODULE": "tests.workers.settings",
    }
    try:
        for command in (
            ["migrate", "-v", "0"],
            ["shell", "-v", "0", "-c", CODE.format(**vars(args))],
        ):
            result = subprocess.run(
                [sys.executable, "manage.py", *command], cwd=ROOT, env=env, text=True, check=False
            )
            if result.returncode != 0:
                raise SystemExit(f"manage.py {command[0]} failed")
    finally:
        services.drop_database(pg_url, name)


if __name__ == "__main__":
    main()
