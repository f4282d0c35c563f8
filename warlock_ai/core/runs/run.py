"""The skeleton every execution shares, written once as a generator of effects.

A ``Run`` is one execution of a definition, fresh or resumed. The kernel owns its frame: the
first write (which takes the lease), the heartbeat, events, cancellation, turning an exception
into a terminal status, the output, the terminal write and the result. Each kind supplies its
``body`` (the step loop, the iteration loop), its ``snapshot`` and its ``result``.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Generator, Mapping
from time import perf_counter
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, Generic, NamedTuple, TypeVar

from ..errors import (
    AIError,
    LeaseLostError,
    RunInterruptedError,
    SnapshotSerializationError,
    to_ai_error,
)
from .attempts import CRASHED, INTERRUPTED, TAKEN_OVER, RunAttempt
from .cancel import CancelToken
from .effects import Emit
from .events import HandlerMap, normalise_handlers
from .interrupts import Interrupt
from .kinds import kind_named
from .leases import local_worker_id, owner_is_dead
from .serialization import dumps
from .snapshots import CANCELLED, COMPLETED, FAILED, RUNNING, RunSnapshot, now
from .usage import ZERO, Usage
from .writer import RunWriter

if TYPE_CHECKING:
    from .definition import Definition

Effects = Generator[Any, Any, Any]

DefT = TypeVar("DefT", bound="Definition[Any, Any]")
SnapT = TypeVar("SnapT", bound=RunSnapshot)
ResultT = TypeVar("ResultT")


class RunOptions(NamedTuple):
    """The per-call options of ``execute`` / ``resume``."""

    context: Mapping[str, Any] | None = None
    cancel: CancelToken | None = None
    on: HandlerMap | None = None
    session_id: str | None = None


#: What stops an execution from outside its steps' own errors: the lease is released on the
#: way out (another ``BaseException`` is left alone, as the process dying would leave it).
STOPPING = (KeyboardInterrupt, SystemExit, asyncio.CancelledError)


def describe(exc: BaseException) -> str:
    """An exception in a few words: an ``AIError``'s message, else ``str()`` or its type."""
    return exc.message if isinstance(exc, AIError) else (str(exc) or type(exc).__name__)


def elapsed_ms(start: float) -> float:
    return round((perf_counter() - start) * 1000.0, 3)


