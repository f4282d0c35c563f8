"""Semantic-cache lookup at 100,000 x 384 entries on PostgreSQL 16 + pgvector (pgserver).

For each dataset, a fresh database migrated by the project's migrations (embedding column
``vector(384)``) gets ``--entries`` shared entries (scope NULL, namespace ``ai.cache``) and
``--sessions`` x 5 scoped ones (``session:<n>``) by ``COPY``; then the HNSW index that the
migrations create (``EMBEDDING_INDEX``: pgvector's defaults m=16, ef_construction=64, over the
shared pool) is built in parallel, timed and sized. Every query is then run, the methods in
rotating order, by:

- exact search in numpy (float32 matrix-vector product, argmax): the ground truth, and its
  own latency;
- raw SQL through psycopg (prepared, binary vector) at pgvector's default ``hnsw.ef_search``
  (40), and at each ``--sweep`` value: the floor under the driver;
- ``DatabaseCacheDriver.similar(top_k=1)`` end to end at each ``--ef-search`` (each driver on
  a connection of its own), and ``get()`` of an absent key followed by ``similar()``: the
  semantic cache middleware's hit path without the middleware; and the middleware's trip hook
  itself on a new prompt (exact tier missed, vector tier hit; embedding left out);
- ``similar(scope=, top_k=5)`` for a session's own entries (exact, through the
  ``(namespace, scope)`` index), its recall against numpy over that session's entries.

Datasets: ``random`` (unit vectors drawn uniformly; a query is a stored vector plus noise, a
near-duplicate at cosine ~0.96) and ``lowrank`` (embedding-like: a rank-32 signal with a
decaying spectrum plus a little isotropic noise; a query perturbs a stored entry's latent).
Seeded: the same command gives the same data and queries. Prints p50/p99 latency, recall@1
against exact search, the plans PostgreSQL chose, and whether every hit was counted.

The server is a pgserver of this process with ``shared_buffers`` from ``--shared-buffers``
(1GB, so the table and its index stay in PostgreSQL's cache, as on a server sized for them;
"default" keeps pgserver's 128MB), or ``--url`` (used as it is).

Run: ``.venv/bin/python bench/semantic_cache.py [--entries 100000] [--queries 1000]
[--datasets random,lowrank] [--ef-search 40,64] [--sweep 64,100,200] [--shared-buffers 1GB]``
(``make bench-cache``); about 5 minutes on 2 cores, most of it building the two indexes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DIMENSIONS = 384
NAMESPACE = "ai.cache"
PER_SESSION = 5
DEFAULT_EF_SEARCH = 40  # pgvector's own
WARMUP = 100  # queries run through every method before the timed ones
TABLE = "warlock_ai_cacheentry"
INDEX = "warlock_cache_embed_hnsw"
_WORD_LIST = (
    "order parcel refund charge card account login password reset invoice receipt delivery "
    "address week today please thanks help arrived broken wrong item size return label tracking"
)
WORDS = _WORD_LIST.split()


# --- data -------------------------------------------------------------------------------------


@dataclass
class Dataset:
    name: str
    shared: np.ndarray  # (entries, d), unit rows
    queries: np.ndarray  # (queries, d), unit rows
    scoped: np.ndarray  # (sessions * PER_SESSION, d): session n owns rows 5n..5n+4
    scoped_queries: np.ndarray  # query i asks session i % sessions
    truth: np.ndarray = field(init=False)  # index of each query's exact nearest shared entry

    def __post_init__(self) -> None:
        self.truth = np.array([int(np.argmax(self.shared @ q)) for q in self.queries])


def unit(rows: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(rows / np.linalg.norm(rows, axis=1, keepdims=True), np.float32)


def random_dataset(entries: int, queries: int, sessions: int, seed: int) -> Dataset:
    rng = np.random.default_rng(seed)

    def draw(n: int) -> np.ndarray:
        return unit(rng.standard_normal((n, DIMENSIONS), dtype=np.float32))

    def near(rows: np.ndarray) -> np.ndarray:  # noise of norm ~0.3: cosine ~0.96
        noise = rng.standard_normal(rows.shape, dtype=np.float32) * (0.3 / DIMENSIONS**0.5)
        return unit(rows + noise)

    shared, scoped = draw(entries), draw(sessions * PER_SESSION)
    asked = shared[rng.choice(entries, queries, replace=False)]
    own = scoped[owners(sessions, queries, rng)]
    return Dataset("random", shared, near(asked), scoped, near(own))


def owners(sessions: int, queries: int, rng: np.random.Generator) -> list[int]:
    """For scoped query i, one of the entries of session i % sessions."""
    return [(i % sessions) * PER_SESSION + int(rng.integers(PER_SESSION)) for i in range(queries)]


def lowrank_dataset(entries: int, queries: int, sessions: int, seed: int) -> Dataset:
    rng = np.random.default_rng(seed)
    rank = 32
    spectrum = (1.0 / np.sqrt(np.arange(1, rank + 1))).astype(np.float32)
    basis = rng.standard_normal((rank, DIMENSIONS), dtype=np.float32)

    def embed(latent: np.ndarray) -> np.ndarray:
        noise = rng.standard_normal((len(latent), DIMENSIONS), dtype=np.float32) * 0.05
        return unit(latent @ basis + noise)

    def latent(n: int) -> np.ndarray:
        return rng.standard_normal((n, rank), dtype=np.float32) * spectrum

    def paraphrase(rows: np.ndarray) -> np.ndarray:
        return rows + 0.3 * spectrum * rng.standard_normal(rows.shape, dtype=np.float32)

    shared_z, scoped_z = latent(entries), latent(sessions * PER_SESSION)
    asked = shared_z[rng.choice(entries, queries, replace=False)]
    own = scoped_z[
        [(i % sessions) * PER_SESSION + rng.integers(PER_SESSION) for i in range(queries)]
    ]
    return Dataset(
        "lowrank",
        embed(shared_z),
        embed(paraphrase(asked)),
        embed(scoped_z),
        embed(paraphrase(own)),
    )


DATASETS: dict[str, Callable[[int, int, int, int], Dataset]] = {
    "random": random_dataset,
    "lowrank": lowrank_dataset,
}


def key(n: int) -> str:
    return f"{NAMESPACE}.{n:08x}"


def value(n: int) -> dict[str, Any]:
    """What the semantic cache middleware stores: a model response, the prompt, the partition
    of the middleware's agent (so ``middleware_hit_path`` may serve it), a timestamp."""
    text = " ".join(WORDS[(n * 7 + i * 3) % len(WORDS)] for i in range(40))
    return {
        "response": {"content": text, "finish_reason": "stop", "model": "bench-model"},
        "prompt": f"prompt {n}",
        "partition": partition(),
        "stored_at": 1_764_000_000.0 + n,
    }


