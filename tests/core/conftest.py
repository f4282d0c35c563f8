"""tests/core exercises the pure engine: no default store from Django settings, no ai.config."""

import pytest

import warlock_ai as ai
from warlock_ai.core.runs import config


@pytest.fixture(autouse=True)
def engine_without_host_defaults():
    saved = config.fallbacks()
    config.restore_fallbacks({})
    ai.reset_config()
    yield
    ai.reset_config()
    config.restore_fallbacks(saved)
