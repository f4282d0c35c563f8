"""The example project with a cache configured, for ``manage.py check`` in a subprocess.

``WARLOCK_TEST_CACHE_OPTIONS`` (JSON) sets the cache's OPTIONS. The backend stands in for a
cache driver that keeps its entries in the ORM.
"""

import json
import os

from example_project.settings import *  # noqa: F403


class PgvectorCache:
    uses_pgvector = True


WARLOCK_AI = {
    "CACHE": {
        "BACKEND": "tests.django.cache_settings.PgvectorCache",
        "OPTIONS": json.loads(os.environ.get("WARLOCK_TEST_CACHE_OPTIONS", "{}")),
    }
}
