"""One turn on the run kernel: the supervisor's iteration loop with a session around it.

A turn loads nothing itself (the definition does, under the session's lock, and hands it a
:class:`TurnPlan`); it runs one dispatch (``iterate=False``) or the iteration loop
(``iterate=True``, snapshotted every iteration under the turn's run id), compacts the
history when asked, appends the turn's checkpoint row, and remembers the turn in memory.

A clean turn is one whose dispatch completed without error: with ``iterate=False`` a single
iteration whose branches all succeeded (it need not end with ``END``: the reference's
max-iterations trap is not kept), with ``iterate=True`` a loop ended by a decision. Only a
clean turn appends a row; anything else leaves the session at its previous turn.
"""

from __future__ import annotations

import logging
from collections.abc import Generator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ..errors import (
    AIError,
    CheckpointConflictError,
    OrchestratorFailedError,
    StoreError,
    SupervisorFailedError,
    to_ai_error,
)
from ..runs.effects import Call, CallEither, Sleep
from ..runs.routing import END
from ..runs.snapshots import COMPLETED, now, stored_error
from ..runs.writer import WRITE_RETRY_SECONDS, is_transient, retry_delays
from ..supervisor.results import SupervisorReport
from ..supervisor.run import SupervisorRun
from .checkpoints import CheckpointRecord, normalize_route
from .hooks import (
    DEFAULT_AGENTS_WINDOW,
    DEFAULT_ROUTER_WINDOW,
    Summarize,
    apply_window,
    compaction_range,
    query_text,
    remembered_text,
    summary_text,
    to_compaction,
)
from .results import AWAITING_INPUT, Compaction, OrchestratorReport, OrchestratorResult

if TYPE_CHECKING:
    from .definition import Orchestrator

logger = logging.getLogger("warlock_ai.orchestrator")

Effects = Generator[Any, Any, Any]

ORCHESTRATOR_EVENTS = frozenset(
    {
        "orchestrator.turn.starting",
        "orchestrator.session.loaded",
        "orchestrator.drift.checked",
        "orchestrator.lock.waiting",
        "orchestrator.history.windowed",
        "orchestrator.memory.recalled",
        "orchestrator.turn.routed",
        "orchestrator.compaction.suggested",
        "orchestrator.compaction.applied",
        "orchestrator.compaction.failed",
        "orchestrator.checkpoint.persisted",
        "orchestrator.turn.awaiting-input",
        "orchestrator.turn.failed",
        "orchestrator.turn.cancelled",
        "orchestrator.error",
    }
)

#: The kernel's own events, as a turn names them (None: not emitted; a turn has exactly one
#: terminal event: awaiting-input, failed or cancelled).
_KERNEL_EVENTS = {
    "orchestrator.starting": None,
    "orchestrator.cancelled": "orchestrator.turn.cancelled",
}

_ROUTE_SOURCES = {"route": "route", "router": "router"}


@dataclass
class TurnPlan:
    """What the definition loaded for a turn, under the session's lock."""

    session_id: str
    turn_index: int
    previous: CheckpointRecord | None
    checkpoints: Any
    seed: dict[str, Any] = field(default_factory=dict)
    history: list[Any] = field(default_factory=list)
    drifted: bool = False
    turn_key: str | None = None


