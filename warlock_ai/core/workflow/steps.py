"""Step definitions: ``ai.step``, ``ai.parallel`` and ``ai.Output``."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import WorkflowError
from ..runs.limits import MAX_STEP_NAME_LENGTH, check_storable
from .retry import Retry

STEP_EVENTS = frozenset({"starting", "retrying", "failed", "completed"})


@dataclass(frozen=True, eq=False)
class Output:
    """Build a value from the context (``extract(ctx)``), optionally validated by ``schema``.

    ``schema`` may be a callable returning the (possibly transformed) value and raising when
    invalid, a pydantic model class or ``TypeAdapter``, or any object with ``validate(value)``.
    """

    extract: Callable[[Any], Any]
    schema: Any = None


@dataclass(frozen=True, eq=False)
class Step:
    """One step of a workflow. Build it with :func:`step` or :func:`parallel`.

    A ``Step`` with none of ``run``, ``agent`` or ``parallel`` is an "empty" step: it runs as
    a no-op (``ai.step()`` refuses it, constructing ``Step`` directly allows it).
    """

    name: str
    run: Callable[[Any], Any] | None = None
    agent: Any = None
    input: Callable[[Any], Any] | None = None
    parallel: tuple[Step, ...] | None = None
    merge_state: Callable[[dict[str, Any], dict[str, Any], str], Any] | None = None
    skip: Callable[[Any], Any] | None = None
    before: Callable[[Any], Any] | None = None
    after: Callable[[Any], Any] | None = None
    output: Output | None = None
    next_step: Callable[[Any], Any] | None = None
    on_failure: Callable[[Any, BaseException], Any] | None = None
    on_cancel: Callable[[Any], Any] | None = None
    retry: Retry | bool | None = None
    on: Mapping[str, Callable[[dict[str, Any]], Any]] | None = None
    description: str | None = None

    @property
    def kind(self) -> str:
        if self.parallel is not None:
            return "parallel"
        if self.agent is not None:
            return "agent"
        if self.run is not None:
            return "run"
        return "empty"

    def fingerprint(self) -> dict[str, Any]:
        """``{n, t, a?, c}`` exactly as ``@warlock.js/ai`` builds it (``a`` only for agents)."""
        fp: dict[str, Any] = {"n": self.name, "t": self.kind}
        if self.agent is not None:
            fp["a"] = agent_name(self.agent)
        fp["c"] = (
            [child.fingerprint() for child in self.parallel] if self.parallel is not None else None
        )
        return fp


def agent_name(agent: Any) -> str:
    name = getattr(agent, "name", None)
    if not isinstance(name, str) or not name:
        raise WorkflowError(
            f"agent {agent!r} has no name; give the agent a name= so signatures are stable"
        )
    return name


def as_output(value: Output | Callable[[Any], Any] | None, where: str) -> Output | None:
    if value is None or isinstance(value, Output):
        return value
    if callable(value):
        return Output(extract=value)
    raise WorkflowError(
        f"{where}: output must be ai.Output(extract, schema) or a callable, got {value!r}"
    )


def step(
    name: str,
    run: Callable[[Any], Any] | None = None,
    *,
    agent: Any = None,
    input: Callable[[Any], Any] | None = None,
    parallel: Sequence[Step] | None = None,
    merge_state: Callable[[dict[str, Any], dict[str, Any], str], Any] | None = None,
    skip: Callable[[Any], Any] | None = None,
    before: Callable[[Any], Any] | None = None,
    after: Callable[[Any], Any] | None = None,
    output: Output | Callable[[Any], Any] | None = None,
    next_step: Callable[[Any], Any] | None = None,
    on_failure: Callable[[Any, BaseException], Any] | None = None,
    on_cancel: Callable[[Any], Any] | None = None,
    retry: Retry | bool | None = None,
    on: Mapping[str, Callable[[dict[str, Any]], Any]] | None = None,
    description: str | None = None,
) -> Step:
    """Define a step: exactly one of ``run`` (a function of ``ctx``), ``agent`` or ``parallel``."""
    if not isinstance(name, str) or not name:
        raise WorkflowError(f"ai.step(): a step needs a non-empty string name, got {name!r}")
    check_storable("ai.step()", "step name", name, MAX_STEP_NAME_LENGTH, WorkflowError)
    where = f'ai.step("{name}")'
    modes = [
        m for m, v in (("run", run), ("agent", agent), ("parallel", parallel)) if v is not None
    ]
    if len(modes) != 1:
        got = " and ".join(modes) if modes else "none"
        raise WorkflowError(f"{where}: give exactly one of run, agent or parallel (got {got})")
    if run is not None and not callable(run):
        raise WorkflowError(f"{where}: run must be callable, got {run!r}")
    if agent is not None:
        if not callable(input):
            raise WorkflowError(f"{where}: an agent step needs input=lambda ctx: {{'prompt': ...}}")
        agent_name(agent)
    children: tuple[Step, ...] | None = None
    if parallel is not None:
        children = tuple(parallel)
        for child in children:
            if not isinstance(child, Step):
                raise WorkflowError(f"{where}: parallel children must be steps, got {child!r}")
    if retry is not None and not isinstance(retry, (Retry, bool)):
        raise WorkflowError(f"{where}: retry must be ai.Retry(...) or False, got {retry!r}")
    if retry is True:
        raise WorkflowError(f"{where}: retry=True is ambiguous; use ai.Retry(attempts=...)")
    if on:
        unknown = sorted(set(on) - STEP_EVENTS)
        if unknown:
            raise WorkflowError(
                f"{where}: unknown step events {unknown}; known: {sorted(STEP_EVENTS)}"
            )
    for hook_name, hook in (
        ("skip", skip),
        ("before", before),
        ("after", after),
        ("next_step", next_step),
        ("on_failure", on_failure),
        ("on_cancel", on_cancel),
        ("merge_state", merge_state),
    ):
        if hook is not None and not callable(hook):
            raise WorkflowError(f"{where}: {hook_name} must be callable, got {hook!r}")
    return Step(
        name=name,
        run=run,
        agent=agent,
        input=input,
        parallel=children,
        merge_state=merge_state,
        skip=skip,
        before=before,
        after=after,
        output=as_output(output, where),
        next_step=next_step,
        on_failure=on_failure,
        on_cancel=on_cancel,
        retry=retry,
        on=dict(on) if on else None,
        description=description,
    )


def parallel(
    name: str,
    steps: Sequence[Step],
    *,
    merge_state: Callable[[dict[str, Any], dict[str, Any], str], Any] | None = None,
    **options: Any,
) -> Step:
    """A group whose children run concurrently and checkpoint together, once, when all settle."""
    return step(name, parallel=steps, merge_state=merge_state, **options)