# --- the middleware's hit path ------------------------------------------------------------------

SYSTEM_PROMPT = "You answer support questions."


def trip_context(text: str) -> Any:
    """The context a trip of the middleware's agent has: model, agent, the two messages."""
    from warlock_ai import Message, PipelineContext

    return PipelineContext(
        level="trip",
        agent={"name": "bench", "is_anonymous": False, "signature": "bench", "version": None},
        model={"name": "bench-model", "provider": "bench"},
        options={"session_id": None},
        trip_index=0,
        messages=[Message("system", SYSTEM_PROMPT), Message("user", text)],
    )


class Precomputed:
    """An embedder answering from the query vectors: the hit path measured without embedding."""

    name, provider, dimensions = "precomputed", "bench", DIMENSIONS

    def __init__(self, vectors: list[list[float]]) -> None:
        self.vectors = vectors

    def embed(self, text: str) -> Any:
        from warlock_ai import Embedding

        return Embedding(self.vectors[int(text.split()[-1])], DIMENSIONS)


def semantic_cache(store: Any, vectors: list[list[float]]) -> Any:
    import warlock_ai as ai

    return ai.middleware.semantic_cache(
        embedder=Precomputed(vectors), store=store, threshold=0.5, scope="shared"
    )


_PARTITION: list[str] = []


