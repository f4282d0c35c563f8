"""What every durable definition does, written once: its identity (fingerprint, signature),
its events, the store it writes to, ``execute`` / ``aexecute`` / ``resume`` / ``aresume``,
the drift check and the stored result of a completed run.

A kind subclasses :class:`Definition` with its constructor (validation, fingerprint), its
``Run`` class and how a completed run's stored snapshot becomes a result.
"""

from __future__ import annotations

import secrets
import time
from abc import ABC
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, ClassVar, Generic, TypeVar

from ..errors import AIError, DriftError, WorkflowError
from . import config as _config
from .cancel import CancelToken
from .effects import run_async, run_sync
from .events import Emitter, Handler, HandlerMap
from .kinds import RunKind, kind_named
from .run import Run, RunOptions
from .serialization import dumps
from .signature import signature_of
from .snapshots import COMPLETED, RunSnapshot

#: Run ids longer than this are refused (it is the ``Snapshot.run_id`` column length).
MAX_RUN_ID_LENGTH = 255

_BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"

SnapT = TypeVar("SnapT", bound=RunSnapshot)
ResultT = TypeVar("ResultT")


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
    """``run_id`` when it is a usable run id; ``WorkflowError`` saying what is wrong otherwise.

    Control and other unprintable characters (newline, ESC, DEL, C1 controls, bidi and other
    format characters, line separators, lone surrogates) are refused: an id is echoed to
    operators' terminals and logs, where they would rewrite what is shown. The error shows
    the id escaped, never raw.
    """
    if not isinstance(run_id, str) or not run_id.strip():
        raise WorkflowError(f"run_id must be a non-empty string, got {run_id!r}")
    if len(run_id) > MAX_RUN_ID_LENGTH:
        raise WorkflowError(
            f"run_id is {len(run_id)} characters long; the limit is {MAX_RUN_ID_LENGTH}"
        )
    if not run_id.isprintable():
        index, char = next((i, c) for i, c in enumerate(run_id) if not c.isprintable())
        raise WorkflowError(
            f"run_id {run_id!r} contains an unprintable character (U+{ord(char):04X} at "
            f"position {index}); use letters, digits, spaces and punctuation"
        )
    return run_id


def store_problem(value: Any) -> str | None:
    """Why ``value`` cannot be a snapshot store (None or a store: no problem)."""
    if value is None:
        return None
    if all(callable(getattr(value, method, None)) for method in ("load", "save", "delete")):
        return None
    return (
        "snapshot_store must be a snapshot store (ai.snapshot.db(), ai.snapshot.redis(...), "
        f"ai.snapshot.memory()), got {value!r}"
    )