class TurnRun(SupervisorRun):
    """One turn of a session (a supervisor run with a session around it)."""

    logger = logger
    failure_class = OrchestratorFailedError
    definition: Orchestrator

    def __init__(self, definition: Any, *, plan: TurnPlan, **kwargs: Any) -> None:
        self.plan = plan
        super().__init__(definition, **kwargs)

    def setup(self) -> None:
        super().setup()
        orch, plan = self.definition, self.plan
        windows = orch.history_window
        self.router_history = apply_window(
            plan.history, windows.get("router"), DEFAULT_ROUTER_WINDOW
        )
        self.agent_history = apply_window(
            plan.history, windows.get("agents"), DEFAULT_AGENTS_WINDOW
        )
        previous = plan.previous
        self.summarized_through = previous.summarized_through if previous else None
        self.compaction: Compaction | None = None
        self.checkpointed = False
        self.turn_started = now()

    def fresh_state(self) -> dict[str, Any]:
        return dict(self.plan.seed)

    # --- events: the kernel's, as a turn names them ---------------------------------------

    def emit(self, event: str, **payload: Any) -> Effects:
        if event in _KERNEL_EVENTS:
            renamed = _KERNEL_EVENTS[event]
            if renamed is None:
                return
            event = renamed
        elif event == "orchestrator.error" and payload.get("phase") in ("run", "interrupt"):
            event = "orchestrator.turn.failed"
        elif event == "orchestrator.completed":
            if payload["result"].report.status != AWAITING_INPUT:
                return  # the turn's terminal event was turn.failed or turn.cancelled
            event = "orchestrator.turn.awaiting-input"
        payload.setdefault("session_id", self.plan.session_id)
        payload.setdefault("turn_index", self.plan.turn_index)
        yield from super().emit(event, **payload)

    # --- the turn -------------------------------------------------------------------------

    def body(self) -> Effects:
        orch, plan = self.definition, self.plan
        yield from self.emit("orchestrator.turn.starting")
        yield from self.emit("orchestrator.session.loaded", found=plan.previous is not None)
        yield from self.emit(
            "orchestrator.drift.checked", signature=orch.signature, drifted=plan.drifted
        )
        yield from self.emit(
            "orchestrator.history.windowed", message_count=len(self.agent_history or [])
        )
        yield from self.recall()
        if orch.iterate:
            yield from super().body()
        else:
            self.check_cancel()
            self.stop = yield from self.run_iteration()
            failed = [b for b in self.snapshots[-1]["result"].values() if b.get("error")]
            if failed:
                raise stored_error(failed[0]["error"]) or SupervisorFailedError("intent failed")
            self.stop = self.stop or "dispatch"
        yield from self.emit("orchestrator.turn.routed", **self.route_info())
        yield from self.compact()
        yield from self.append()
        yield from self.remember()

    def route_info(self) -> dict[str, Any]:
        decision = self.snapshots[-1]["decision"] if self.snapshots else {}
        source = _ROUTE_SOURCES.get(str(decision.get("source")), "intent.next")
        return {"source": source, "raw": decision.get("next")}

    @property
    def last_route(self) -> str | list[str] | None:
        raw = self.snapshots[-1]["decision"].get("next") if self.snapshots else None
        if raw == END:
            # The turn ended by END after dispatching: what was dispatched last.
            dispatched = [r for r in self.snapshots if r.get("result")]
            raw = list(dispatched[-1]["result"]) if dispatched else None
            if isinstance(raw, list) and len(raw) == 1:
                raw = raw[0]
        return normalize_route(raw)

    # --- memory ---------------------------------------------------------------------------

    def recall(self) -> Effects:
        hooks = self.definition.memory
        if hooks is None or hooks.k == 0 or self.resume_from is not None:
            return
        query = query_text(self.input)
        options = hooks.recall_options(self.plan.session_id)
        store = hooks.store
        found = yield CallEither(store.recall, getattr(store, "arecall", None), (query,), options)
        found = [_plain(item) for item in found or ()]
        yield from self.emit("orchestrator.memory.recalled", count=len(found))
        if found:
            from types import MappingProxyType

            self.context = MappingProxyType({**self.context, hooks.inject_key: found})

    def remember(self) -> Effects:
        hooks = self.definition.memory
        if hooks is None or not hooks.remember or not self.checkpointed:
            return
        if self.resume_from is not None:
            return  # reference 3.5: a resumed turn is not remembered again
        branches = self.snapshots[-1]["result"] if self.snapshots else {}
        text = remembered_text(query_text(self.input), self.state, branches)
        if not text:
            return
        item = hooks.item(text, self.plan.session_id)
        store = hooks.store
        try:
            yield CallEither(store.remember, getattr(store, "aremember", None), (item,))
        except Exception as exc:  # the turn is stored: it is not failed for its memory
            error = to_ai_error(exc)
            self.logger.warning(
                "turn %d of session %r: remembering it failed: %s",
                self.plan.turn_index,
                self.plan.session_id,
                error.message,
            )
            yield from self.emit("orchestrator.error", error=error, phase="memory")

    # --- compaction -----------------------------------------------------------------------

    def compact(self) -> Effects:
        summarize = self.definition.summarize
        if not isinstance(summarize, Summarize) or summarize.after_turns is None:
            return
        if self.plan.turn_index < summarize.after_turns or self.resume_from is not None:
            return
        history = self.plan.history
        start, end = compaction_range(history, summarize.keep)
        memo = f"Summary of {end - start + 1} prior message(s)."
        try:
            text = yield Call(summary_text, (summarize.summarizer, history[start : end + 1], memo))
        except Exception as exc:
            error = to_ai_error(exc)
            yield from self.emit("orchestrator.compaction.failed", phase="summarize", error=error)
            return
        compaction = to_compaction(text, start, end)
        self.compaction = compaction
        yield from self.emit("orchestrator.compaction.suggested", compaction=compaction)
        if summarize.on_compact is None:
            return
        try:
            yield Call(summarize.on_compact, (compaction,))
        except Exception as exc:
            error = to_ai_error(exc)
            yield from self.emit("orchestrator.compaction.failed", phase="on_compact", error=error)
            return
        # The next row says how far the history is summarised: it is appended, never
        # rewritten (the reference re-saved the latest row, which broke append-only stores).
        self.summarized_through = compaction.replaces_to_index
        yield from self.emit("orchestrator.compaction.applied", compaction=compaction)

    # --- the checkpoint row ---------------------------------------------------------------

    def record(self) -> CheckpointRecord:
        orch = self.definition
        return CheckpointRecord(
            orchestrator_name=orch.name,
            session_id=self.plan.session_id,
            turn_index=self.plan.turn_index,
            state=dict(self.state),
            last_route=self.last_route,
            signature=orch.signature,
            version=orch.version,
            summarized_through=self.summarized_through,
            saved_at=now(),
            turn_key=self.plan.turn_key,
        )

    def append(self) -> Effects:
        """Append the turn's row (and prune below the kept turns, in one transaction where
        the store can), retrying while the store cannot be reached; a row found stored after
        a lost answer counts as appended. Raises (the turn fails, nothing is appended) when
        the store refuses it or stays unreachable."""
        store, record = self.plan.checkpoints, self.record()
        prune_below = self.prune_below()
        # Looked up on the class: a store that only forwards attributes (a test double, a
        # wrapper) is given save() and prune() separately, as before append() existed.
        together = getattr(type(store), "append", None) is not None
        if together:
            write = CallEither(store.append, getattr(store, "aappend", None), (record, prune_below))
        else:
            write = CallEither(store.save, getattr(store, "asave", None), (record,))
        budget = getattr(store, "write_retry_seconds", WRITE_RETRY_SECONDS)
        delays = retry_delays(budget)
        while True:
            try:
                yield write
                break
            except CheckpointConflictError:
                if (yield from self.appended(record)):
                    break
                raise
            except Exception as exc:
                if not is_transient(exc):
                    raise
                delay = next(delays, None)
                if delay is None:
                    raise StoreError(
                        f'turn {record.turn_index} of session "{record.session_id}" could not '
                        f"be checkpointed: the store stayed unreachable for {budget:g} s "
                        f"({exc})",
                        cause=exc,
                    ) from exc
                yield Sleep(delay, None)
                if (yield from self.appended(record)):
                    break
        self.checkpointed = True
        # The row is the turn's record now: the turn's snapshot is deleted once the run is
        # over, so its final write would be thrown away (a crash before the delete leaves a
        # running snapshot of a checkpointed turn, which resume and drain recognise).
        self.terminal_written = self.writer is not None
        yield from self.emit("orchestrator.checkpoint.persisted")
        if not together and prune_below is not None:
            yield from self.prune(prune_below)

    def appended(self, record: CheckpointRecord) -> Effects:
        """Whether ``record`` is stored (its answer may have been lost on the way back)."""
        store = self.plan.checkpoints
        try:
            latest = yield CallEither(
                store.load,
                getattr(store, "aload", None),
                (record.orchestrator_name, record.session_id),
            )
        except Exception:
            return False
        return (
            latest is not None
            and latest.turn_index == record.turn_index
            and latest.saved_at == record.saved_at
        )

    def prune_below(self) -> int | None:
        """The turn below which rows go after this one (``keep_snapshots``), or None."""
        keep = self.definition.keep_snapshots
        if not isinstance(keep, int) or not getattr(self.plan.checkpoints, "supports_prune", True):
            return None  # "all"
        keep_from = self.plan.turn_index - keep + 1
        return keep_from if keep_from > 0 else None

    def prune(self, keep_from: int) -> Effects:
        store = self.plan.checkpoints
        try:
            yield CallEither(
                store.prune,
                getattr(store, "aprune", None),
                (self.definition.name, self.plan.session_id, keep_from),
            )
        except Exception as exc:  # the turn is stored: a failed prune only leaves old rows
            self.logger.warning(
                "pruning session %r below turn %d failed: %s", self.plan.session_id, keep_from, exc
            )

    # --- the kernel's hooks ---------------------------------------------------------------

    def result(self, status: str, error: AIError | None, data: Any) -> Any:
        inner = super().result(status, error, data)
        sup_report: SupervisorReport = inner.report
        clean = status == COMPLETED and self.checkpointed
        turn = self.turn_record() if self.snapshots else None
        report = OrchestratorReport(
            run_id=self.run_id,
            name=self.definition.name,
            status=AWAITING_INPUT if clean else sup_report.status,
            started_at=self.started_at,
            ended_at=sup_report.ended_at,
            duration_ms=sup_report.duration_ms,
            signature=self.definition.signature,
            version=self.definition.version,
            session_id=self.plan.session_id,
            error=sup_report.error,
            usage=self.usage,
            state=self.state,
            cancelled_at=sup_report.cancelled_at,
            turn_index=self.plan.turn_index,
            terminated_by=sup_report.terminated_by,
            snapshots=self.snapshots,
            turns=[turn] if turn is not None else [],
            children=[replace(sup_report, session_id=self.plan.session_id)],
            checkpointed=self.checkpointed,
        )
        return OrchestratorResult(
            report=report,
            session_id=self.plan.session_id,
            turn_index=self.plan.turn_index,
            data=self.state if clean else None,
            error=report.error,
            usage=self.usage,
            compaction=self.compaction if clean else None,
        )

    def record_persistence(self, report: Any, status: str) -> None:
        """A clean turn is durable once its row is appended, whatever became of its turn
        snapshot's last write (the snapshot is removed right after anyway)."""
        super().record_persistence(report, status)
        if self.checkpointed:
            report.persisted = True

    def turn_record(self) -> dict[str, Any]:
        """The reference's ``TurnSnapshot``: this turn's last iteration, in brief."""
        last = self.snapshots[-1]
        decision = last.get("decision") or {}
        return {
            "turn": self.plan.turn_index,
            "input": self.input,
            "decision": {
                "source": decision.get("source"),
                "raw": decision.get("next"),
                "reasoning": decision.get("reasoning"),
            },
            "result": last.get("result"),
            "state": dict(self.state),
            "evaluate": last.get("evaluate_verdict"),
            "started_at": self.turn_started,
            "ended_at": now(),
            "usage": self.usage.to_dict(),
        }


def _plain(item: Any) -> Any:
    """A recalled item as JSON (``ai.memory`` returns ``MemoryItem``s), so the context
    handed to intents stays plain data."""
    to_dict = getattr(item, "to_dict", None)
    return to_dict() if callable(to_dict) else item