def partition() -> str:
    """The partition the middleware computes for its agent (the same for every prompt)."""
    if not _PARTITION:
        import warlock_ai as ai
        from warlock_ai.core.cache.semantic import SemanticCache

        ctx = trip_context("query 0")
        cache = SemanticCache(
            embedder=Precomputed([]),
            store=ai.cache.memory(dimensions=DIMENSIONS),
            threshold=0.5,
            ttl=None,
            namespace=NAMESPACE,
            scope="shared",
            guard=None,
            version=None,
            match="conversation",
            name="semantic-cache",
        )
        _PARTITION.append(cache.partition(ctx, ctx.messages))
    return _PARTITION[0]


# --- server and database ------------------------------------------------------------------------


def start_server(shared_buffers: str) -> str:
    """A pgserver of this process (deleted at exit), restarted with ``shared_buffers``."""
    import pgserver

    server = pgserver.get_server(tempfile.mkdtemp(prefix="warlock-bench-cache-"), "delete")
    if shared_buffers != "default":
        server.psql(f"ALTER SYSTEM SET shared_buffers = '{shared_buffers}';")
        pgserver.pg_ctl(["-w", "stop"], pgdata=server.pgdata, user=server.system_user)
        server.ensure_postgres_running()
    return server.get_uri()


def setup_django(server_url: str, names: list[str], efs: list[int]) -> dict[str, str]:
    """One migrated database per dataset; returns their URLs by alias. Each driver setting
    gets an alias (a connection) of its own, ``<dataset>@<ef_search>``."""
    import django
    from django.conf import settings
    from django.core.management import call_command

    from tests.services import create_database, database_settings

    stamp = int(time.time())
    urls = {name: create_database(server_url, f"bench_cache_{name}_{stamp}") for name in names}
    databases = {alias: database_settings(url) for alias, url in urls.items()}
    for name in names:
        databases.update({f"{name}@{ef}": database_settings(urls[name]) for ef in efs})
    databases["default"] = databases[names[0]]
    settings.configure(
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "warlock_ai"],
        DATABASES=databases,
        USE_TZ=True,
        DEBUG=False,
        WARLOCK_AI={
            "FLOW_MODULES": [],
            "SNAPSHOT_STORE": None,
            "CACHE": {
                "BACKEND": "warlock_ai.stores.orm_cache.DatabaseCacheDriver",
                "OPTIONS": {"dimensions": DIMENSIONS},
            },
        },
    )
    django.setup()
    for alias in names:
        call_command("migrate", database=alias, verbosity=0)
    return urls


def load(url: str, data: Dataset, fillfactor: int | None) -> float:
    """Drop the index the migration made on the empty table, COPY every entry in; seconds."""
    import psycopg
    from pgvector.psycopg import register_vector
    from psycopg.types.json import Jsonb

    started = time.perf_counter()
    columns = "namespace, key, scope, value, embedding, hits, created_at"
    with psycopg.connect(url, autocommit=True) as conn:
        register_vector(conn)
        conn.execute(f"DROP INDEX IF EXISTS {INDEX}")
        if fillfactor:
            conn.execute(f"ALTER TABLE {TABLE} SET (fillfactor = {fillfactor})")
        now = conn.execute("SELECT now()").fetchone()[0]
        types = ["varchar", "varchar", "varchar", "jsonb", "vector", "int4", "timestamptz"]
        with conn.cursor().copy(f"COPY {TABLE} ({columns}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(types)
            for n, vector in enumerate(data.shared):
                copy.write_row((NAMESPACE, key(n), None, Jsonb(value(n)), vector, 0, now))
            for n, vector in enumerate(data.scoped):
                scope = f"session:{n // PER_SESSION}"
                row = (NAMESPACE, f"{NAMESPACE}.s{n:07x}", scope, Jsonb(value(n)), vector, 0, now)
                copy.write_row(row)
        conn.execute(f"VACUUM ANALYZE {TABLE}")
    return time.perf_counter() - started


def build_index(alias: str, url: str) -> tuple[float, int, str]:
    """The migrations' HNSW index (``EMBEDDING_INDEX``), built on the loaded table in parallel;
    (seconds, bytes, its definition)."""
    import psycopg
    from django.db import connections

    from warlock_ai.models import CacheEntry
    from warlock_ai.stores.orm_cache import EMBEDDING_INDEX

    with connections[alias].schema_editor(collect_sql=True, atomic=False) as editor:
        sql = EMBEDDING_INDEX.sql(editor, CacheEntry)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET maintenance_work_mem = '2GB'")
        conn.execute(f"SET max_parallel_maintenance_workers = {os.cpu_count() or 2}")
        started = time.perf_counter()
        conn.execute(sql)
        took = time.perf_counter() - started
        size = conn.execute(f"SELECT pg_relation_size('{INDEX}')").fetchone()[0]
        definition = conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE indexname = %s", [INDEX]
        ).fetchone()[0]
        conn.execute(f"ANALYZE {TABLE}")
    return took, size, definition


