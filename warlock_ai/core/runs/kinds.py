"""One descriptor per kind of durable run (workflow, supervisor, ...).

Whatever differs between kinds outside the engine itself (which snapshot class rebuilds a
stored run, how a run's position and progress read, what its fingerprint lists, whether its
records can be migrated) is asked of the kind's :class:`RunKind` instead of being decided by
``if kind == ...`` in the registry, jobs, commands and admin. Each kind's package registers
its descriptor when it is imported; the kernel never imports a kind.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..errors import AIError
    from .drift import DefinitionDiff
    from .snapshots import RunSnapshot

ProgressLine = Callable[[Mapping[str, Any]], str]


def _resume_by_run_id(definition: Any, run_id: str, **options: Any) -> Any:
    return definition.resume(run_id, **options)


def _nothing_more(snapshot: Any) -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class RunKind:
    """What the rest of the package needs to know about one kind of run."""

    #: The value of ``Snapshot.kind`` and of a definition's ``kind``.
    name: str
    #: Prefix of generated run ids (``wf_...``).
    run_id_prefix: str
    snapshot_type: type[RunSnapshot]
    #: What a run is made of: "steps", "iterations".
    units: str
    #: What a fingerprint lists ("steps", "intents"), and the names it lists.
    parts: str
    fingerprint_parts: Callable[[Mapping[str, Any] | None], list[str]]
    #: What changed from a stored fingerprint to the current one.
    diff: Callable[[Mapping[str, Any] | None, Mapping[str, Any]], DefinitionDiff]
    #: Where a run stands, from its row: "normalize", "iteration 3", "—" once completed.
    position: Callable[[str, str | None, int | None], str]
    #: A stored run's progress in a few words ("completed: a, b; next: c").
    progress: Callable[[Any], str]
    #: Per-call event handlers' lines for the commands: event name -> its one-line text.
    progress_lines: Mapping[str, ProgressLine] = field(default_factory=dict)
    #: A report's records in brief, JSON-ready, for the commands' ``--json``: one dict per
    #: step or iteration (name, status, duration, attempts...).
    report_summary: Callable[[Any], list[dict[str, Any]]] = field(default=lambda report: [])
    #: Its records can be renamed to a changed definition's (``migrate_run``).
    migratable: bool = False
    #: The error a cancelled run of this kind stores (its ``Run.cancelled_class``): what an
    #: operator's cancel of a run no live worker holds writes.
    cancelled_error: type[AIError] | None = None
    #: Finish the stored run ``run_id`` with its registered definition:
    #: ``resume_stored(definition, run_id, force=, context=, cancel=, on=)`` -> its result, or
    #: None when there was nothing left to run. What ``resume_run``, ``drain_runs`` and the
    #: resume jobs call, whatever the kind resumes by (a run id, or a turn of a session).
    resume_stored: Callable[..., Any] = _resume_by_run_id
    #: What a stored run is part of, for the commands' lines and ``--json`` (a turn: its
    #: ``session_id`` and ``turn_index``); ``{}`` for a run that stands alone.
    about: Callable[[Any], dict[str, Any]] = _nothing_more
    #: The report status of a run that ended cleanly (a turn: ``awaiting-input``).
    settled_status: str = "completed"
    #: How a run of this kind is started when ``execute_run`` cannot start one (a turn is
    #: ``execute_turn``); None when ``execute_run`` / ``execute_flow`` start it.
    start_advice: str | None = None


_lock = threading.Lock()
_kinds: dict[str, RunKind] = {}


def register_kind(kind: RunKind) -> RunKind:
    with _lock:
        _kinds[kind.name] = kind
    return kind


def kind_named(name: str) -> RunKind:
    """The descriptor of ``name``; ``ValueError`` naming the known kinds otherwise."""
    try:
        return _kinds[name]
    except KeyError:
        raise ValueError(f"unknown run kind {name!r}; known kinds: {sorted(_kinds)}") from None


def kind_names() -> tuple[str, ...]:
    return tuple(sorted(_kinds))
