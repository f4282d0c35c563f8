"""Every model of the project agrees with its migrations, whatever the database and the cache
dimensions (the pgvector column type and its index are chosen at migrate time, outside the
model state)."""

import pytest
from django.core.management import call_command
from django.test import override_settings

pytestmark = pytest.mark.django_db(databases=["default", "pg"])


def test_makemigrations_check_is_clean():
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)


def test_makemigrations_check_is_clean_with_other_dimensions():
    cache = {"BACKEND": "example.Cache", "OPTIONS": {"dimensions": 8, "vector": True}}
    with override_settings(WARLOCK_AI={"CACHE": cache}):
        call_command("makemigrations", "--check", "--dry-run", verbosity=0)