# --- the methods ------------------------------------------------------------------------------


RAW_SQL = (
    f"SELECT key FROM {TABLE} WHERE namespace = %s AND scope IS NULL "
    "AND (expires_at IS NULL OR expires_at >= now()) ORDER BY embedding <=> %s LIMIT 1"
)


class RawSearch:
    """pgvector through psycopg at a given ``hnsw.ef_search``: the floor under the driver."""

    def __init__(self, url: str, ef_search: int) -> None:
        import psycopg
        from pgvector.psycopg import register_vector

        self.conn = psycopg.connect(url, autocommit=True)
        register_vector(self.conn)
        self.conn.execute(f"SET hnsw.ef_search = {ef_search}")

    def __call__(self, query: np.ndarray) -> str | None:
        row = self.conn.execute(RAW_SQL, [NAMESPACE, query], prepare=True).fetchone()
        return row[0] if row else None


def numpy_search(shared: np.ndarray) -> Callable[[np.ndarray], str]:
    def search(query: np.ndarray) -> str:
        return key(int(np.argmax(shared @ query)))

    return search


def counting_driver(name: str, ef_search: int) -> Any:
    """The driver, adding up the hits it returns (each should add one to a row's hits)."""
    from warlock_ai.stores.orm_cache import DatabaseCacheDriver

    class CountingDriver(DatabaseCacheDriver):
        returned = 0

        def similar(self, *args: Any, **kwargs: Any) -> Any:
            hits = super().similar(*args, **kwargs)
            self.returned += len(hits)
            return hits

    alias = f"{name}@{ef_search}"
    return CountingDriver(using=alias, dimensions=DIMENSIONS, ef_search=ef_search)


def top(hits: list[Any]) -> str | None:
    return hits[0].key if hits else None


def methods(data: Dataset, url: str, alias: str, args: argparse.Namespace) -> dict[str, Any]:
    """The methods by name, each a callable taking a query's index and returning the key of
    the entry it found; plus the drivers and the raw connections."""
    drivers = [counting_driver(alias, ef) for ef in args.ef_search]
    driver = drivers[0]
    as_lists = [q.tolist() for q in data.queries]  # what an embedder hands the middleware
    exact = numpy_search(data.shared)
    raws = {ef: RawSearch(url, ef) for ef in [DEFAULT_EF_SEARCH, *args.sweep]}

    def similar(driver: Any, i: int) -> str | None:
        return top(driver.similar(as_lists[i], namespace=NAMESPACE, top_k=1))

    def hit_path(i: int) -> str | None:
        if driver.get(f"{NAMESPACE}.absent-{i}", namespace=NAMESPACE) is not None:
            raise AssertionError("an absent key was found")
        return top(driver.similar(as_lists[i], namespace=NAMESPACE, top_k=1))

    found: dict[str, Callable[[int], str | None]] = {
        "exact numpy (ground truth)": lambda i: exact(data.queries[i]),
    }
    for ef, raw in raws.items():
        label = "pgvector defaults" if ef == DEFAULT_EF_SEARCH else f"ef_search={ef}"
        found[f"raw SQL, {label}"] = lambda i, raw=raw: raw(data.queries[i])
    for each in drivers:
        found[f"driver similar(), ef_search={each.ef_search}"] = partial(similar, each)
    found[f"driver get() miss + similar(), ef_search={driver.ef_search}"] = hit_path
    middleware = semantic_cache(driver, as_lists)

    def middleware_hit_path(i: int) -> str | None:
        """The middleware's trip hook on a new prompt (exact tier missed, vector tier hit),
        as the agent runs it; the embedder's cost is left out."""
        from warlock_ai.core.runs.effects import run_sync

        reply = run_sync(middleware.trip.before(trip_context(f"query {i}")))
        return None if reply is None else reply.cached["key"]

    found[f"middleware hit path (embed excluded), ef_search={driver.ef_search}"] = (
        middleware_hit_path
    )
    return {"methods": found, "drivers": drivers, "raws": raws}


