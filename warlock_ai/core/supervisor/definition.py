"""The supervisor: each iteration a router (an agent, or a ``route`` callable) picks one or
more intents, they run concurrently, their outputs merge into the state, ``evaluate`` may end
or redirect the run, and the run is snapshotted. Resumes after a crash at the next iteration.
See reference section 2; the iteration loop is in ``supervisor.run``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

from ..errors import AIError, DriftError, SupervisorDriftError, SupervisorFailedError
from ..runs.definition import Definition, store_problem
from ..runs.effects import run_async, run_sync
from ..runs.limits import MAX_FLOW_NAME_LENGTH, MAX_VERSION_LENGTH, check_storable
from ..runs.run import Run
from .intents import AGENT, Intent, resolve_intents, supervisor_fingerprint
from .results import SupervisorResult
from .run import SUPERVISOR_EVENTS, SupervisorRun
from .snapshot import SupervisorSnapshot

DEFAULT_MAX_ITERATIONS = 10
DEFAULT_MAX_FAN_OUT = 10


def _positive_int(where: str, label: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise SupervisorFailedError(f"{where}: {label} must be an integer >= 1, got {value!r}")
    return value


class Supervisor(Definition[SupervisorSnapshot, SupervisorResult]):
    """A supervisor definition. Build it with :func:`supervisor`."""

    kind: ClassVar[str] = "supervisor"
    snapshot_type = SupervisorSnapshot
    error_class: ClassVar[type[AIError]] = SupervisorFailedError
    drift_class: ClassVar[type[DriftError]] = SupervisorDriftError
    run_class: ClassVar[type[Run[Any, Any, Any]]] = SupervisorRun

    def __init__(
        self,
        *,
        # None is refused below with a SupervisorFailedError (what ``supervisor()`` passes when
        # its caller gave no name or intents).
        name: str | None,
        intents: Mapping[str, Any] | None,
        router: Any = None,
        route: Callable[[Any], Any] | None = None,
        evaluate: Callable[[Any], Any] | None = None,
        state: Mapping[str, Any] | None = None,
        max_iterations: int | None = None,
        max_fan_out: int = DEFAULT_MAX_FAN_OUT,
        initial_agent: str | None = None,
        snapshot_store: Any = None,
        output: Any = None,
        goal: str | None = None,
        version: str | None = None,
        description: str | None = None,
        middleware: Sequence[Any] = (),
        on: Mapping[str, Any] | None = None,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise SupervisorFailedError(
                f"ai.supervisor(): name must be a non-empty string, got {name!r}"
            )
        check_storable("ai.supervisor()", "name", name, MAX_FLOW_NAME_LENGTH, SupervisorFailedError)
        where = f'ai.supervisor("{name}")'
        if version is not None and not isinstance(version, str):
            raise SupervisorFailedError(f"{where}: version must be a string, got {version!r}")
        check_storable(where, "version", version, MAX_VERSION_LENGTH, SupervisorFailedError)
        self.name = name
        self.intents: dict[str, Intent] = resolve_intents(name, intents)
        if (router is None) == (route is None):
            raise SupervisorFailedError(
                f"{where}: give exactly one of router= (an agent) or route= (a callable)",
                context={"authoring": True},
            )
        if route is not None and not callable(route):
            raise SupervisorFailedError(
                f"{where}: route= must be a callable (ctx) -> intent key(s), got {route!r}",
                context={"authoring": True},
            )
        if router is not None:
            self._check_descriptions(where)
        if initial_agent is not None and initial_agent not in self.intents:
            raise SupervisorFailedError(
                f'{where}: initial_agent "{initial_agent}" is not an intent '
                f"(intents: {', '.join(self.intents)})"
            )
        if max_iterations is not None:
            _positive_int(where, "max_iterations", max_iterations)
        self.max_iterations = max_iterations or DEFAULT_MAX_ITERATIONS
        self.max_fan_out = _positive_int(where, "max_fan_out", max_fan_out)
        self.router, self.route, self.evaluate = router, route, evaluate
        self.initial_state = dict(state or {})
        self.initial_agent = initial_agent
        if problem := store_problem(snapshot_store):
            raise SupervisorFailedError(f"{where}: {problem}", context={"authoring": True})
        self.snapshot_store = snapshot_store
        self.output, self.goal = output, goal
        self.version, self.description = version, description
        self.middleware = tuple(middleware)
        fingerprint = supervisor_fingerprint(
            name, self.intents, router, route, evaluate, initial_agent, max_iterations
        )
        self._identify(fingerprint, SUPERVISOR_EVENTS, on)

    def _check_descriptions(self, where: str) -> None:
        missing = [k for k, i in self.intents.items() if not i.description]
        if missing:
            raise SupervisorFailedError(
                f"{where}: with a router every intent needs a description (missing: "
                f"{', '.join(missing)}); pass ai.intent(unit, description=...)"
            )

    @property
    def agents(self) -> list[str]:
        return [k for k, i in self.intents.items() if i.kind == AGENT]

    def _drive(self, run: Run[Any, SupervisorSnapshot, SupervisorResult]) -> SupervisorResult:
        assert isinstance(run, SupervisorRun)
        result: SupervisorResult = run.with_middleware(lambda: run_sync(run.run()))
        return result

    async def _adrive(
        self, run: Run[Any, SupervisorSnapshot, SupervisorResult]
    ) -> SupervisorResult:
        assert isinstance(run, SupervisorRun)
        result: SupervisorResult = await run.awith_middleware(lambda: run_async(run.run()))
        return result


def supervisor(
    name: str | None = None, intents: Mapping[str, Any] | None = None, **options: Any
) -> Supervisor:
    """Define a supervisor: ``ai.supervisor(name="support", intents={...}, router=agent)``.

    Options: ``router`` or ``route``, ``evaluate``, ``state``, ``max_iterations`` (10),
    ``max_fan_out`` (10), ``initial_agent``, ``snapshot_store``, ``output``, ``goal``,
    ``version``, ``description``, ``middleware``, ``on``.
    """
    return Supervisor(name=name, intents=intents, **options)
