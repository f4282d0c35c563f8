"""The supervisor: each iteration a router (an agent, or a ``route`` callable) picks one or
more intents, they run concurrently, their outputs merge into the state, ``evaluate`` may end
or redirect the run, and the run is snapshotted. Resumes after a crash at the next iteration.
See reference section 2; the engine is in ``supervisor_engine``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from . import config as _config
from .cancel import CancelToken
from .effects import run_async, run_sync
from .errors import SupervisorDriftError, SupervisorFailedError
from .events import Emitter
from .intents import AGENT, Intent, resolve_intents, supervisor_fingerprint
from .serialization import dumps
from .signature import signature_of
from .snapshots import COMPLETED
from .supervisor_engine import (
    SUPERVISOR_EVENTS,
    SupervisorReport,
    SupervisorResult,
    SupervisorRun,
)
from .supervisor_snapshots import SupervisorSnapshot
from .workflow import check_run_id, new_run_id

DEFAULT_MAX_ITERATIONS = 10
DEFAULT_MAX_FAN_OUT = 10


def _positive_int(where: str, label: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise SupervisorFailedError(f"{where}: {label} must be an integer >= 1, got {value!r}")
    return value


class Supervisor:
    """A supervisor definition. Build it with :func:`supervisor`."""

    kind = "supervisor"

    def __init__(
        self,
        *,
        name: str,
        intents: Mapping[str, Any],
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
        where = f'ai.supervisor("{name}")'
        self.name = name
        self.intents: dict[str, Intent] = resolve_intents(name, intents)
        if (router is None) == (route is None):
            raise SupervisorFailedError(
                f"{where}: give exactly one of router= (an agent) or route= (a callable)",
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
        self.snapshot_store = snapshot_store
        self.output, self.goal = output, goal
        self.version, self.description = version, description
        self.middleware = tuple(middleware)
        self.fingerprint = supervisor_fingerprint(
            name, self.intents, router, route, evaluate, initial_agent, max_iterations
        )
        self.fingerprint_json = dumps(self.fingerprint)
        self.signature = signature_of(self.fingerprint)
        self.emitter = Emitter(on, SUPERVISOR_EVENTS)

    def _check_descriptions(self, where: str) -> None:
        missing = [k for k, i in self.intents.items() if not i.description]
        if missing:
            raise SupervisorFailedError(
                f"{where}: with a router every intent needs a description (missing: "
                f"{', '.join(missing)}); pass ai.intent(unit, description=...)"
            )

    def __repr__(self) -> str:
        return f"<Supervisor {self.name!r} signature={self.signature}>"

    @property
    def agents(self) -> list[str]:
        return [k for k, i in self.intents.items() if i.kind == AGENT]

    def on(self, event: str, handler: Callable[[dict], Any]) -> Callable[[], None]:
        return self.emitter.on(event, handler)

    @property
    def store(self) -> Any:
        """The snapshot store in force: the definition's, else ``ai.config``'s, else settings'."""
        return _config.resolve("default_snapshot_store", self.snapshot_store)

    # --- execute / resume -----------------------------------------------------------------

    def _run(self, input: Any, run_id: str | None, options: dict[str, Any], resume_from=None):
        return SupervisorRun(
            self,
            input=input,
            run_id=check_run_id(run_id) if run_id is not None else new_run_id("sv"),
            context=options.get("context"),
            cancel=options.get("cancel"),
            on=options.get("on"),
            session_id=options.get("session_id"),
            store=options.get("store") or self.store,
            resume_from=resume_from,
        )

    def execute(
        self,
        input: Any = None,
        *,
        run_id: str | None = None,
        context: Mapping[str, Any] | None = None,
        cancel: CancelToken | None = None,
        on: Mapping[str, Any] | None = None,
        session_id: str | None = None,
    ) -> SupervisorResult:
        """Run to the end. Never raises for a failing run: the error is in ``result.error``."""
        options = {"context": context, "cancel": cancel, "on": on, "session_id": session_id}
        run = self._run(input, run_id, options)
        return run.with_middleware(lambda: run_sync(run.run()))

    async def aexecute(
        self,
        input: Any = None,
        *,
        run_id: str | None = None,
        context: Mapping[str, Any] | None = None,
        cancel: CancelToken | None = None,
        on: Mapping[str, Any] | None = None,
        session_id: str | None = None,
    ) -> SupervisorResult:
        """Async twin of :meth:`execute`."""
        options = {"context": context, "cancel": cancel, "on": on, "session_id": session_id}
        run = self._run(input, run_id, options)
        return await run.awith_middleware(lambda: run_async(run.run()))

    def resume(
        self,
        run_id: str,
        *,
        force: bool = False,
        context: Mapping[str, Any] | None = None,
        cancel: CancelToken | None = None,
        on: Mapping[str, Any] | None = None,
        session_id: str | None = None,
    ) -> SupervisorResult:
        """Continue a stored run at the iteration after its last settled one.

        Raises ``SupervisorFailedError`` when there is no store or no snapshot and
        ``SupervisorDriftError`` when the definition changed (unless ``force=True``). A
        completed run returns its stored result and runs nothing.
        """
        store = self._require_store()
        snap = store.load(check_run_id(run_id))
        options = {"context": context, "cancel": cancel, "on": on, "session_id": session_id}
        prepared = self._prepare_resume(run_id, snap, force, store, options)
        if isinstance(prepared, SupervisorResult):
            return prepared
        return prepared.with_middleware(lambda: run_sync(prepared.run()))

    async def aresume(
        self,
        run_id: str,
        *,
        force: bool = False,
        context: Mapping[str, Any] | None = None,
        cancel: CancelToken | None = None,
        on: Mapping[str, Any] | None = None,
        session_id: str | None = None,
    ) -> SupervisorResult:
        """Async twin of :meth:`resume`."""
        store = self._require_store()
        snap = await store.aload(check_run_id(run_id))
        options = {"context": context, "cancel": cancel, "on": on, "session_id": session_id}
        prepared = self._prepare_resume(run_id, snap, force, store, options)
        if isinstance(prepared, SupervisorResult):
            return prepared
        return await prepared.awith_middleware(lambda: run_async(prepared.run()))

    def _require_store(self) -> Any:
        store = self.store
        if store is None:
            raise SupervisorFailedError(
                f'supervisor "{self.name}" has no snapshot store configured; pass '
                "snapshot_store= or set ai.config(default_snapshot_store=...)"
            )
        return store

    def _prepare_resume(self, run_id, snap, force, store, options) -> Any:
        if snap is None:
            raise SupervisorFailedError(
                f'supervisor "{self.name}": no snapshot for run_id "{run_id}"'
            )
        if not isinstance(snap, SupervisorSnapshot):
            raise SupervisorFailedError(
                f'run "{run_id}" is a {snap.kind} run, not a supervisor run'
            )
        if not force:
            self.check_drift(snap)
        if snap.status == COMPLETED:
            return SupervisorReport.stored_result(self, snap, options.get("session_id"))
        options["store"] = store
        return self._run(snap.input, run_id, options, resume_from=snap)

    def check_drift(self, snap: SupervisorSnapshot) -> None:
        """Raise ``SupervisorDriftError`` when ``snap`` was written by a different definition."""
        if snap.signature == self.signature:
            return
        raise SupervisorDriftError(
            f'supervisor "{self.name}" changed since run "{snap.run_id}" started '
            f"(saved signature {snap.signature}, current {self.signature}); "
            "discard the run, or resume with force=True",
            saved_signature=snap.signature,
            current_signature=self.signature,
            run_id=snap.run_id,
        )


def supervisor(name: str | None = None, intents: Mapping[str, Any] | None = None, **options: Any):
    """Define a supervisor: ``ai.supervisor(name="support", intents={...}, router=agent)``.

    Options: ``router`` or ``route``, ``evaluate``, ``state``, ``max_iterations`` (10),
    ``max_fan_out`` (10), ``initial_agent``, ``snapshot_store``, ``output``, ``goal``,
    ``version``, ``description``, ``middleware``, ``on``.
    """
    return Supervisor(name=name, intents=intents, **options)