def scoped_search(data: Dataset, driver: Any, args: argparse.Namespace) -> dict[str, Any]:
    as_lists = [q.tolist() for q in data.scoped_queries]

    def truth(i: int) -> str:
        session = i % args.sessions
        rows = data.scoped[session * PER_SESSION : (session + 1) * PER_SESSION]
        n = session * PER_SESSION + int(np.argmax(rows @ data.scoped_queries[i]))
        return f"{NAMESPACE}.s{n:07x}"

    def search(i: int) -> str | None:
        scope = f"session:{i % args.sessions}"
        return top(driver.similar(as_lists[i], namespace=NAMESPACE, scope=scope, top_k=5))

    return {"search": search, "truth": truth}


# --- measuring --------------------------------------------------------------------------------


def run(
    named: dict[str, Callable[[int], str | None]], count: int, truth: Callable[[int], str]
) -> dict[str, tuple[list[float], int]]:
    """Every method on every query, the methods' order rotating from one query to the next;
    per method: its latencies (s) and how many answers were the exact nearest entry."""
    names = list(named)
    for i in range(min(WARMUP, count)):
        for name in names:
            named[name](i)
    samples: dict[str, list[float]] = {name: [] for name in names}
    right = dict.fromkeys(names, 0)
    for i in range(count):
        shift = i % len(names)
        for name in names[shift:] + names[:shift]:
            started = time.perf_counter()
            got = named[name](i)
            samples[name].append(time.perf_counter() - started)
            right[name] += got == truth(i)
    return {name: (samples[name], right[name]) for name in names}


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))] * 1e3


def plans(driver: Any, query: list[float]) -> dict[str, str]:
    """The plan PostgreSQL chose for the driver's shared and scoped searches, in short."""
    from django.db import connections
    from django.test.utils import CaptureQueriesContext

    connection = connections[driver.using]
    found = {}
    for label, scope in (("shared", None), ("scoped", "session:0")):
        with CaptureQueriesContext(connection) as captured:
            driver.similar(query, namespace=NAMESPACE, scope=scope, top_k=5)
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN (FORMAT JSON) " + captured.captured_queries[-1]["sql"])
            (plan,) = cursor.fetchone()
        plan = json.loads(plan) if isinstance(plan, str) else plan
        search = next(n for n in plan[0]["Plan"]["Plans"] if n.get("Subplan Name") == "CTE found")
        found[label] = " <- ".join(nodes(search))
    return found


def nodes(node: dict[str, Any]) -> list[str]:
    """A plan's nodes top down, e.g. ['Limit', 'Index Scan using warlock_cache_embed_hnsw']."""
    index = f" using {node['Index Name']}" if "Index Name" in node else ""
    below = [name for child in node.get("Plans", []) for name in nodes(child)]
    return [f"{node['Node Type']}{index}", *below]


