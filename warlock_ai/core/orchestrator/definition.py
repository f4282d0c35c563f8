"""The orchestrator: multi-turn sessions over a supervisor's intents (reference section 3).

``execute(input, session_id=...)`` runs one turn under the session's lock: load the latest
checkpoint row, check drift, run the turn (:class:`~.run.TurnRun`), append one new row.
``resume(session_id)`` finishes a turn that was interrupted mid-way (``iterate=True``).

The turn itself is a generator of effects (as every run is), so ``execute`` and
``aexecute`` are the same code under the sync and async drivers: the lock, the loads and the
append are effects too.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable, Generator, Mapping, Sequence
from typing import Any, ClassVar

from ..agents.tools import Tool
from ..errors import (
    InterruptedTurnError,
    OrchestratorConfigError,
    OrchestratorDriftError,
    OrchestratorFailedError,
    SupervisorFailedError,
)
from ..runs import config as _config
from ..runs.cancel import CancelToken
from ..runs.definition import MAX_RUN_ID_LENGTH, new_run_id
from ..runs.effects import CallEither, run_async, run_sync
from ..runs.events import HandlerMap, normalise_handlers
from ..runs.run import RunOptions
from ..runs.serialization import dumps, loads
from ..runs.snapshots import RUNNING
from ..supervisor.definition import Supervisor
from ..supervisor.intents import supervisor_fingerprint
from ..supervisor.run import SUPERVISOR_EVENTS
from .checkpoints import MAX_SESSION_ID_LENGTH, check_session_id
from .hooks import (
    MemoryHooks,
    Summarize,
    check_window,
    compaction_range,
    maybe_await,
    resolve_memory,
    resolve_summarize,
    summary_text,
    to_compaction,
    window_kind,
)
from .locks import DEFAULT_LOCK_TIMEOUT, NoSessionLock, ProcessSessionLock, SessionLock
from .results import Compaction, OrchestratorResult
from .run import ORCHESTRATOR_EVENTS, TurnPlan, TurnRun
from .snapshot import TurnSnapshot, discard_turn_snapshots, parse_turn_run_id, turn_run_id

logger = logging.getLogger("warlock_ai.orchestrator")

Effects = Generator[Any, Any, Any]

DEFAULT_KEEP_SNAPSHOTS = 100
_CHECKPOINT_METHODS = ("load", "save", "delete", "list", "prune", "history")


def check_storable_key(turn_key: Any) -> str:
    """A ``turn_key``: a non-empty printable string of at most 255 characters."""
    if not isinstance(turn_key, str) or not turn_key or len(turn_key) > 255:
        raise OrchestratorFailedError(
            f"turn_key must be a non-empty string of at most 255 characters, got {turn_key!r}"
        )
    if not turn_key.isprintable():
        raise OrchestratorFailedError(f"turn_key {turn_key!r} contains an unprintable character")
    return turn_key


def checkpoint_store_problem(value: Any) -> str | None:
    if value is None:
        return None
    if all(callable(getattr(value, m, None)) for m in _CHECKPOINT_METHODS):
        return None
    return (
        "checkpoint_store must be a checkpoint store (ai.checkpoint.db(), "
        f"ai.checkpoint.redis(...), ai.checkpoint.memory()), got {value!r}"
    )


def orchestrator_fingerprint(
    base: dict[str, Any], iterate: bool, history_window: Mapping[str, Any]
) -> dict[str, Any]:
    """``{n, a, r, rc, e, i, m, it, hw}``: the supervisor's without ``c`` (reference 3.8)."""
    fingerprint = {k: v for k, v in base.items() if k != "c"}
    fingerprint["it"] = 1 if iterate else 0
    fingerprint["hw"] = {
        "router": window_kind(history_window.get("router")),
        "agents": window_kind(history_window.get("agents")),
    }
    return fingerprint


