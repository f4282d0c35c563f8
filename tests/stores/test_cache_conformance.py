"""The cache driver contract (SPEC 1.4 and 2, reference 6.2), for every driver on a real
service: memory, lru, file (tmp_path), Redis, and the ORM driver on SQLite, PostgreSQL 16
with pgvector and PostgreSQL 15 without it."""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import warlock_ai as ai
from tests import services
from tests.stores.conftest import DB_ALIASES, cache_params, run_async
from warlock_ai.core.errors import (
    CacheConfigurationError,
    CacheUnsupportedError,
    SnapshotSerializationError,
)

CACHE_KINDS = ("memory", "lru", "file", "sqlite", "postgres16", "postgres15", "redis")


@pytest.fixture(params=cache_params(CACHE_KINDS))
def cache(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Any]:
    kind = request.param
    if kind == "memory":
        yield ai.cache.memory()
    elif kind == "lru":
        yield ai.cache.lru(max_entries=100)
    elif kind == "file":
        yield ai.cache.file(tmp_path / "cache")
    elif kind == "redis":
        prefix = f"warlock-cache-test:{uuid.uuid4().hex[:12]}:"
        driver = ai.cache.redis(url=services.redis_url(), prefix=prefix)
        yield driver
        client = driver._conn.client
        keys = list(client.scan_iter(match=f"{prefix}*"))
        if keys:
            client.delete(*keys)
        driver.close()
    else:
        yield ai.cache.db(using=DB_ALIASES[kind])


def requires_similarity(cache: Any) -> None:
    if not cache.supports_similarity:
        pytest.skip(f"{type(cache).__name__} declares supports_similarity = False")


def vec(cache: Any, *xs: float) -> list[float]:
    """``xs`` padded with zeros to the driver's size (the pgvector column's is fixed)."""
    size = cache.dimensions or len(xs)
    return [*xs, *([0.0] * (size - len(xs)))]


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


# --- key-value --------------------------------------------------------------------------


def test_round_trip_gives_an_equal_value(cache):
    value = {"response": {"content": "hé ☀", "n": [1, 2.5, None, True]}, "storedAt": 17}
    cache.set("k1", value, namespace="ai.cache")
    assert cache.get("k1", namespace="ai.cache") == value
    assert cache.get("missing", namespace="ai.cache") is None


def test_overwrite_replaces_value_and_scope(cache):
    cache.set("k", 1, scope="session:a")
    cache.set("k", 2)
    assert cache.get("k") == 2
    assert cache.get("k", scope="session:a") is None


def test_delete_removes_only_that_key(cache):
    cache.set("a", 1)
    cache.set("b", 2)
    cache.delete("a")
    cache.delete("never-there")
    assert cache.get("a") is None and cache.get("b") == 2


def test_namespaces_are_isolated(cache):
    # Pairs that would share a key if namespace and key were simply joined.
    cache.set("b:c", "first", namespace="a")
    cache.set("c", "second", namespace="a:b")
    cache.set("x", "third", namespace="a*")
    assert cache.get("b:c", namespace="a") == "first"
    assert cache.get("c", namespace="a:b") == "second"
    assert cache.get("c", namespace="a") is None
    assert cache.get("x", namespace="a") is None


def test_remove_namespace_leaves_the_others(cache):
    for i in range(3):
        cache.set(f"k{i}", i, namespace="ai.cache")
    cache.set("k0", "kept", namespace="ai.memory")
    cache.set("k0", "kept too", namespace="ai.cache.x")
    cache.set("k0", "and this", namespace="ai.*")
    cache.remove_namespace("ai.cache")
    assert [cache.get(f"k{i}", namespace="ai.cache") for i in range(3)] == [None] * 3
    assert cache.get("k0", namespace="ai.memory") == "kept"
    assert cache.get("k0", namespace="ai.cache.x") == "kept too"
    cache.remove_namespace("ai.*")
    assert cache.get("k0", namespace="ai.memory") == "kept"


def test_expired_entries_are_misses(cache):
    cache.set("short", "v", ttl=0.3)
    cache.set("long", "v", ttl=60)
    assert cache.get("short") == "v"
    assert wait_until(lambda: cache.get("short") is None)
    assert cache.get("long") == "v"


@pytest.mark.parametrize("ttl", [0, -1, "10", True])
def test_bad_ttl_is_refused(cache, ttl):
    with pytest.raises(ValueError, match="ttl"):
        cache.set("k", 1, ttl=ttl)


def test_scope_is_enforced_in_get(cache):
    cache.set("k", "alice's", scope="session:alice")
    assert cache.get("k", scope="session:alice") == "alice's"
    assert cache.get("k", scope="session:bob") is None
    assert cache.get("k") is None  # the unscoped pool is not a wildcard


def test_non_json_value_is_refused_naming_the_path(cache):
    with pytest.raises(SnapshotSerializationError) as caught:
        cache.set("k", {"response": {"when": object()}})
    assert caught.value.path == "value.response.when"
    assert caught.value.message.startswith("cache value is not JSON: value.response.when: object")
    assert "\n" not in str(caught.value)
    assert cache.get("k") is None


