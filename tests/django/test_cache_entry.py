"""``CacheEntry`` and ``VectorField``: a list of floats on every database, pgvector's
``vector(n)`` with an HNSW cosine index on PostgreSQL 16 + pgvector ("pg")."""

import math
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connections, transaction
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from warlock_ai import vector
from warlock_ai.fields import VectorField, to_floats
from warlock_ai.models import CacheEntry

pytestmark = pytest.mark.django_db(databases=["default", "pg"])

DIMENSIONS = 1536


@pytest.fixture(params=["default", "pg"], ids=["sqlite", "postgres"])
def alias(request):
    return request.param


def unit(index, size=DIMENSIONS):
    """A unit vector along axis ``index``."""
    values = [0.0] * size
    values[index] = 1.0
    return values


def test_vector_round_trip(alias):
    embedding = [0.25, -1.5, 3e-05, *([0.0] * (DIMENSIONS - 3))]
    CacheEntry.objects.using(alias).create(
        namespace="n", key="k", value={"a": "é"}, embedding=embedding
    )
    row = CacheEntry.objects.using(alias).get(namespace="n", key="k")
    assert row.embedding == embedding
    assert all(isinstance(x, float) for x in row.embedding)
    assert (row.value, row.hits, row.scope, row.expires_at) == ({"a": "é"}, 0, None, None)


def test_null_embedding(alias):
    CacheEntry.objects.using(alias).create(namespace="n", key="k", value=None)
    assert CacheEntry.objects.using(alias).get().embedding is None
    assert CacheEntry.objects.using(alias).filter(embedding__isnull=True).count() == 1


def test_column_type_follows_the_database(alias):
    field = CacheEntry._meta.get_field("embedding")
    connection = connections[alias]
    expected = {"default": "text", "pg": f"vector({DIMENSIONS})"}[alias]
    assert field.db_type(connection) == expected


def test_namespace_and_key_are_unique(alias):
    CacheEntry.objects.using(alias).create(namespace="n", key="k")
    with pytest.raises(IntegrityError), transaction.atomic(using=alias):
        CacheEntry.objects.using(alias).create(namespace="n", key="k")
    CacheEntry.objects.using(alias).create(namespace="other", key="k")


def test_expired_and_live(alias):
    now = timezone.now()
    objects = CacheEntry.objects.using(alias)
    objects.create(namespace="n", key="old", expires_at=now - timedelta(seconds=1))
    objects.create(namespace="n", key="new", expires_at=now + timedelta(hours=1))
    objects.create(namespace="n", key="forever")
    assert list(objects.expired(now).values_list("key", flat=True)) == ["old"]
    assert list(objects.live(now).values_list("key", flat=True)) == ["forever", "new"]
    assert objects.for_namespace("n").count() == 3


def test_pg_column_is_vector_with_an_hnsw_cosine_index():
    with connections["pg"].cursor() as cursor:
        cursor.execute(
            "SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
            "WHERE a.attrelid = 'warlock_ai_cacheentry'::regclass AND a.attname = 'embedding'"
        )
        assert cursor.fetchone()[0] == f"vector({DIMENSIONS})"
        cursor.execute(
            "SELECT indexdef FROM pg_indexes WHERE tablename = 'warlock_ai_cacheentry' "
            "AND indexname = 'warlock_cache_embed_hnsw'"
        )
        (indexdef,) = cursor.fetchone()
    assert "USING hnsw (embedding vector_cosine_ops)" in indexdef


def test_pg_cosine_distance_query():
    objects = CacheEntry.objects.using("pg")
    objects.create(namespace="n", key="x", embedding=unit(0))
    objects.create(namespace="n", key="y", embedding=unit(1))
    diagonal = unit(0)
    diagonal[1] = 1.0
    objects.create(namespace="n", key="xy", embedding=diagonal)
    query = [1.0, 0.1, *([0.0] * (DIMENSIONS - 2))]
    with connections["pg"].cursor() as cursor:
        cursor.execute(
            "SELECT key, embedding <=> %s AS distance FROM warlock_ai_cacheentry "
            "WHERE namespace = %s ORDER BY embedding <=> %s LIMIT 3",
            [to_text(query), "n", to_text(query)],
        )
        rows = cursor.fetchall()
    assert [key for key, _ in rows] == ["x", "xy", "y"]
    assert math.isclose(rows[0][1], 1 - 1 / math.hypot(1.0, 0.1), rel_tol=1e-5)


def to_text(values):
    return "[" + ",".join(repr(v) for v in values) + "]"


def test_pg_dimensions_come_from_the_cache_setting():
    field = CacheEntry._meta.get_field("embedding")
    cache = {"BACKEND": "example.Cache", "OPTIONS": {"dimensions": 8}}
    with override_settings(WARLOCK_AI={"CACHE": cache}):
        assert field.db_type(connections["pg"]) == "vector(8)"
        assert field.db_type(connections["default"]) == "text"
    assert field.db_type(connections["pg"]) == f"vector({DIMENSIONS})"


def test_pgvector_detection_is_cached_per_database():
    connection = connections["pg"]
    vector.forget()
    assert vector.pgvector_installed(connection) is True
    assert vector.pgvector_available(connection) is True
    assert vector.pgvector_installed(connections["default"]) is False
    with CaptureQueriesContext(connection) as queries:
        vector.pgvector_installed(connection)
    assert queries.captured_queries == []


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ([1, 2.5], [1.0, 2.5]),
        ((0.5,), [0.5]),
        ("[1,2,3]", [1.0, 2.0, 3.0]),
        (b"[0.5]", [0.5]),
    ],
)
def test_to_floats(value, expected):
    assert to_floats(value) == expected


def test_bad_vectors_are_refused():
    field = VectorField()
    with pytest.raises(ValidationError):
        field.to_python({"a": 1})
    with pytest.raises(ValidationError):
        field.to_python(["x"])
    with pytest.raises(ValueError):
        field.get_db_prep_value([float("nan")], connections["default"])


def test_value_to_string_serialises_json():
    entry = CacheEntry(namespace="n", key="k", embedding=[1, 0.5])
    field = CacheEntry._meta.get_field("embedding")
    assert field.value_to_string(entry) == "[1.0,0.5]"
    assert field.to_python(field.value_to_string(entry)) == [1.0, 0.5]
