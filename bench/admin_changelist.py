"""How the runs admin copes with a large table: 100,000 runs, then each page and filter.

The rows are clones of snapshots the real engine wrote (4 flows, steps and state included),
spread over 90 days: 90% completed, 5% failed, 4% running with an expired lease, 1% running
with a live one; one flow's runs are drifted. Each URL is requested through Django's test
client as a superuser; the figures are the median of ``--repeat`` requests, the number of
SQL queries and the slowest query. Run on SQLite and PostgreSQL 16 (pgserver, or
``$WARLOCK_TEST_PG_URL``):

    .venv/bin/python bench/admin_changelist.py [--rows 100000] [--databases sqlite,postgres]
"""

from __future__ import annotations

import argparse
import platform
import random
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

URLS = [
    ("list, first page", ""),
    ("status = failed", "?status__exact=failed"),
    ("definition = drifted", "?definition=drifted"),
    ("lease = stale", "?lease=stale"),
    ("flow = orders", "?flow=orders"),
    ("search run id prefix", "?q=run-00042"),
    ("date hierarchy: a day", "?saved_at__day={day}&saved_at__month={month}&saved_at__year={year}"),
    ("a page halfway down", "?p={halfway}"),
    ("run detail", "detail"),
]
FLOWS = ["orders", "invoices", "catalog", "support"]


def configure(workdir: str, databases: list[str]) -> dict[str, str]:
    import django
    from django.conf import settings
    from django.core.management import call_command

    from example_project import settings as example
    from tests.services import create_database, database_settings, postgres_url

    configured = {"default": database_settings(f"sqlite:///{workdir}/auth.sqlite3")}
    urls = {}
    for alias in databases:
        if alias == "sqlite":
            configured[alias] = database_settings(f"sqlite:///{workdir}/runs.sqlite3")
        elif alias == "postgres":
            urls[alias] = create_database(postgres_url(), f"bench_admin_{int(time.time())}")
            configured[alias] = database_settings(urls[alias])
        else:
            raise SystemExit(f"unknown database {alias!r}; use sqlite and/or postgres")
    settings.configure(
        INSTALLED_APPS=[
            "django.contrib.admin",
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django.contrib.sessions",
            "django.contrib.messages",
            "warlock_ai",
        ],
        # The example project's middleware, URLs and templates: the admin users see.
        MIDDLEWARE=example.MIDDLEWARE,
        ROOT_URLCONF=example.ROOT_URLCONF,
        TEMPLATES=example.TEMPLATES,
        DATABASES=configured,
        USE_TZ=True,
        DEBUG=False,
        SECRET_KEY="bench",
        ALLOWED_HOSTS=["*"],
        STATIC_URL="static/",
        PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
        WARLOCK_AI={"FLOW_MODULES": []},
    )
    django.setup()
    for alias in configured:
        call_command("migrate", database=alias, verbosity=0)
    return urls


def definitions(store: object) -> dict[str, object]:
    import warlock_ai as ai
    from warlock_ai.registry import registry

    def work(ctx):
        ctx.state[f"k{len(ctx.state)}"] = "x" * 40

    made = {}
    for name in FLOWS:
        steps = [ai.step(f"{name}-{i}", work) for i in range(6)]
        wf = ai.workflow(name=name, steps=steps, snapshot_store=store)
        made[name] = registry.register(wf, replace=True)
    return made


