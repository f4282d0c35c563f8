"""What the ORM cache driver does on PostgreSQL beyond the contract: ``ef_search`` set once per
connection, the partial HNSW index (shared pool only) and the exact path for scopes, and hit
counting that neither waits for a row lock nor for a WAL flush."""

from __future__ import annotations

import struct
import threading

import psycopg
import pytest
from django.db import connections, transaction
from django.test.utils import CaptureQueriesContext

import warlock_ai as ai
from tests import services
from warlock_ai.models import CacheEntry
from warlock_ai.stores.orm_cache import DEFAULT_EF_SEARCH, DatabaseCacheDriver
from warlock_ai.stores.orm_cache_pg import vector_literal

SIZE = 1536  # the test database's column


def vec(*xs: float) -> list[float]:
    return [*xs, *([0.0] * (SIZE - len(xs)))]


def show(setting: str) -> str:
    with connections["pg"].cursor() as cursor:
        cursor.execute(f"SHOW {setting}")
        return cursor.fetchone()[0]


def sent(captured: CaptureQueriesContext, text: str) -> int:
    return sum(text in query["sql"] for query in captured.captured_queries)


# --- ef_search ----------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [0, -1, 1001, True, "40", 40.0])
def test_ef_search_is_checked(bad):
    with pytest.raises(ValueError, match=r"ef_search must be None .* from 1 to 1000, not"):
        ai.cache.db(ef_search=bad)


def test_ef_search_defaults_and_none():
    assert ai.cache.db().ef_search == DEFAULT_EF_SEARCH == 40
    assert ai.cache.db(ef_search=None).ef_search is None
    assert ai.cache.db(ef_search=1000).ef_search == 1000


def test_ef_search_from_settings(settings):
    from warlock_ai.core.runs import config

    settings.WARLOCK_AI = {
        "CACHE": {
            "BACKEND": "warlock_ai.stores.orm_cache.DatabaseCacheDriver",
            "OPTIONS": {"ef_search": 120},
        }
    }
    config.reset_config()
    try:
        assert config.resolve("default_store").ef_search == 120
    finally:
        config.reset_config()


@pytest.mark.parametrize("ef_search", [77, None])
@pytest.mark.services
@pytest.mark.django_db(databases=["pg"], transaction=True)
def test_ef_search_is_set_once_per_connection(ef_search):
    cache = DatabaseCacheDriver(using="pg", ef_search=ef_search)
    cache.set("k", 1, vector=vec(1))
    connection = connections["pg"]
    with CaptureQueriesContext(connection) as captured:
        for _ in range(3):
            assert [h.key for h in cache.similar(vec(1))] == ["k"]
    assert sent(captured, "hnsw.ef_search") == (1 if ef_search else 0)
    assert show("hnsw.ef_search") == str(ef_search or 40)  # None: the server's own
    connection.close()  # a new connection is set again
    with CaptureQueriesContext(connection) as captured:
        cache.similar(vec(1))
    assert sent(captured, "hnsw.ef_search") == (1 if ef_search else 0)


@pytest.mark.services
@pytest.mark.django_db(databases=["pg"], transaction=True)
def test_ef_search_set_in_a_rolled_back_transaction_is_set_again():
    cache = DatabaseCacheDriver(using="pg", ef_search=91)
    cache.set("k", 1, vector=vec(1))
    connection = connections["pg"]
    with pytest.raises(RuntimeError), transaction.atomic(using="pg"):
        cache.similar(vec(1))
        assert show("hnsw.ef_search") == "91"
        raise RuntimeError("rolled back")
    assert show("hnsw.ef_search") == "40"  # the rollback undid the SET
    with CaptureQueriesContext(connection) as captured:
        cache.similar(vec(1))
        cache.similar(vec(1))
    assert sent(captured, "hnsw.ef_search") == 1
    assert show("hnsw.ef_search") == "91"


@pytest.mark.services
@pytest.mark.django_db(databases=["pg"], transaction=True)
def test_two_drivers_with_their_own_ef_search_on_one_connection():
    low, high = DatabaseCacheDriver(using="pg", ef_search=10), DatabaseCacheDriver(using="pg")
    low.set("k", 1, vector=vec(1))
    low.similar(vec(1))
    assert show("hnsw.ef_search") == "10"
    high.similar(vec(1))
    assert show("hnsw.ef_search") == "40"
    low.similar(vec(1))
    assert show("hnsw.ef_search") == "10"


# --- the partial index: shared pool by HNSW, scopes exactly --------------------------------


def crowd(cache: DatabaseCacheDriver) -> None:
    """300 scoped entries nearer the query ``vec(1)`` than the one shared entry and the one
    entry of scope ``mine``."""
    objects = CacheEntry.objects.using("pg")
    rows = [
        CacheEntry(namespace="ns", key=f"near{i}", scope=f"s{i % 30}", embedding=vec(1, i * 1e-3))
        for i in range(300)
    ]
    objects.bulk_create(rows)
    cache.set("shared", "s", vector=vec(1, 0.5), namespace="ns")
    cache.set("mine", "m", vector=vec(1, 0.6), namespace="ns", scope="mine")
    with connections["pg"].cursor() as cursor:
        cursor.execute("ANALYZE warlock_ai_cacheentry")


def explain(cache: DatabaseCacheDriver, scope: str | None) -> str:
    connection = connections["pg"]
    with CaptureQueriesContext(connection) as captured:
        cache.similar(vec(1), namespace="ns", scope=scope, top_k=1)
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + captured.captured_queries[-1]["sql"])
        return "\n".join(row[0] for row in cursor.fetchall())


