"""``ai.workflow``: an ordered list of steps whose state is snapshotted after every step."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from . import config as _config
from .cancel import CancelToken
from .effects import run_async, run_sync
from .errors import WorkflowDriftError, WorkflowError
from .events import Emitter
from .results import WorkflowReport, WorkflowResult
from .retry import Retry
from .serialization import dumps
from .signature import signature_of
from .snapshots import COMPLETED, WorkflowSnapshot
from .steps import Output, Step, as_output
from .workflow_engine import WORKFLOW_EVENTS, WorkflowRun

#: Run ids longer than this are refused (it is the ``Snapshot.run_id`` column length).
MAX_RUN_ID_LENGTH = 255

_BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"


def _base36(n: int) -> str:
    digits = []
    while n:
        n, r = divmod(n, 36)
        digits.append(_BASE36[r])
    return "".join(reversed(digits)) or "0"


def new_run_id(prefix: str) -> str:
    """``<prefix>_<ms since epoch, base36>_<8 random base36 chars>``."""
    rand = "".join(secrets.choice(_BASE36) for _ in range(8))
    return f"{prefix}_{_base36(int(time.time() * 1000))}_{rand}"


def check_run_id(run_id: Any) -> str:
    if not isinstance(run_id, str) or not run_id.strip():
        raise WorkflowError(f"run_id must be a non-empty string, got {run_id!r}")
    if len(run_id) > MAX_RUN_ID_LENGTH:
        raise WorkflowError(
            f"run_id is {len(run_id)} characters long; the limit is {MAX_RUN_ID_LENGTH}"
        )
    return run_id


class Workflow:
    """A workflow definition. Build it with :func:`workflow`."""

    kind = "workflow"

    def __init__(
        self,
        *,
        name: str,
        steps: Sequence[Step],
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
        self.name = name
        self.version = version
        self.description = description
        self.steps: tuple[Step, ...] = tuple(steps)
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
        self.fingerprint = {"n": name, "v": version, "s": [s.fingerprint() for s in self.steps]}
        self.fingerprint_json = dumps(self.fingerprint)
        self.signature = signature_of(self.fingerprint)
        self.emitter = Emitter(on, WORKFLOW_EVENTS)

    def __repr__(self) -> str:
        return f"<Workflow {self.name!r} version={self.version!r} signature={self.signature}>"

    # --- events ---------------------------------------------------------------------------

    def on(self, event: str, handler: Callable[[dict], Any]) -> Callable[[], None]:
        """Add an instance-level handler; returns a function that removes it."""
        return self.emitter.on(event, handler)

    def off(self, event: str, handler: Callable[[dict], Any]) -> None:
        self.emitter.off(event, handler)

    # --- stores ---------------------------------------------------------------------------

    @property
    def store(self) -> Any:
        """The snapshot store in force: the definition's, else ``ai.config``'s, else settings'."""
        return _config.resolve("default_snapshot_store", self.snapshot_store)

    def _require_store(self) -> Any:
        store = self.store
        if store is None:
            raise WorkflowError(
                f'workflow "{self.name}" has no snapshot store configured; pass snapshot_store= '
                "or set ai.config(default_snapshot_store=...)"
            )
        return store

    def load(self, run_id: str) -> WorkflowSnapshot | None:
        return self._require_store().load(run_id)

    async def aload(self, run_id: str) -> WorkflowSnapshot | None:
        return await self._require_store().aload(run_id)

    # --- execute / resume -----------------------------------------------------------------

    def _run(
        self, input: Any, run_id: str | None, options: dict[str, Any], resume_from=None
    ) -> WorkflowRun:
        return WorkflowRun(
            self,
            input=input,
            run_id=check_run_id(run_id) if run_id is not None else new_run_id("wf"),
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
    ) -> WorkflowResult:
        """Run from the first step. Never raises for a failing step: see ``result.error``."""
        options = {"context": context, "cancel": cancel, "on": on, "session_id": session_id}
        return run_sync(self._run(input, run_id, options).run())

    async def aexecute(
        self,
        input: Any = None,
        *,
        run_id: str | None = None,
        context: Mapping[str, Any] | None = None,
        cancel: CancelToken | None = None,
        on: Mapping[str, Any] | None = None,
        session_id: str | None = None,
    ) -> WorkflowResult:
        """Async twin of :meth:`execute`."""
        options = {"context": context, "cancel": cancel, "on": on, "session_id": session_id}
        return await run_async(self._run(input, run_id, options).run())

    def resume(
        self,
        run_id: str,
        *,
        force: bool = False,
        context: Mapping[str, Any] | None = None,
        cancel: CancelToken | None = None,
        on: Mapping[str, Any] | None = None,
        session_id: str | None = None,
    ) -> WorkflowResult:
        """Continue a stored run where it stopped; finished steps do not run again.

        Raises ``WorkflowError`` when there is no store or no snapshot for ``run_id`` and
        ``WorkflowDriftError`` when the definition changed (unless ``force=True``).
        """
        store = self._require_store()
        snap = store.load(check_run_id(run_id))
        options = {"context": context, "cancel": cancel, "on": on, "session_id": session_id}
        prepared = self._prepare_resume(run_id, snap, force, store, options)
        if isinstance(prepared, WorkflowResult):
            return prepared
        return run_sync(prepared.run())

    async def aresume(
        self,
        run_id: str,
        *,
        force: bool = False,
        context: Mapping[str, Any] | None = None,
        cancel: CancelToken | None = None,
        on: Mapping[str, Any] | None = None,
        session_id: str | None = None,
    ) -> WorkflowResult:
        """Async twin of :meth:`resume`."""
        store = self._require_store()
        snap = await store.aload(check_run_id(run_id))
        options = {"context": context, "cancel": cancel, "on": on, "session_id": session_id}
        prepared = self._prepare_resume(run_id, snap, force, store, options)
        if isinstance(prepared, WorkflowResult):
            return prepared
        return await run_async(prepared.run())

    def _prepare_resume(self, run_id, snap, force, store, options) -> WorkflowRun | WorkflowResult:
        if snap is None:
            raise WorkflowError(f'workflow "{self.name}": no snapshot for run_id "{run_id}"')
        if not isinstance(snap, WorkflowSnapshot):
            kind = getattr(snap, "kind", type(snap).__name__)
            raise WorkflowError(f'run "{run_id}" is a {kind} run, not a workflow run')
        if not force:
            self.check_drift(snap)
        if snap.status == COMPLETED:
            return self._stored_result(snap, options)
        options["store"] = store
        return self._run(snap.input, run_id, options, resume_from=snap)

    def check_drift(self, snap: WorkflowSnapshot) -> None:
        """Raise ``WorkflowDriftError`` when ``snap`` was written by a different definition."""
        if snap.signature == self.signature:
            return
        completed = snap.completed_steps
        pending = snap.next
        if pending is None:
            pending = next((s.name for s in self.steps if s.name not in completed), None)
        raise WorkflowDriftError(
            f'workflow "{self.name}" changed since run "{snap.run_id}" started '
            f"(saved signature {snap.signature}, current {self.signature}); "
            "discard the run, resume with force=True, or migrate it",
            saved_signature=snap.signature,
            current_signature=self.signature,
            run_id=snap.run_id,
            completed_steps=completed,
            pending_step=pending,
        )

    def _stored_result(self, snap: WorkflowSnapshot, options: dict[str, Any]) -> WorkflowResult:
        """A completed run resumes to its stored result and runs nothing."""
        data = None
        if self.output is not None:
            run = self._run(snap.input, snap.run_id, options, resume_from=snap)
            data = run_sync(run.extract(self.output, run.ctx))
        duration = (snap.saved_at - snap.started_at).total_seconds() * 1000.0
        report = WorkflowReport(
            run_id=snap.run_id,
            root_run_id=snap.run_id,
            name=self.name,
            version=self.version,
            session_id=options.get("session_id"),
            status=COMPLETED,
            started_at=snap.started_at,
            ended_at=snap.saved_at,
            duration_ms=round(duration, 3),
            signature=snap.signature,
            usage=snap.usage,
            steps=dict(snap.steps),
            state=snap.state,
        )
        return WorkflowResult(report=report, data=data, usage=snap.usage)


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