def fill(alias: str, rows: int) -> None:
    """``rows`` runs cloned from real snapshots, written in batches."""
    from django.db import connections
    from django.utils import timezone

    import warlock_ai as ai
    from warlock_ai.models import Snapshot
    from warlock_ai.registry import registry

    store = ai.snapshot.db(using=alias)
    flows = definitions(store)
    templates = {}
    for name, wf in flows.items():
        wf.execute({"n": 1}, run_id=f"template-{name}")
        templates[name] = Snapshot.objects.using(alias).get(pk=f"template-{name}")
    Snapshot.objects.using(alias).all().delete()
    # "support" is redeployed with one more step: its stored runs are drifted.
    steps = [*flows["support"].steps, ai.step("support-extra", lambda ctx: None)]
    registry.register(ai.workflow(name="support", steps=steps), replace=True)

    rng = random.Random(7)
    now = timezone.now()
    fields = [f.attname for f in Snapshot._meta.concrete_fields]
    batch = []
    for i in range(rows):
        template = templates[FLOWS[i % len(FLOWS)]]
        data = {f: getattr(template, f) for f in fields}
        data["run_id"] = f"run-{i:07d}"
        saved = now - timedelta(seconds=rng.uniform(0, 90 * 86400))
        data.update(started_at=saved - timedelta(seconds=30), saved_at=saved, finished_at=saved)
        roll = rng.random()
        if roll < 0.05:
            data.update(status="failed")
        elif roll < 0.10:
            live = roll < 0.06
            data.update(
                status="running",
                next_step=f"{template.name}-3",
                finished_at=None,
                lease_owner="worker-7:4121:ab12cd34",
                lease_expires_at=now + timedelta(minutes=5) if live else saved,
            )
        batch.append(Snapshot(**data))
        if len(batch) == 5000:
            Snapshot.objects.using(alias).bulk_create(batch)
            batch.clear()
    Snapshot.objects.using(alias).bulk_create(batch)
    if connections[alias].vendor == "postgresql":
        with connections[alias].cursor() as cursor:
            cursor.execute("ANALYZE warlock_ai_snapshot")


def measure(
    alias: str, repeat: int, rows: int, show_queries: bool = False
) -> list[tuple[str, float, int, float]]:
    from django.contrib.auth.models import User
    from django.db import connections
    from django.test import Client
    from django.test.utils import CaptureQueriesContext, override_settings

    from warlock_ai.models import Snapshot

    user = User.objects.filter(username="bench").first() or User.objects.create_superuser(
        "bench", password="x"
    )
    client = Client()
    client.force_login(user)
    sample = Snapshot.objects.using(alias).order_by("run_id")[123]
    day = sample.saved_at
    results = []
    store = {"BACKEND": "warlock_ai.stores.orm.DatabaseSnapshotStore", "OPTIONS": {"using": alias}}
    with override_settings(WARLOCK_AI={"FLOW_MODULES": [], "SNAPSHOT_STORE": store}):
        for label, query in URLS:
            if query == "detail":
                url = f"/admin/warlock_ai/snapshot/{sample.run_id}/change/"
            else:
                query = query.format(
                    day=day.day, month=day.month, year=day.year, halfway=max(rows // 100, 1)
                )
                url = f"/admin/warlock_ai/snapshot/{query}"
            client.get(url)  # warm caches
            times, slowest = [], 0.0
            for _ in range(repeat):
                with CaptureQueriesContext(connections[alias]) as queries:
                    start = time.perf_counter()
                    response = client.get(url)
                    times.append(time.perf_counter() - start)
                assert response.status_code == 200, (url, response.status_code)
                slowest = max([slowest, *(float(q["time"]) for q in queries)])
            results.append((label, statistics.median(times) * 1000, len(queries), slowest * 1000))
            if show_queries:
                for q in queries:
                    print(f"    {float(q['time']) * 1000:7.1f} ms  {q['sql'][:160]}")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--databases", default="sqlite,postgres")
    parser.add_argument("--queries", action="store_true", help="print each page's SQL")
    args = parser.parse_args()
    databases = args.databases.split(",")
    with tempfile.TemporaryDirectory() as workdir:
        urls = configure(workdir, databases)
        print(f"# runs admin, {args.rows:,} runs; {platform.python_version()}, {platform.node()}")
        try:
            for alias in databases:
                start = time.perf_counter()
                fill(alias, args.rows)
                print(f"\n## {alias} (filled in {time.perf_counter() - start:.0f} s)")
                print(f"{'page':<28}{'median ms':>10}{'queries':>9}{'slowest query ms':>18}")
                for label, ms, count, slowest in measure(
                    alias, args.repeat, args.rows, args.queries
                ):
                    print(f"{label:<28}{ms:>10.1f}{count:>9}{slowest:>18.1f}")
        finally:
            from django.db import connections

            from tests.services import drop_database, postgres_url

            connections.close_all()
            for url in urls.values():
                drop_database(postgres_url(), url.rsplit("/", 1)[-1])


if __name__ == "__main__":
    main()