@pytest.mark.services
@pytest.mark.django_db(databases=["pg"], transaction=True)
def test_shared_search_uses_the_hnsw_index_and_ignores_scoped_rows():
    cache = DatabaseCacheDriver(using="pg", ef_search=1)  # one candidate from the index
    crowd(cache)
    with connections["pg"].cursor() as cursor:  # the index, or nothing: no exact fallback
        cursor.execute("SET enable_seqscan = off")
        cursor.execute("SET enable_sort = off")
    try:
        assert "Index Scan using warlock_cache_embed_hnsw" in explain(cache, None)
        # An index over every row would hand back its one candidate, a nearer scoped row,
        # which the query then drops: no hit at all.
        assert [h.key for h in cache.similar(vec(1), namespace="ns", top_k=1)] == ["shared"]
    finally:
        connections["pg"].close()


@pytest.mark.services
@pytest.mark.django_db(databases=["pg"], transaction=True)
def test_scoped_search_is_exact_whatever_the_index_holds():
    cache = DatabaseCacheDriver(using="pg", ef_search=1)
    crowd(cache)
    with connections["pg"].cursor() as cursor:
        cursor.execute("SET enable_seqscan = off")
        cursor.execute("SET enable_sort = off")
    try:
        plan = explain(cache, "mine")
        assert "hnsw" not in plan and "warlock_cache_scope_idx" in plan
        hits = cache.similar(vec(1), namespace="ns", scope="mine", top_k=5)
        assert [(h.key, h.scope) for h in hits] == [("mine", "mine")]
        near = cache.similar(vec(1), namespace="ns", scope="s3", top_k=20)
        assert [h.key for h in near] == [f"near{i}" for i in range(3, 300, 30)]
    finally:
        connections["pg"].close()


# --- hit counting -----------------------------------------------------------------------------


def hits(key: str) -> int:
    return CacheEntry.objects.using("pg").get(key=key).hits


@pytest.mark.services
@pytest.mark.django_db(databases=["pg"], transaction=True)
def test_a_locked_entry_is_read_without_waiting_and_not_counted():
    cache = DatabaseCacheDriver(using="pg")
    cache.set("k", "v", vector=vec(1))
    with connections["pg"].cursor() as cursor:
        cursor.execute("SET lock_timeout = '3s'")  # waiting would fail the lookups below
    url = services.database_url(services.postgres_url(), connections["pg"].settings_dict["NAME"])
    with psycopg.connect(url) as other:  # a transaction holding the row, as set() would
        other.execute("SELECT 1 FROM warlock_ai_cacheentry WHERE key = 'k' FOR UPDATE")
        assert cache.get("k") == "v"
        assert [h.key for h in cache.similar(vec(1))] == ["k"]
        other.rollback()
    assert hits("k") == 0
    assert cache.get("k") == "v"
    assert hits("k") == 1


@pytest.mark.services
@pytest.mark.django_db(databases=["pg"], transaction=True)
def test_concurrent_hits_on_one_entry_are_all_counted_when_nothing_holds_it():
    cache = DatabaseCacheDriver(using="pg")
    cache.set("k", "v", vector=vec(1))
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            for _ in range(25):
                assert cache.get("k") == "v"
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors and not any(thread.is_alive() for thread in threads)
    # A lookup skips counting while another holds the row; none counts twice.
    assert 1 <= hits("k") <= 100


@pytest.mark.services
@pytest.mark.django_db(databases=["pg"], transaction=True)
def test_counting_commits_asynchronously_only_outside_a_transaction():
    cache = DatabaseCacheDriver(using="pg")
    cache.set("k", "v", vector=vec(1))
    connection = connections["pg"]
    with CaptureQueriesContext(connection) as captured:
        cache.get("k")
        cache.similar(vec(1))
    relaxed = "set_config('synchronous_commit', 'off', true)"
    assert sent(captured, relaxed) == 2
    with CaptureQueriesContext(connection) as captured, transaction.atomic(using="pg"):
        cache.get("k")
        cache.similar(vec(1))
        assert show("synchronous_commit") == "on"  # the caller's transaction keeps its own
    assert sent(captured, relaxed) == 0
    assert show("synchronous_commit") == "on"
    assert hits("k") == 4


@pytest.mark.services
@pytest.mark.django_db(databases=["pg"], transaction=True)
def test_hits_below_the_threshold_are_not_counted():
    cache = DatabaseCacheDriver(using="pg")
    cache.set("a", 1, vector=vec(1))
    cache.set("b", 2, vector=vec(1, 1))
    assert [h.key for h in cache.similar(vec(1), threshold=0.9)] == ["a"]
    assert (hits("a"), hits("b")) == (1, 0)


# --- the query vector -------------------------------------------------------------------------


def test_vector_literal_keeps_every_float32_exactly():
    values = [struct.unpack("f", struct.pack("f", x))[0] for x in (0.1, -1 / 3, 1e-38, 3e38)]
    values += [struct.unpack("f", struct.pack("I", bits))[0] for bits in range(1, 2**32, 2**20)]
    values = [x for x in values if x == x and abs(x) != float("inf")]
    text = vector_literal(tuple(values))
    back = [struct.unpack("f", struct.pack("f", float(x)))[0] for x in text[1:-1].split(",")]
    assert back == values
