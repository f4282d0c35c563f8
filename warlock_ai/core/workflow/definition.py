"""``ai.workflow``: an ordered list of steps whose state is snapshotted after every step."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

from ..errors import WorkflowDriftError, WorkflowError
from ..runs.definition import Definition, store_problem
from ..runs.limits import MAX_FLOW_NAME_LENGTH, MAX_VERSION_LENGTH, check_storable
from .results import WorkflowResult
from .retry import Retry
from .run import WORKFLOW_EVENTS, WorkflowRun
from .snapshot import WorkflowSnapshot
from .steps import Output, Step, as_output


class Workflow(Definition[WorkflowSnapshot, WorkflowResult]):
    """A workflow definition. Build it with :func:`workflow`."""

    kind: ClassVar[str] = "workflow"
    snapshot_type = WorkflowSnapshot
    error_class = WorkflowError
    drift_class = WorkflowDriftError
    drift_advice = "discard the run, resume with force=True, or migrate it"
    run_class = WorkflowRun

    def __init__(
        self,
        *,
        # None is refused below with a WorkflowError (what ``workflow()`` passes when its
        # caller gave no name or steps).
        name: str | None,
        steps: Sequence[Step] | None,
        version: str | None = None,
        description: str | None = None,
        snapshot_store: Any = None,
        default_retry: Retry | bool | None = None,
        max_steps: int = 100,
        loop_warn_after: int = 5,
        next_step: Callable[[str, Any], Any] | None = None,
        output: Output | Callable[[Any], Any] | None = None,
        on: Mapping[str, Any] | None = None,
        input_schema: Any = None,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise WorkflowError(f"ai.workflow(): name must be a non-empty string, got {name!r}")
        check_storable("ai.workflow()", "name", name, MAX_FLOW_NAME_LENGTH, WorkflowError)
        where = f'ai.workflow("{name}")'
        if isinstance(steps, (str, bytes)) or not isinstance(steps, Sequence) or not steps:
            raise WorkflowError(f"{where}: steps must be a non-empty list of ai.step(...)")
        for item in steps:
            if not isinstance(item, Step):
                raise WorkflowError(
                    f"{where}: every step must be built with ai.step(), got {item!r}"
                )
        _check_unique(where, steps)
        for label, value in (("max_steps", max_steps), ("loop_warn_after", loop_warn_after)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise WorkflowError(f"{where}: {label} must be an integer >= 1, got {value!r}")
        if default_retry is not None and not isinstance(default_retry, (Retry, bool)):
            raise WorkflowError(f"{where}: default_retry must be ai.Retry(...) or False")
        if version is not None and not isinstance(version, str):
            raise WorkflowError(f"{where}: version must be a string, got {version!r}")
        check_storable(where, "version", version, MAX_VERSION_LENGTH, WorkflowError)
        self.name = name
        self.version = version
        self.description = description
        self.steps: tuple[Step, ...] = tuple(steps)
        if problem := store_problem(snapshot_store):
            raise WorkflowError(f"{where}: {problem}")
        self.snapshot_store = snapshot_store
        self.default_retry = default_retry
        self.max_steps = max_steps
        self.loop_warn_after = loop_warn_after
        self.next_step = next_step
        self.output = as_output(output, where)
        self.input_schema = input_schema
        self.steps_by_name = {s.name: s for s in self.steps}
        self.next_declared = {
            a.name: b.name for a, b in zip(self.steps, self.steps[1:], strict=False)
        }
        fingerprint = {"n": name, "v": version, "s": [s.fingerprint() for s in self.steps]}
        self._identify(fingerprint, WORKFLOW_EVENTS, on)

    def drift_details(self, snapshot: WorkflowSnapshot) -> dict[str, Any]:
        completed = snapshot.completed_steps
        pending = snapshot.next
        if pending is None:
            pending = next((s.name for s in self.steps if s.name not in completed), None)
        return {"completed_steps": completed, "pending_step": pending}


def _check_unique(where: str, steps: Sequence[Step]) -> None:
    seen: set[str] = set()
    for item in steps:
        for name in (item.name, *(c.name for c in item.parallel or ())):
            if name in seen:
                raise WorkflowError(
                    f'{where}: step name "{name}" is used twice; step names must be unique'
                )
            seen.add(name)


def workflow(
    name: str | None = None, steps: Sequence[Step] | None = None, **options: Any
) -> Workflow:
    """Define a workflow: ``ai.workflow(name="catalog-import", version="1", steps=[...])``.

    The options are those of :class:`Workflow`: ``version``, ``description``,
    ``snapshot_store``, ``default_retry``, ``max_steps``, ``loop_warn_after``, ``next_step``,
    ``output``, ``on``, ``input_schema``.
    """
    return Workflow(name=name, steps=steps, **options)