class Run(ABC, Generic[DefT, SnapT, ResultT]):
    """The mutable side of one execution; :meth:`run` is the engine generator."""

    logger: ClassVar[logging.Logger]
    #: Raised when the run is cancelled; caught as the ``cancelled`` status.
    cancelled_class: ClassVar[type[AIError]]
    #: Wraps an exception that is not an ``AIError`` (``failed`` status).
    failure_class: ClassVar[type[AIError]]

    def __init__(
        self,
        definition: DefT,
        *,
        input: Any,
        run_id: str,
        options: RunOptions,
        store: Any,
        resume_from: SnapT | None = None,
    ) -> None:
        self.definition = definition
        self.kind: str = definition.kind
        self.input = input
        self.run_id = run_id
        self.cancel = options.cancel if options.cancel is not None else CancelToken()
        self.on = normalise_handlers(options.on, definition.emitter.known)
        self.session_id = options.session_id
        self.context: Mapping[str, Any] = MappingProxyType(self._context(options.context))
        self.resume_from = resume_from
        if resume_from is not None:
            self.state: dict[str, Any] = dict(resume_from.state)
            self.usage: Usage = resume_from.usage
            self.started_at = resume_from.started_at
        else:
            self.state, self.usage, self.started_at = self.fresh_state(), ZERO, now()
        self.clock = perf_counter()
        self.writer: RunWriter | None = None
        if store is not None:
            expected = resume_from.saved_at if resume_from is not None else None
            self.writer = RunWriter(store, self.cancel, expected)
        self.input_json: str | None = None
        self.not_json: SnapshotSerializationError | None = None
        #: Set by a body whose last write already carried the terminal status.
        self.terminal_written = False
        #: Writes that failed for good (after their retries), the last one's error, and
        #: whether the last write landed: what ``report.persisted`` says.
        self.failed_writes = 0
        self.persist_error: AIError | None = None
        self.last_write_stored = True
        #: Each execution of the run, this one last (``begin_attempt``); every snapshot
        #: carries them.
        self.run_attempts: tuple[RunAttempt, ...] = ()
        self.setup()

    def _context(self, context: Any) -> dict[str, Any]:
        if context is None:
            return {}
        if not isinstance(context, Mapping):
            raise self.definition.error_class(
                f"context must be a mapping, got {type(context).__name__}"
            )
        return dict(context)

    # --- what each kind supplies ----------------------------------------------------------

    def setup(self) -> None:
        """The kind's own per-execution fields, once the kernel's are set."""

    def fresh_state(self) -> dict[str, Any]:
        """The state a fresh run starts from."""
        return {}

    def encode_start(self) -> None:
        """Encode what the run's writes reuse; a value that is not JSON raises here."""
        self.input_json = dumps(self.input, path="input")

    @abstractmethod
    def body(self) -> Effects:
        """The run's own loop, once the lease is held; raises to end the run otherwise."""

    def output(self) -> Effects:
        """``result.data`` of a completed run."""
        return None
        yield  # a generator like every other hook

    def stored_output(self) -> Effects:
        """``result.data`` of a completed run resumed from its snapshot (default: ``output``)."""
        return (yield from self.output())

    @abstractmethod
    def snapshot(self, status: str, error: AIError | None) -> SnapT:
        """The snapshot to write now."""

    @abstractmethod
    def result(self, status: str, error: AIError | None, data: Any) -> ResultT:
        """The result envelope of this execution."""

    def failure(self, exc: Exception) -> tuple[str, AIError]:
        """The terminal status and error an exception out of ``body`` means."""
        if isinstance(exc, self.cancelled_class):
            reason = self.cancel.reason
            if isinstance(reason, Interrupt):  # the process is stopping: the run is not over
                return RUNNING, self.interrupted_error(reason)
            return CANCELLED, exc
        if isinstance(exc, AIError):
            return FAILED, exc
        name = self.definition.name
        return FAILED, self.failure_class(
            f'{self.kind} "{name}" failed: {describe(exc)}', cause=exc
        )

    def interrupted_error(self, interrupt: Interrupt) -> RunInterruptedError:
        name = self.definition.name
        return RunInterruptedError(
            f'{self.kind} "{name}" run "{self.run_id}" was interrupted by '
            f"{interrupt.signal_name}: it stopped at a check point with its snapshot stored "
            "and its lease released; resume it to continue",
            run_id=self.run_id,
            signal=interrupt.signal_name,
        )

    # --- events, persistence, cancellation ------------------------------------------------

    def emit(self, event: str, **payload: Any) -> Effects:
        handlers = self.definition.emitter.handlers(event, self.on)
        if handlers:
            payload["event"] = event
            payload["run_id"] = payload["root_run_id"] = self.run_id
            yield Emit(handlers, payload)

    def begin_attempt(self) -> None:
        """Add this execution to the run's attempts; an earlier one that never wrote how it
        ended is closed now: ``crashed`` when its process is gone, else
        ``lease-taken-over``."""
        writer, previous = self.writer, self.resume_from
        worker = writer.owner if writer is not None and writer.owner else local_worker_id()
        attempts, resumed_at = (), None
        if previous is not None:
            attempts = tuple(previous.attempts)
            if attempts and attempts[-1].end is None:
                last = attempts[-1]
                end = CRASHED if owner_is_dead(last.worker) else TAKEN_OVER
                closed = last.ended(end, previous.saved_at, "it never wrote how it ended")
                attempts = (*attempts[:-1], closed)
            position = kind_named(self.kind).position
            resumed_at = position(previous.status, previous.next_step, previous.iteration)
        self.run_attempts = (*attempts, RunAttempt(len(attempts) + 1, worker, now(), resumed_at))

    def end_attempt(self, end: str, detail: str | None) -> None:
        if self.run_attempts and self.run_attempts[-1].end is None:
            current = self.run_attempts[-1].ended(end, now(), detail)
            self.run_attempts = (*self.run_attempts[:-1], current)

    def checkpoint(
        self, status: str, error: AIError | None = None, release: bool = False
    ) -> Effects:
        """Write a snapshot; a failed write is reported (event + log), never raised."""
        writer = self.writer
        if writer is None:
            return
        if status != RUNNING:
            self.end_attempt(status, error.code if error is not None else None)
        elif release:
            reason = self.cancel.reason
            signal = reason.signal_name if isinstance(reason, Interrupt) else None
            self.end_attempt(INTERRUPTED, signal)
        failure = yield from writer.write(self.snapshot(status, error), status, release)
        self.last_write_stored = failure is None and not writer.fenced
        if failure is not None:
            self.failed_writes += 1
            self.persist_error = failure
            self.logger.warning(
                "snapshot write failed for run %r (status=%s): %s",
                self.run_id,
                status,
                failure.message,
            )
            yield from self.emit(f"{self.kind}.error", error=failure, phase="persist")

    def check_cancel(self) -> None:
        if self.cancel.cancelled:
            raise self.cancelled_error()

    def cancelled_error(self, cause: BaseException | None = None) -> AIError:
        token = self.cancel
        reason = token.reason_text if token.cancelled else (describe(cause) if cause else "")
        return self.cancelled_class(
            f"{self.kind} cancelled" + (f": {reason}" if reason else ""),
            cancelled_at=(token.cancelled_at or now()).isoformat(),
            reason=reason or None,
            cause=cause if isinstance(cause, AIError) else None,
        )

    def record_persistence(self, report: Any, status: str) -> None:
        """Say in the report whether the store holds what this result says, and log it when
        it does not (the run itself is not failed for it: the seed's rule)."""
        report.persisted = self.last_write_stored
        report.failed_writes = self.failed_writes
        report.persist_error = self.persist_error
        if not self.last_write_stored and self.not_json is None:
            why = self.persist_error.message if self.persist_error is not None else "lease lost"
            self.logger.error(
                "run %r ended %s, but its last snapshot was not stored (%d failed writes; "
                "last: %s): the stored run is behind this result",
                self.run_id,
                status,
                self.failed_writes,
                why,
            )

    # --- the run --------------------------------------------------------------------------

    def run(self) -> Effects:
        if self.writer is not None:
            try:
                self.encode_start()
            except SnapshotSerializationError as exc:
                self.writer, self.not_json = None, exc  # nothing is written for a non-JSON input
        self.begin_attempt()
        # The first write takes the run's lease: a run leased by a live worker fails fast
        # here (LeaseHeldError propagates out of execute/resume) before anything runs.
        yield from self.checkpoint(RUNNING)
        writer = self.writer
        if writer is not None:
            writer.start_heartbeat(self.run_id)
        ended = False  # this execution knows how it ended (not a crash it cannot see)
        try:
            result = yield from self.run_held()
            ended = True
            return result
        except STOPPING as exc:
            # Ctrl-C, sys.exit(), a cancelled asyncio task: the run stops here; its lease is
            # released so that it can be resumed at once (from anywhere).
            ended = True
            if writer is not None:
                self.end_attempt(INTERRUPTED, describe(exc) if str(exc) else type(exc).__name__)
                yield from writer.let_go(self.run_attempts)
            raise
        finally:
            if writer is not None:
                writer.end(ended)

    def run_held(self) -> Effects:
        """The run once its lease is held: body, output, terminal write, events."""
        kind = self.kind
        starting = {f"{kind}_name": self.definition.name, "input": self.input}
        yield from self.emit(f"{kind}.starting", **starting)
        status, error, data = COMPLETED, None, None
        try:
            if self.not_json is not None:
                raise self.not_json
            if self.writer is not None and self.writer.unconfirmed is not None:
                # The first write's answer came back late: is the lease it took still ours?
                yield from self.writer.confirm_pending(self.run_id)
            yield from self.body()
        except Exception as exc:
            status, error = self.failure(exc)
        if status == COMPLETED:
            try:
                data = yield from self.output()
            except Exception as exc:
                status, error = FAILED, to_ai_error(exc, wrap_as=self.failure_class)
        interrupted = status == RUNNING  # stopped by a signal at a check point
        if not self.terminal_written:
            try:
                if interrupted:
                    yield from self.checkpoint(RUNNING, None, release=True)
                else:
                    yield from self.checkpoint(status, error)
            except LeaseLostError as exc:  # taken over at the last write: like mid-run
                status, error, data, interrupted = FAILED, exc, None, False
                self.last_write_stored = False
        result = self.result(status, error, data)
        settled: Any = result  # every kind's result carries ``report`` and ``error``
        if interrupted:
            settled.error = settled.report.error = error
        self.record_persistence(settled.report, status)
        if status == CANCELLED and error is not None:
            cancelled_at, reason = (
                getattr(error, "cancelled_at", None),
                getattr(error, "reason", None),
            )
            yield from self.emit(f"{kind}.cancelled", cancelled_at=cancelled_at, reason=reason)
        elif error is not None:
            phase = "interrupt" if interrupted else "run"
            yield from self.emit(f"{kind}.error", error=error, phase=phase)
        yield from self.emit(f"{kind}.completed", result=result)
        return result