# --- similarity -------------------------------------------------------------------------


def test_drivers_without_similarity_raise(cache):
    if cache.supports_similarity:
        pytest.skip(f"{type(cache).__name__} supports similarity")
    with pytest.raises(CacheUnsupportedError):
        cache.similar([1.0, 0.0])
    with pytest.raises(CacheUnsupportedError):
        cache.set("k", 1, vector=[1.0, 0.0])


def test_similar_sorts_by_cosine_and_applies_threshold_and_top_k(cache):
    requires_similarity(cache)
    cache.set("same", "s", vector=vec(cache, 1, 0, 0))
    cache.set("close", "c", vector=vec(cache, 0.9, 0.1, 0))
    cache.set("far", "f", vector=vec(cache, 0.2, 1, 0))
    cache.set("opposite", "o", vector=vec(cache, -1, 0, 0))
    cache.set("no-vector", "n")
    hits = cache.similar(vec(cache, 1, 0, 0), top_k=10)
    assert [h.key for h in hits] == ["same", "close", "far"]
    assert [h.value for h in hits] == ["s", "c", "f"]
    assert hits[0].score == pytest.approx(1.0, abs=1e-6)
    assert all(a.score >= b.score for a, b in itertools.pairwise(hits))
    assert [h.key for h in cache.similar(vec(cache, 1, 0, 0), threshold=0.9)] == ["same", "close"]
    assert [h.key for h in cache.similar(vec(cache, 1, 0, 0), top_k=1)] == ["same"]


def test_similar_reads_one_namespace_and_one_scope(cache):
    requires_similarity(cache)
    v = vec(cache, 1, 0, 0)
    cache.set("mine", "alice's", vector=v, scope="session:alice", namespace="ns")
    cache.set("theirs", "bob's", vector=v, scope="session:bob", namespace="ns")
    cache.set("shared", "everyone's", vector=v, namespace="ns")
    cache.set("elsewhere", "other ns", vector=v, scope="session:alice", namespace="other")
    alice = cache.similar(v, namespace="ns", scope="session:alice")
    assert [(h.key, h.scope) for h in alice] == [("mine", "session:alice")]
    assert [h.key for h in cache.similar(v, namespace="ns")] == ["shared"]
    assert cache.similar(v, namespace="ns", scope="session:carol") == []


def test_similar_skips_expired_entries(cache):
    requires_similarity(cache)
    v = vec(cache, 1, 0, 0)
    cache.set("short", 1, vector=v, ttl=0.3)
    cache.set("long", 2, vector=v, ttl=60)
    assert wait_until(lambda: [h.key for h in cache.similar(v)] == ["long"])


def test_dimension_mismatch_raises(cache):
    requires_similarity(cache)
    cache.set("k", 1, vector=vec(cache, 1, 0, 0))
    wrong = [1.0] * ((cache.dimensions or 3) + 1)
    with pytest.raises(CacheConfigurationError, match="dimension"):
        cache.set("other", 1, vector=wrong)
    with pytest.raises(CacheConfigurationError, match="dimension"):
        cache.similar(wrong)


# --- async twins --------------------------------------------------------------------------


def test_async_twins(cache):
    async def scenario() -> tuple[Any, ...]:
        await cache.aset("k", {"a": 1}, namespace="ns", scope="s")
        got = await cache.aget("k", namespace="ns", scope="s")
        other = await cache.aget("k", namespace="ns")
        await cache.adelete("k", namespace="ns")
        gone = await cache.aget("k", namespace="ns", scope="s")
        await cache.aset("j", 2, namespace="ns")
        await cache.aremove_namespace("ns")
        removed = await cache.aget("j", namespace="ns")
        return got, other, gone, removed

    assert run_async(scenario()) == ({"a": 1}, None, None, None)


def test_async_similar(cache):
    async def search() -> list[Any]:
        v = vec(cache, 1, 0, 0)
        await cache.aset("k", "v", vector=v)
        return await cache.asimilar(v)

    if not cache.supports_similarity:
        with pytest.raises(CacheUnsupportedError):
            run_async(search())
        return
    assert [h.key for h in run_async(search())] == ["k"]


# --- schema -------------------------------------------------------------------------------


def test_schema(cache):
    ddl = cache.schema()
    if not hasattr(cache, "using"):
        assert ddl == ""
        return
    assert 'CREATE TABLE "warlock_ai_cacheentry"' in ddl
    assert "warlock_cache_key_uniq" in ddl
    from django.db import connections

    from warlock_ai.vector import pgvector_installed

    if pgvector_installed(connections[cache.using]):
        assert f"vector({cache.dimensions})" in ddl
        assert "USING hnsw" in ddl and "vector_cosine_ops" in ddl
    else:
        assert "hnsw" not in ddl
