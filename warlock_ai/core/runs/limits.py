"""How long a name written into a column of the ``Snapshot`` table may be, and the check every
definition makes when it is built (a name too long, or one no store can write, is refused
there rather than by the database at the first save).

The engine does not import Django: these are the model's ``max_length`` values, written
twice, and a test checks they agree.
"""

from __future__ import annotations

import re

from ..errors import AIError

#: ``Snapshot.name``: a workflow's or a supervisor's name.
MAX_FLOW_NAME_LENGTH = 200
#: ``Snapshot.version``.
MAX_VERSION_LENGTH = 100
#: ``Snapshot.next_step``: a workflow's step names (a parallel group's children too).
MAX_STEP_NAME_LENGTH = 255
#: ``Snapshot.run_id``.
MAX_RUN_ID_LENGTH = 255

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def name_problem(value: str, limit: int | None) -> str | None:
    """What makes the name ``value`` unstorable (too long, a NUL, a lone surrogate), or None."""
    if limit is not None and len(value) > limit:
        return f"is {len(value)} characters long; the limit is {limit} (the column's length)"
    found = _UNSTORABLE.search(value)
    if found is None:
        return None
    if found.group() == "\x00":
        return "contains a NUL character (U+0000), which PostgreSQL cannot store"
    return f"contains a lone surrogate U+{ord(found.group()):04X}, which has no UTF-8 form"


def shown(value: str, width: int = 40) -> str:
    """``value`` quoted for a one-line error, cut to ``width`` characters."""
    return repr(value if len(value) <= width else value[:width] + "…")


def check_storable(
    where: str, label: str, text: str | None, limit: int | None, error: type[AIError]
) -> None:
    """Raise ``error`` (``"{where}: the {label} '...' is 300 characters long; ..."``) when the
    name ``text`` cannot be stored."""
    problem = None if text is None else name_problem(text, limit)
    if problem is not None:
        raise error(f"{where}: the {label} {shown(text or '')} {problem}")