class Definition(ABC, Generic[SnapT, ResultT]):
    """A durable definition: a workflow, a supervisor, ..."""

    #: The kind's name (its ``RunKind`` is ``descriptor``).
    kind: ClassVar[str]
    #: The snapshot class this kind writes; a stored run of another class is refused. (Set on
    #: the class, but not declared a ClassVar: a ClassVar cannot use the type variable.)
    snapshot_type: type[SnapT]
    #: Raised for a missing store or snapshot and for bad options.
    error_class: ClassVar[type[AIError]]
    #: Raised by ``resume`` when the stored run was written by another definition.
    drift_class: ClassVar[type[DriftError]]
    #: What the drift error suggests doing.
    drift_advice: ClassVar[str] = "discard the run, or resume with force=True"

    name: str
    version: str | None
    snapshot_store: Any
    fingerprint: dict[str, Any]
    fingerprint_json: str
    signature: str
    emitter: Emitter

    def _identify(
        self, fingerprint: dict[str, Any], events: frozenset[str], on: HandlerMap | None
    ) -> None:
        """Set the structural identity (fingerprint, signature) and the event emitter."""
        self.fingerprint = fingerprint
        self.fingerprint_json = dumps(fingerprint)
        self.signature = signature_of(fingerprint)
        self.emitter = Emitter(on, events)

    @property
    def descriptor(self) -> RunKind:
        return kind_named(self.kind)

    def __repr__(self) -> str:
        version = f" version={self.version!r}" if self.version is not None else ""
        return f"<{type(self).__name__} {self.name!r}{version} signature={self.signature}>"

    # --- events ---------------------------------------------------------------------------

    def on(self, event: str, handler: Handler) -> Callable[[], None]:
        """Add an instance-level handler; returns a function that removes it."""
        return self.emitter.on(event, handler)

    def off(self, event: str, handler: Handler) -> None:
        self.emitter.off(event, handler)

    # --- stores ---------------------------------------------------------------------------

    @property
    def store(self) -> Any:
        """The snapshot store in force: the definition's, else ``ai.config``'s, else settings'."""
        return _config.resolve("default_snapshot_store", self.snapshot_store)

    def _require_store(self) -> Any:
        store = self.store
        if store is None:
            raise self.error_class(
                f'{self.kind} "{self.name}" has no snapshot store configured; pass '
                "snapshot_store= or set ai.config(default_snapshot_store=...)"
            )
        return store

    def load(self, run_id: str) -> SnapT | None:
        snapshot: SnapT | None = self._require_store().load(run_id)
        return snapshot

    async def aload(self, run_id: str) -> SnapT | None:
        snapshot: SnapT | None = await self._require_store().aload(run_id)
        return snapshot

    # --- execute / resume -----------------------------------------------------------------

    #: The kind's ``Run``: one execution of this definition.
    run_class: ClassVar[type[Run[Any, Any, Any]]]

    def _new_run(
        self,
        input: Any,
        run_id: str,
        options: RunOptions,
        store: Any,
        resume_from: SnapT | None = None,
    ) -> Run[Any, SnapT, ResultT]:
        return self.run_class(
            self, input=input, run_id=run_id, options=options, store=store, resume_from=resume_from
        )

    def _run(
        self, input: Any, run_id: str | None, options: RunOptions, store: Any, resume_from: Any
    ) -> Run[Any, SnapT, ResultT]:
        if run_id is None:
            run_id = new_run_id(self.descriptor.run_id_prefix)
        return self._new_run(input, check_run_id(run_id), options, store, resume_from)

    def _drive(self, run: Run[Any, SnapT, ResultT]) -> ResultT:
        """Run to the end in this thread (a kind may wrap it, e.g. in middleware)."""
        result: ResultT = run_sync(run.run())
        return result

    async def _adrive(self, run: Run[Any, SnapT, ResultT]) -> ResultT:
        result: ResultT = await run_async(run.run())
        return result

    def execute(
        self,
        input: Any = None,
        *,
        run_id: str | None = None,
        context: Mapping[str, Any] | None = None,
        cancel: CancelToken | None = None,
        on: HandlerMap | None = None,
        session_id: str | None = None,
    ) -> ResultT:
        """Run from the start. Never raises for a failing run: see ``result.error``.

        Raises only before anything runs: ``LeaseHeldError`` when a live worker holds
        ``run_id``, or an error naming a bad option. A lease lost later (another worker took
        the run over) ends the run ``failed`` with ``LeaseLostError`` as its error.
        """
        options = RunOptions(context, cancel, on, session_id)
        return self._drive(self._run(input, run_id, options, self.store, None))

    async def aexecute(
        self,
        input: Any = None,
        *,
        run_id: str | None = None,
        context: Mapping[str, Any] | None = None,
        cancel: CancelToken | None = None,
        on: HandlerMap | None = None,
        session_id: str | None = None,
    ) -> ResultT:
        """Async twin of :meth:`execute`."""
        options = RunOptions(context, cancel, on, session_id)
        return await self._adrive(self._run(input, run_id, options, self.store, None))

    def resume(
        self,
        run_id: str,
        *,
        force: bool = False,
        context: Mapping[str, Any] | None = None,
        cancel: CancelToken | None = None,
        on: HandlerMap | None = None,
        session_id: str | None = None,
    ) -> ResultT:
        """Continue a stored run where it stopped; what finished does not run again.

        Raises before running anything when there is no store or no snapshot for ``run_id``
        and when the definition changed since the run started (unless ``force=True``). A
        completed run returns its stored result and runs nothing.
        """
        store = self._require_store()
        snapshot = store.load(check_run_id(run_id))
        options = RunOptions(context, cancel, on, session_id)
        prepared = self._prepare_resume(run_id, snapshot, force, store, options)
        if not isinstance(prepared, Run):
            return prepared
        return self._drive(prepared)

    async def aresume(
        self,
        run_id: str,
        *,
        force: bool = False,
        context: Mapping[str, Any] | None = None,
        cancel: CancelToken | None = None,
        on: HandlerMap | None = None,
        session_id: str | None = None,
    ) -> ResultT:
        """Async twin of :meth:`resume`."""
        store = self._require_store()
        snapshot = await store.aload(check_run_id(run_id))
        options = RunOptions(context, cancel, on, session_id)
        prepared = self._prepare_resume(run_id, snapshot, force, store, options)
        if not isinstance(prepared, Run):
            return prepared
        return await self._adrive(prepared)

    def _prepare_resume(
        self, run_id: str, snapshot: Any, force: bool, store: Any, options: RunOptions
    ) -> Run[Any, SnapT, ResultT] | ResultT:
        if snapshot is None:
            raise self.error_class(f'{self.kind} "{self.name}": no snapshot for run_id "{run_id}"')
        if not isinstance(snapshot, self.snapshot_type):
            kind = getattr(snapshot, "kind", type(snapshot).__name__)
            raise self.error_class(f'run "{run_id}" is a {kind} run, not a {self.kind} run')
        if not force:
            self.check_drift(snapshot)
        if snapshot.status == COMPLETED:
            return self.stored_result(snapshot, options)
        return self._run(snapshot.input, run_id, options, store, snapshot)

    def stored_result(self, snapshot: SnapT, options: RunOptions) -> ResultT:
        """A completed run resumes to its stored result and runs nothing: the report of the
        stored run (its signature, times, records, state), ``data`` as the kind rebuilds it."""
        run = self._new_run(snapshot.input, snapshot.run_id, options, None, snapshot)
        result: Any = run.result(COMPLETED, None, run_sync(run.stored_output()))
        duration = (snapshot.saved_at - snapshot.started_at).total_seconds() * 1000.0
        result.report = replace(
            result.report,
            signature=snapshot.signature,
            ended_at=snapshot.saved_at,
            duration_ms=round(duration, 3),
        )
        stored: ResultT = result
        return stored

    # --- drift ----------------------------------------------------------------------------

    def check_drift(self, snapshot: SnapT) -> None:
        """Raise the kind's drift error when ``snapshot`` was written by another definition."""
        if snapshot.signature == self.signature:
            return
        raise self.drift_class(
            f'{self.kind} "{self.name}" changed since run "{snapshot.run_id}" started '
            f"(saved signature {snapshot.signature}, current {self.signature}); "
            f"{self.drift_advice}",
            saved_signature=snapshot.signature,
            current_signature=self.signature,
            run_id=snapshot.run_id,
            **self.drift_details(snapshot),
        )

    def drift_details(self, snapshot: SnapT) -> dict[str, Any]:
        """Extra fields of the drift error (a workflow names its completed and pending steps)."""
        return {}