async def _fire(
    handlers: Sequence[Callable[[dict[str, Any]], Any]], payload: dict[str, Any]
) -> None:
    """Run handlers outside a run (``lock.waiting``), in order, awaiting what they return; a
    failing handler is logged and swallowed, as in a run. (The lock's wait performs it as a
    ``Call``, which the sync driver runs on its own loop.)"""
    for handler in handlers:
        try:
            result = handler(payload)
            if inspect.isawaitable(result):
                await result
        except Exception:
            logger.exception("event handler for %s failed", payload.get("event"))


class Orchestrator(Supervisor):
    """An orchestrator definition. Build it with :func:`orchestrator`."""

    kind: ClassVar[str] = "orchestrator"
    snapshot_type = TurnSnapshot
    error_class = OrchestratorFailedError
    drift_class = OrchestratorDriftError
    run_class = TurnRun
    drift_advice = "discard the session, or run the turn with force=True"

    def __init__(
        self,
        *,
        name: str | None,
        intents: Mapping[str, Any] | None,
        router: Any = None,
        route: Callable[[Any], Any] | None = None,
        evaluate: Callable[[Any], Any] | None = None,
        state: Mapping[str, Any] | None = None,
        initial_agent: str | None = None,
        iterate: bool = False,
        max_iterations: int | None = None,
        max_fan_out: int = 10,
        checkpoint_store: Any = None,
        snapshot_store: Any = None,
        memory: Any = None,
        history_window: Mapping[str, Any] | None = None,
        summarize: Any = None,
        keep_snapshots: int | str = DEFAULT_KEEP_SNAPSHOTS,
        session_lock: SessionLock | bool | None = None,
        lock_timeout: float | None = DEFAULT_LOCK_TIMEOUT,
        goal: str | None = None,
        version: str | None = None,
        description: str | None = None,
        on: Mapping[str, Any] | None = None,
    ) -> None:
        try:
            super().__init__(
                name=name,
                intents=intents,
                router=router,
                route=route,
                evaluate=evaluate,
                state=state,
                max_iterations=max_iterations,
                max_fan_out=max_fan_out,
                initial_agent=initial_agent,
                snapshot_store=snapshot_store,
                goal=goal,
                version=version,
                description=description,
            )
        except SupervisorFailedError as exc:
            message = exc.message.replace("ai.supervisor(", "ai.orchestrator(")
            raise OrchestratorConfigError(message, context={"authoring": True}) from None
        where = f'ai.orchestrator("{name}")'
        if not isinstance(iterate, bool):
            raise OrchestratorConfigError(f"{where}: iterate must be True or False")
        self.iterate = iterate
        if iterate and self.store is None:
            raise OrchestratorConfigError(
                f"{where}: iterate=True snapshots every iteration, but no snapshot store is "
                "configured; pass snapshot_store= or set ai.config(default_snapshot_store=...)"
            )
        if problem := checkpoint_store_problem(checkpoint_store):
            raise OrchestratorConfigError(f"{where}: {problem}")
        self.checkpoint_store = checkpoint_store
        windows = dict(history_window or {})
        unknown = set(windows) - {"router", "agents"}
        if unknown:
            raise OrchestratorConfigError(
                f'{where}: history_window takes "router" and "agents", not {sorted(unknown)}'
            )
        for role, value in windows.items():
            check_window(where, role, value)
        self.history_window = windows
        self.memory: MemoryHooks | None = resolve_memory(where, memory)
        self.summarize: Summarize | Callable[..., Any] | None = resolve_summarize(where, summarize)
        if keep_snapshots != "all" and (
            isinstance(keep_snapshots, bool)
            or not isinstance(keep_snapshots, int)
            or keep_snapshots < 1
        ):
            raise OrchestratorConfigError(
                f'{where}: keep_snapshots must be an integer >= 1 or "all", got {keep_snapshots!r}'
            )
        self.keep_snapshots = keep_snapshots
        if not (
            session_lock is None or session_lock is False or isinstance(session_lock, SessionLock)
        ):
            raise OrchestratorConfigError(
                f"{where}: session_lock must be a session lock (ai.session_lock.db(), "
                f"ai.session_lock.redis(...)), False, or None, got {session_lock!r}"
            )
        self.session_lock = NoSessionLock() if session_lock is False else session_lock
        if lock_timeout is not None and (
            isinstance(lock_timeout, bool)
            or not isinstance(lock_timeout, int | float)
            or not 0 <= lock_timeout <= 86400
        ):
            raise OrchestratorConfigError(
                f"{where}: lock_timeout must be a number of seconds from 0 to 86400, or None, "
                f"got {lock_timeout!r}"
            )
        self.lock_timeout = lock_timeout
        base = supervisor_fingerprint(
            self.name, self.intents, router, route, evaluate, initial_agent, max_iterations
        )
        fingerprint = orchestrator_fingerprint(base, iterate, windows)
        self._identify(fingerprint, SUPERVISOR_EVENTS | ORCHESTRATOR_EVENTS, on)

    # --- stores and the lock --------------------------------------------------------------

    @property
    def checkpoints(self) -> Any:
        """The checkpoint store in force: the definition's, else ``ai.config``'s, else
        settings'."""
        return _config.resolve("default_checkpoint_store", self.checkpoint_store)

    def _require_checkpoints(self) -> Any:
        store = self.checkpoints
        if store is None:
            raise OrchestratorConfigError(
                f'orchestrator "{self.name}" has no checkpoint store configured; pass '
                "checkpoint_store= or set ai.config(default_checkpoint_store=...)"
            )
        return store

    def lock_for(self, checkpoints: Any) -> SessionLock:
        """The session lock in force: the definition's, else the checkpoint store's."""
        if self.session_lock is not None:
            return self.session_lock
        lock = getattr(checkpoints, "session_lock", None)
        if callable(lock):
            found: SessionLock = lock()
            return found
        fallback = getattr(self, "_process_lock", None)
        if fallback is None:
            fallback = self._process_lock = ProcessSessionLock()
        return fallback

    # --- checks ---------------------------------------------------------------------------

    def check_session_id(self, session_id: Any) -> str:
        """``session_id`` if this orchestrator can use it (``check_session_id``, and an
        iterating one's run ids must fit too), else ``OrchestratorFailedError``."""
        sid = check_session_id(session_id)
        if self.iterate:
            longest = turn_run_id(sid, self.version, 10**9)
            if len(longest) > MAX_RUN_ID_LENGTH:
                limit = MAX_SESSION_ID_LENGTH - (len(longest) - MAX_RUN_ID_LENGTH)
                raise OrchestratorFailedError(
                    f"session_id is too long for iterate=True: a turn's run id "
                    f'"<session>.{self.version or "unversioned"}.<turn>" must fit in '
                    f"{MAX_RUN_ID_LENGTH} characters (session ids up to {limit})"
                )
        return sid

    def _check_patch(self, state: Any) -> dict[str, Any]:
        if state is None:
            return {}
        if not isinstance(state, Mapping):
            raise OrchestratorFailedError(f"state must be a mapping, got {type(state).__name__}")
        return dict(state)

    def _check_history(self, history: Any) -> list[Any]:
        if history is None:
            return []
        if isinstance(history, str | bytes | Mapping) or not isinstance(history, Sequence):
            raise OrchestratorFailedError(
                f"history must be a list of messages, got {type(history).__name__}"
            )
        return list(history)

    def check_turn_drift(self, session_id: str, saved: str) -> None:
        if saved == self.signature:
            return
        raise OrchestratorDriftError(
            f'orchestrator "{self.name}" changed since session "{session_id}" was saved '
            f"(saved signature {saved}, current {self.signature}); {self.drift_advice}",
            saved_signature=saved,
            current_signature=self.signature,
            session_id=session_id,
        )

    def check_drift(self, snapshot: Any) -> None:
        """A stored turn (``TurnSnapshot``) written by another definition: the drift error
        names its session."""
        session_id = getattr(snapshot, "session_id", None) or snapshot.run_id
        self.check_turn_drift(session_id, snapshot.signature)

    # --- turns ----------------------------------------------------------------------------

    def execute(  # type: ignore[override]  # a turn: a session id instead of a run id
        self,
        input: Any = None,
        *,
        session_id: str,
        history: Sequence[Any] | None = None,
        state: Mapping[str, Any] | None = None,
        context: Mapping[str, Any] | None = None,
        force: bool = False,
        cancel: CancelToken | None = None,
        on: HandlerMap | None = None,
        discard_interrupted: bool = False,
        turn_key: str | None = None,
    ) -> OrchestratorResult:
        """Run one turn of ``session_id``. Never raises for a failing turn (see
        ``result.error``; nothing is appended). Raises before anything runs:
        ``OrchestratorDriftError`` (unless ``force=True``), ``SessionBusyError``,
        ``InterruptedTurnError`` (the session's next turn was interrupted: ``resume`` it, or
        pass ``discard_interrupted=True``), ``OrchestratorConfigError``, a bad option."""
        turn = self.turn(
            input,
            session_id,
            history,
            state,
            context,
            force,
            cancel,
            on,
            discard_interrupted,
            turn_key=turn_key,
        )
        result: OrchestratorResult = run_sync(turn)
        return result

    async def aexecute(  # type: ignore[override]
        self,
        input: Any = None,
        *,
        session_id: str,
        history: Sequence[Any] | None = None,
        state: Mapping[str, Any] | None = None,
        context: Mapping[str, Any] | None = None,
        force: bool = False,
        cancel: CancelToken | None = None,
        on: HandlerMap | None = None,
        discard_interrupted: bool = False,
        turn_key: str | None = None,
    ) -> OrchestratorResult:
        """Async twin of :meth:`execute`."""
        turn = self.turn(
            input,
            session_id,
            history,
            state,
            context,
            force,
            cancel,
            on,
            discard_interrupted,
            turn_key=turn_key,
        )
        result: OrchestratorResult = await run_async(turn)
        return result

    def resume(  # type: ignore[override]  # a session id, not a run id
        self,
        session_id: str,
        *,
        force: bool = False,
        context: Mapping[str, Any] | None = None,
        cancel: CancelToken | None = None,
        on: HandlerMap | None = None,
    ) -> OrchestratorResult | None:
        """Finish the session's interrupted turn (``iterate=True``) without re-running its
        settled iterations; None when there is none (safe to call for every session)."""
        turn = self.turn(None, session_id, None, None, context, force, cancel, on, resume=True)
        result: OrchestratorResult | None = run_sync(turn)
        return result

    async def aresume(  # type: ignore[override]
        self,
        session_id: str,
        *,
        force: bool = False,
        context: Mapping[str, Any] | None = None,
        cancel: CancelToken | None = None,
        on: HandlerMap | None = None,
    ) -> OrchestratorResult | None:
        """Async twin of :meth:`resume`."""
        turn = self.turn(None, session_id, None, None, context, force, cancel, on, resume=True)
        result: OrchestratorResult | None = await run_async(turn)
        return result

    def resume_run(
        self,
        run_id: str,
        *,
        force: bool = False,
        context: Mapping[str, Any] | None = None,
        cancel: CancelToken | None = None,
        on: HandlerMap | None = None,
    ) -> OrchestratorResult | None:
        """Finish the interrupted turn stored as ``run_id`` (what ``drain_runs`` finds): its
        session's next turn. A stale snapshot of a turn that was checkpointed after all is
        removed (None is returned)."""
        snapshot = self._require_store().load(run_id)
        if snapshot is None:
            raise OrchestratorFailedError(f'no snapshot for run_id "{run_id}"')
        if not isinstance(snapshot, TurnSnapshot) or snapshot.name != self.name:
            raise OrchestratorFailedError(
                f'run "{run_id}" is not a turn of orchestrator "{self.name}"'
            )
        parsed = parse_turn_run_id(run_id, snapshot.version)
        if parsed is None:
            raise OrchestratorFailedError(f'run id "{run_id}" does not name a session and turn')
        session_id, _ = parsed
        turn = self.turn(
            None, session_id, None, None, context, force, cancel, on, resume=True, run_id=run_id
        )
        result: OrchestratorResult | None = run_sync(turn)
        return result

    def turn(
        self,
        input: Any,
        session_id: Any,
        history: Any,
        state: Any,
        context: Any,
        force: bool,
        cancel: CancelToken | None,
        on: HandlerMap | None,
        discard_interrupted: bool = False,
        resume: bool = False,
        run_id: str | None = None,
        turn_key: str | None = None,
    ) -> Effects:
        """One turn as a generator of effects: take the lock, run, give the lock back."""
        sid = self.check_session_id(session_id)
        if turn_key is not None:
            check_storable_key(turn_key)
        checkpoints = self._require_checkpoints()
        history_list, patch = self._check_history(history), self._check_patch(state)
        options = RunOptions(context, cancel, on, sid)
        per_call = normalise_handlers(on, self.emitter.known)
        lock = self.lock_for(checkpoints)

        def waiting() -> Any:
            handlers = self.emitter.handlers("orchestrator.lock.waiting", per_call)
            payload = {"event": "orchestrator.lock.waiting", "session_id": sid, "waited_ms": 0}
            return _fire(handlers, payload) if handlers else None

        wait = {"timeout": self.lock_timeout, "cancel": cancel, "on_wait": waiting}
        held = yield CallEither(lock.acquire, lock.aacquire, (self.name, sid), wait)
        try:
            return (
                yield from self._locked_turn(
                    input,
                    sid,
                    checkpoints,
                    history_list,
                    patch,
                    options,
                    force,
                    discard_interrupted,
                    resume,
                    run_id,
                    turn_key,
                )
            )
        finally:
            yield CallEither(lock.let_go, lock.alet_go, (held,))

    def _locked_turn(
        self,
        input: Any,
        sid: str,
        checkpoints: Any,
        history: list[Any],
        patch: dict[str, Any],
        options: RunOptions,
        force: bool,
        discard_interrupted: bool,
        resume: bool,
        stored_run_id: str | None,
        turn_key: str | None = None,
    ) -> Effects:
        record = yield CallEither(
            checkpoints.load, getattr(checkpoints, "aload", None), (self.name, sid)
        )
        turn_index = record.turn_index + 1 if record is not None else 0
        drifted = record is not None and record.signature != self.signature
        if drifted and not force:
            self.check_turn_drift(sid, record.signature)
        run_id = turn_run_id(sid, self.version, turn_index)
        store = self.store if self.iterate else None
        if resume and store is None:
            return None
        resume_from = None
        if store is not None:
            if stored_run_id is not None and stored_run_id != run_id:
                return (yield from self._stale_turn(store, stored_run_id, record))
            existing = yield CallEither(store.load, getattr(store, "aload", None), (run_id,))
            if existing is not None and not isinstance(existing, TurnSnapshot):
                raise OrchestratorFailedError(
                    f'run id "{run_id}" of session "{sid}" holds a {existing.kind} run; '
                    "discard it first"
                )
            interrupted = existing is not None and existing.status == RUNNING
            if resume:
                if existing is None or not interrupted:
                    return None
                if record is None and not force:
                    self.check_turn_drift(sid, existing.signature)
                resume_from, input = existing, existing.input
            elif interrupted and not discard_interrupted:
                raise InterruptedTurnError(
                    f'session "{sid}" of orchestrator "{self.name}" has an interrupted turn '
                    f'{turn_index} (run "{run_id}"); finish it with resume("{sid}") '
                    f"(manage.py resume_turn {self.name} --session {sid}), or start over "
                    "with execute(..., discard_interrupted=True)",
                    orchestrator_name=self.name,
                    session_id=sid,
                    turn_index=turn_index,
                    run_id=run_id,
                )
            elif existing is not None:
                # A failed, cancelled or discarded attempt at this turn: the new one replaces it.
                yield CallEither(store.delete, getattr(store, "adelete", None), (run_id,))
        elif resume:
            return None
        base = record.state if record is not None else self.initial_state
        seed = {**loads(dumps(base, path="state")), **patch}
        plan = TurnPlan(sid, turn_index, record, checkpoints, seed, history, drifted, turn_key)
        run = TurnRun(
            self,
            plan=plan,
            input=input,
            run_id=run_id,
            options=options,
            store=store,
            resume_from=resume_from,
        )
        result = yield from run.run()
        if store is not None and run.checkpointed:
            try:  # the row is the turn's record now; its scaffolding goes
                yield CallEither(store.delete, getattr(store, "adelete", None), (run_id,))
            except Exception as exc:
                logger.warning("could not remove the settled turn's snapshot %r: %s", run_id, exc)
        return result

    def _stale_turn(self, store: Any, run_id: str, record: Any) -> Effects:
        """A stored turn that is not the session's next one: settled already (its row was
        appended, the process died before its snapshot went) -> removed; else an error."""
        snapshot = yield CallEither(store.load, getattr(store, "aload", None), (run_id,))
        turn = snapshot.turn_index if isinstance(snapshot, TurnSnapshot) else None
        if snapshot is None:
            return None
        if turn is not None and record is not None and turn <= record.turn_index:
            yield CallEither(store.delete, getattr(store, "adelete", None), (run_id,))
            return None
        raise OrchestratorFailedError(
            f'run "{run_id}" is turn {turn} of its session, but the session\'s next turn is '
            f"{record.turn_index + 1 if record is not None else 0}; discard the run"
        )

    # --- sessions -------------------------------------------------------------------------

    def history(self, session_id: str) -> list[Any]:
        """Every stored checkpoint row of the session, oldest first."""
        return list(
            self._require_checkpoints().history(self.name, self.check_session_id(session_id))
        )

    def latest(self, session_id: str) -> Any:
        """The session's latest checkpoint row (its live state), or None."""
        return self._require_checkpoints().load(self.name, self.check_session_id(session_id))

    def find_turn(self, session_id: str, turn_key: str) -> Any | None:
        """The stored row of the session's turn run with ``turn_key`` (newest first), or None:
        whether a turn delivered again already landed."""
        rows = self._require_checkpoints().history(self.name, self.check_session_id(session_id))
        return next((row for row in reversed(rows) if row.turn_key == turn_key), None)

    def sessions(self, prefix: str = "") -> list[str]:
        return list(self._require_checkpoints().list(self.name, prefix))

    def discard(self, session_id: str) -> int:
        """Remove the session: its checkpoint rows and any turn snapshot, under its lock;
        returns how many rows and snapshots were removed."""
        sid = self.check_session_id(session_id)
        checkpoints = self._require_checkpoints()
        with self.lock_for(checkpoints).hold(self.name, sid, timeout=self.lock_timeout):
            removed = checkpoints.delete(self.name, sid)
            if self.store is not None:
                removed += discard_turn_snapshots(self.store, self.name, sid)
            return int(removed)

    # --- commands -------------------------------------------------------------------------

    def command(self, name: str, *, session_id: str, history: Sequence[Any] | None = None) -> Any:
        """``command("compact", session_id=..., history=[...])``: a ``Compaction`` of the
        history (no lock, ``on_compact`` is not called)."""
        if name != "compact":
            raise OrchestratorFailedError(
                f'orchestrator "{self.name}": unknown command {name!r}; known: "compact"'
            )
        self.check_session_id(session_id)
        messages = self._check_history(history)
        summarize = self.summarize
        if callable(summarize) and not isinstance(summarize, Summarize):
            value = summarize(messages)
            if inspect.isawaitable(value):
                value = asyncio.run(maybe_await(value))
            return to_compaction(value, 0, len(messages) - 1)
        if isinstance(summarize, Summarize):
            start, end = compaction_range(messages, summarize.keep)
            memo = f"Summary of {end - start + 1} prior message(s)."
            text = summary_text(summarize.summarizer, messages[start : end + 1], memo)
        else:
            start, end = 0, len(messages) - 1
            text = f"Summary of {len(messages)} message(s)."
        if inspect.isawaitable(text):
            text = asyncio.run(maybe_await(text))
        compaction: Compaction = to_compaction(text, start, end)
        return compaction

    # --- as a tool ------------------------------------------------------------------------

    def as_tool(
        self,
        *,
        name: str | None = None,
        description: str | None = None,
        session_scope: str = "fresh",
        session: str | Callable[[Any], Any] | None = None,
        unsafe_allow_model_session_id: bool = False,
    ) -> Tool:
        """This orchestrator as an agent's tool (reference 3.10).

        ``session_scope="fresh"`` (default): every call is a new session. ``"shared"``: the
        calls continue one session, bound by the developer: ``session`` is a session id, or
        a callable ``(ctx) -> id | {"session_id", "history"}`` given the tool call's context
        (``ctx.options["session_id"]`` is the calling agent's). The model's payload never
        chooses the session: its ``session_id`` and ``history`` keys are dropped, unless
        ``unsafe_allow_model_session_id=True`` (the legacy behaviour, which lets a model
        reach any session).
        """
        if session_scope not in ("fresh", "shared"):
            raise OrchestratorConfigError(
                f'as_tool(): session_scope must be "fresh" or "shared", got {session_scope!r}'
            )
        if session_scope == "shared" and session is None and not unsafe_allow_model_session_id:
            raise OrchestratorConfigError(
                f'orchestrator "{self.name}".as_tool(session_scope="shared") needs session= '
                "(a session id, or a callable (ctx) -> id): a session chosen by the model "
                "could read another user's conversation"
            )
        if (
            session is not None
            and not (isinstance(session, str) and session)
            and not callable(session)
        ):
            raise OrchestratorConfigError(
                f"as_tool(): session must be a non-empty session id or a callable, got {session!r}"
            )

        def run(arguments: dict[str, Any], ctx: Any) -> Any:
            payload: Any = dict(arguments) if isinstance(arguments, Mapping) else arguments
            history: Any = None
            sid: Any
            if session_scope == "fresh":
                sid = new_run_id("session")
            elif session is not None:
                if isinstance(payload, dict):
                    payload.pop("session_id", None)
                    payload.pop("history", None)
                bound = session(ctx) if callable(session) else session
                if isinstance(bound, Mapping):
                    sid, history = bound.get("session_id"), bound.get("history")
                else:
                    sid = bound
                if not isinstance(sid, str) or not sid:
                    raise OrchestratorFailedError(
                        f'orchestrator "{self.name}" tool: the session resolver returned no '
                        f"session id ({sid!r})"
                    )
            else:  # unsafe legacy: the model names the session
                sid = payload.pop("session_id", None) if isinstance(payload, dict) else None
                history = payload.pop("history", None) if isinstance(payload, dict) else None
                if not isinstance(sid, str) or not sid:
                    raise OrchestratorFailedError(
                        f'orchestrator "{self.name}" tool: the payload has no session_id'
                    )
            if payload is None:
                payload = ""
            elif not isinstance(payload, str | dict):
                payload = str(payload)
            result = self.execute(payload, session_id=sid, history=history)
            if result.error is not None:
                raise result.error
            return result.data

        return Tool(
            name=name or self.name,
            run=run,
            description=description or f'Invoke orchestrator "{self.name}" as a tool.',
            parameters={"type": "object", "properties": {}, "additionalProperties": True},
            takes_context=True,
        )


def orchestrator(
    name: str | None = None, intents: Mapping[str, Any] | None = None, **options: Any
) -> Orchestrator:
    """Define an orchestrator: ``ai.orchestrator(name="support", intents={...}, route=...)``.

    Options: ``router`` or ``route``, ``evaluate``, ``state``, ``initial_agent``, ``iterate``
    (False), ``max_iterations`` (10, with ``iterate``), ``checkpoint_store``,
    ``snapshot_store``, ``memory``, ``history_window``, ``summarize``, ``keep_snapshots``
    (100 or "all"), ``session_lock`` (a lock, False, or None for the store's),
    ``lock_timeout`` (30 s), ``goal``, ``version``, ``description``, ``on``.
    """
    return Orchestrator(name=name, intents=intents, **options)
