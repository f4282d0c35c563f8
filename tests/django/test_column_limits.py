"""The engine's name limits (``core/runs/limits.py``, written without Django) are the
``Snapshot`` columns' lengths."""

from __future__ import annotations

import pytest

from warlock_ai.core.runs import definition, limits
from warlock_ai.models import Snapshot


@pytest.mark.parametrize(
    ("column", "limit"),
    [
        ("name", limits.MAX_FLOW_NAME_LENGTH),
        ("version", limits.MAX_VERSION_LENGTH),
        ("next_step", limits.MAX_STEP_NAME_LENGTH),
        ("run_id", limits.MAX_RUN_ID_LENGTH),
        ("run_id", definition.MAX_RUN_ID_LENGTH),
    ],
)
def test_engine_limits_are_the_column_lengths(column, limit):
    assert Snapshot._meta.get_field(column).max_length == limit
