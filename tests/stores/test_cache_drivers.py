"""What only some cache drivers do: LRU eviction, hit counts on the ORM driver, and building
the default driver from settings and ``ai.config``."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured

import warlock_ai as ai
from tests.stores.conftest import DB_ALIASES
from warlock_ai.core.runs import config
from warlock_ai.stores.orm_cache import DatabaseCacheDriver


def test_lru_evicts_the_least_recently_used():
    cache = ai.cache.lru(max_entries=3)
    for key in "abc":
        cache.set(key, key)
    assert cache.get("a") == "a"  # a is now the most recent: b goes first
    cache.set("d", "d")
    assert [cache.get(k) for k in "abcd"] == ["a", None, "c", "d"]
    cache.set("c", "c2")  # a write counts as a use too
    cache.set("e", "e")
    assert [cache.get(k) for k in "acde"] == [None, "c2", "d", "e"]
    assert len(cache) == 3


def test_lru_counts_a_similar_hit_as_a_use():
    cache = ai.cache.lru(max_entries=2)
    cache.set("a", 1, vector=[1.0, 0.0])
    cache.set("b", 2, vector=[0.0, 1.0])
    assert [h.key for h in cache.similar([1.0, 0.0], threshold=0.5)] == ["a"]
    cache.set("c", 3)
    assert cache.get("a") == 1 and cache.get("b") is None


def test_lru_refuses_a_bad_size():
    with pytest.raises(ValueError, match="max_entries"):
        ai.cache.lru(max_entries=0)


def test_file_writes_are_whole_files(tmp_path):
    cache = ai.cache.file(tmp_path)
    cache.set("k", {"big": "x" * 100_000}, ttl=60, scope="s")
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) == 1 and not files[0].name.startswith(".tmp-")
    entry = json.loads(files[0].read_text())
    assert entry["key"] == "k" and entry["scope"] == "s" and entry["value"]["big"] == "x" * 100_000


@pytest.mark.services
@pytest.mark.parametrize(
    "kind",
    [
        pytest.param(
            kind, marks=pytest.mark.django_db(databases=[DB_ALIASES[kind]], transaction=True)
        )
        for kind in DB_ALIASES
    ],
)
def test_db_counts_hits_on_get_and_similar(kind):
    from warlock_ai.models import CacheEntry

    cache = ai.cache.db(using=DB_ALIASES[kind])
    v = [1.0] + [0.0] * (cache.dimensions - 1)
    cache.set("k", "v", vector=v)
    cache.set("other", "o")
    cache.get("k")
    cache.get("k", scope="someone")  # a miss: not counted
    cache.similar(v)
    rows = CacheEntry.objects.using(DB_ALIASES[kind])
    assert dict(rows.values_list("key", "hits")) == {"k": 2, "other": 0}
    cache.set("k", "new")  # a new value starts counting again
    assert rows.get(key="k").hits == 0


@pytest.mark.services
@pytest.mark.django_db(databases=["pg"], transaction=True)
def test_db_refuses_vectors_sized_otherwise_than_its_pgvector_column():
    from warlock_ai.core.errors import CacheConfigurationError

    cache = ai.cache.db(using="pg", dimensions=4)  # the test column is vector(1536)
    with pytest.raises(CacheConfigurationError, match=r"vector\(1536\)"):
        cache.set("k", 1, vector=[1.0, 0.0, 0.0, 0.0])
    cache.set("k", 1)  # entries without a vector are unaffected
    assert cache.get("k") == 1


# --- resolution ---------------------------------------------------------------------------


@pytest.fixture
def clean_config() -> Any:
    config.reset_config()
    yield
    config.reset_config()


def test_settings_build_the_default_driver(settings, clean_config):
    settings.WARLOCK_AI = {
        "CACHE": {"BACKEND": "warlock_ai.core.cache.LRUCacheDriver", "OPTIONS": {"max_entries": 7}}
    }
    driver = config.resolve("default_store")
    assert isinstance(driver, ai.cache.CacheDriver) and driver.max_entries == 7
    assert config.resolve("default_store") is driver  # built once


def test_no_cache_setting_resolves_to_none(settings, clean_config):
    settings.WARLOCK_AI = {}
    assert config.resolve("default_store") is None


def test_settings_db_driver_takes_dimensions(settings, clean_config):
    settings.WARLOCK_AI = {
        "CACHE": {
            "BACKEND": "warlock_ai.stores.orm_cache.DatabaseCacheDriver",
            "OPTIONS": {"dimensions": 384},
        }
    }
    driver = config.resolve("default_store")
    assert isinstance(driver, DatabaseCacheDriver) and driver.dimensions == 384


def test_ai_config_overrides_the_setting(settings, clean_config):
    settings.WARLOCK_AI = {"CACHE": {"BACKEND": "warlock_ai.core.cache.MemoryCacheDriver"}}
    mine = ai.cache.lru(max_entries=2)
    ai.config(default_store=mine)
    assert config.resolve("default_store") is mine
    ai.config(default_store=None)
    assert isinstance(config.resolve("default_store"), ai.cache.CacheDriver)


def test_ai_config_refuses_what_is_not_a_driver(clean_config):
    with pytest.raises(TypeError, match="default_store must be a cache driver"):
        ai.config(default_store=ai.snapshot.memory())


def test_setting_that_is_not_a_driver_is_refused(settings, clean_config):
    settings.WARLOCK_AI = {"CACHE": {"BACKEND": "warlock_ai.stores.memory.MemorySnapshotStore"}}
    with pytest.raises(ImproperlyConfigured, match="is not a cache driver"):
        config.resolve("default_store")


def test_setting_with_options_that_do_not_fit(settings, clean_config):
    settings.WARLOCK_AI = {
        "CACHE": {"BACKEND": "warlock_ai.core.cache.FileCacheDriver", "OPTIONS": {"nope": 1}}
    }
    with pytest.raises(ImproperlyConfigured, match="do not fit"):
        config.resolve("default_store")
