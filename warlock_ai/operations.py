"""Operations on runs, written once and called by the commands, the admin, the API and jobs."""

from __future__ import annotations

from typing import Any

from .core.errors import WorkflowError
from .core.workflow import check_run_id
from .registry import registry
from .stores.handler import get_snapshot_store


class UnknownRunError(WorkflowError, LookupError):
    """No snapshot exists for that run id."""

    default_code = "UNKNOWN_RUN"


def load_snapshot(run_id: str, store: Any = None) -> Any:
    """The stored snapshot of ``run_id`` or ``UnknownRunError``."""
    store = store or get_snapshot_store()
    snap = store.load(check_run_id(run_id))
    if snap is None:
        raise UnknownRunError(f'no run "{run_id}" in the snapshot store')
    return snap


def definition_for(snapshot: Any) -> Any:
    """The registered definition that wrote ``snapshot``."""
    return registry.get(snapshot.kind, snapshot.name)


class RunExistsError(WorkflowError):
    """A run with that id is already stored."""

    default_code = "RUN_EXISTS"


def execute_flow(name: str, input: Any = None, *, run_id: str | None = None, **options: Any) -> Any:
    """Start the registered flow ``name`` (``kind:name`` when ambiguous) as a new run.

    An existing run is never overwritten by a new one: a stored ``run_id`` is refused.
    """
    definition = registry.find(name)
    if run_id is not None:
        existing = (definition.store or get_snapshot_store()).load(check_run_id(run_id))
        if existing is not None:
            raise RunExistsError(
                f'run "{run_id}" already exists ({existing.status}); resume it with '
                "resume_run, or delete its snapshot first to start again"
            )
    return definition.execute(input, run_id=run_id, **options)


def resume_run(run_id: str, *, force: bool = False, **options: Any) -> Any:
    """Resume a stored run with its registered definition (drift checked unless ``force``)."""
    snapshot = load_snapshot(run_id)
    return definition_for(snapshot).resume(run_id, force=force, **options)