def counted(url: str) -> tuple[int, int, int]:
    """(sum of hits, updates, HOT updates) on the cache table."""
    import psycopg
    from django.db import connections

    connections.close_all()  # a backend that ends reports its statistics
    with psycopg.connect(url, autocommit=True) as conn:
        time.sleep(0.5)
        hits = conn.execute(f"SELECT coalesce(sum(hits), 0) FROM {TABLE}").fetchone()[0]
        stats = conn.execute(
            "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = %s",
            [TABLE],
        ).fetchone()
    return int(hits), int(stats[0]), int(stats[1])


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def measure(name: str, url: str, args: argparse.Namespace) -> None:
    data = DATASETS[name](args.entries, args.queries, args.sessions, args.seed)
    loaded = load(url, data, args.fillfactor)
    took, size, definition = build_index(name, url)
    closest = np.mean([data.shared[t] @ q for t, q in zip(data.truth, data.queries, strict=True)])
    print(
        f"\n### {name}: {args.entries:,} shared + {args.sessions * PER_SESSION:,} scoped entries"
        f" x {DIMENSIONS}, {args.queries:,} queries (mean cosine to the nearest: {closest:.3f})\n"
    )
    print(
        f"COPY + VACUUM ANALYZE {loaded:.1f} s; index built in {took:.1f} s, {size / 2**20:.0f} MB:"
    )
    print(f"`{definition}`\n")
    setup = methods(data, url, name, args)
    truth = data.truth
    results = run(setup["methods"], args.queries, lambda i: key(int(truth[i])))
    driver = setup["drivers"][0]
    scoped = scoped_search(data, driver, args)
    results["driver similar(scope=session, top_k=5)"] = run(
        {"scoped": scoped["search"]}, args.queries, scoped["truth"]
    )["scoped"]
    rows = []
    for method, (samples, right) in results.items():
        p50, p99 = percentile(samples, 50), percentile(samples, 99)
        rows.append([method, f"{p50:.2f}", f"{p99:.2f}", f"{right / args.queries:.3f}"])
    print(table(["method", "p50 ms", "p99 ms", "recall@1"], rows))
    chosen = plans(driver, data.queries[0].tolist())
    print("\nplans: " + "; ".join(f"{label}: {plan}" for label, plan in chosen.items()))
    hits, updates, hot = counted(url)
    returned = sum(each.returned for each in setup["drivers"])
    print(f"hits counted {hits:,} of {returned:,} returned; {updates:,} row updates, {hot:,} HOT")
    for raw in setup["raws"].values():
        raw.conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--sessions", type=int, default=2000, help="5 scoped entries each")
    parser.add_argument("--datasets", default="random,lowrank")
    parser.add_argument(
        "--ef-search", default="40,64", help="the driver's, one row each (the first: hit path)"
    )
    parser.add_argument("--sweep", default="64,100,200", help="raw SQL at these ef_search too")
    parser.add_argument("--shared-buffers", default="1GB", help='"default" leaves it')
    parser.add_argument("--url", default="", help="an existing PostgreSQL with pgvector")
    parser.add_argument("--fillfactor", type=int, default=None, help="the table's, if given")
    parser.add_argument("--seed", type=int, default=14)
    args = parser.parse_args()
    args.sweep = [int(x) for x in args.sweep.split(",") if x]
    names = [n for n in args.datasets.split(",") if n]
    unknown = set(names) - set(DATASETS)
    if unknown:
        raise SystemExit(f"unknown dataset {sorted(unknown)}; use {', '.join(DATASETS)}")
    from warlock_ai.stores.orm_cache import DEFAULT_EF_SEARCH as driver_default

    args.ef_search = [int(x) for x in args.ef_search.split(",") if x] or [driver_default]
    server = args.url or start_server(args.shared_buffers)
    urls = setup_django(server, names, args.ef_search)
    import psycopg

    with psycopg.connect(urls[names[0]], autocommit=True) as conn:
        version = conn.execute("SHOW server_version").fetchone()[0]
        vector = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        buffers = conn.execute("SHOW shared_buffers").fetchone()[0]
        vector_version = vector.fetchone()[0]
    print(
        f"PostgreSQL {version}, pgvector {vector_version}, shared_buffers {buffers}; "
        f"numpy {np.__version__}; Python {platform.python_version()} on {platform.machine()}, "
        f"{os.cpu_count()} CPUs; seed {args.seed}"
    )
    for name in names:
        measure(name, urls[name], args)


if __name__ == "__main__":
    main()
