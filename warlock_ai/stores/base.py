"""The store contracts. Sync methods are abstract; the ``a``-prefixed twins default to
running the sync method in a worker thread and are overridden where a native async client
exists. Stores declare what they can do with ``supports_*`` flags.

Besides keeping snapshots, a snapshot store answers the questions the run operations ask
(``list_runs``, ``drain_runs``, ``prune_runs``): :meth:`SnapshotStore.runs` lists stored runs
matching a :class:`RunQuery` as :class:`RunInfo` summaries, :meth:`SnapshotStore.count`
counts them and :meth:`SnapshotStore.delete_runs` deletes those still in given statuses. The
defaults work on any store from ``list`` / ``load`` / ``lease``; the database and Redis stores
answer them natively.
"""

from __future__ import annotations

import builtins
import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, ClassVar

from asgiref.sync import sync_to_async

from ..core.errors import AIError, StoreError, UnreadableSnapshotError
from ..core.orchestrator.locks import ProcessSessionLock, SessionLock
from ..core.runs.cancel import CancelRequest
from ..core.runs.definition import check_run_id
from ..core.runs.kinds import kind_names
from ..core.runs.leases import LeaseClaim, LeaseState, is_stale, lease_state
from ..core.runs.limits import (
    MAX_FLOW_NAME_LENGTH,
    MAX_VERSION_LENGTH,
    check_storable,
    name_problem,
)
from ..core.runs.serialization import loads
from ..core.runs.shape import shown
from ..core.runs.snapshots import STATUSES, RunSnapshot, parse_iso, snapshot_from_json

#: Where a summary puts a time its snapshot does not say (it sorts as the oldest run).
UNKNOWN_TIME = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class RunInfo:
    """One stored run without its JSON parts: what listings show and operations decide on."""

    run_id: str
    kind: str
    name: str
    status: str
    started_at: datetime
    saved_at: datetime
    version: str | None = None
    next_step: str | None = None
    iteration: int | None = None
    finished_at: datetime | None = None
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None
    cancel_requested_at: datetime | None = None
    #: The signature of the definition that wrote the run (what drift is decided on).
    signature: str | None = None
    #: Why the run's stored snapshot cannot be read (``UnreadableSnapshotError.problem``);
    #: None when it can, or when the store's listing did not read it.
    unreadable: str | None = None
    #: The run's attempts as stored (``attempts.RunAttempt.to_dict()`` each), oldest first;
    #: None when the store's listing does not keep them.
    attempts: tuple[dict[str, Any], ...] | None = None

    def lease_state(self, now: datetime) -> LeaseState:
        return lease_state(self.lease_owner, self.lease_expires_at, now, self.status)

    def is_stale(self, now: datetime) -> bool:
        return is_stale(self.status, self.lease_owner, self.lease_expires_at, now)

    @classmethod
    def of(
        cls,
        snapshot: RunSnapshot,
        lease: tuple[str, datetime | None] | None = None,
        cancel_requested_at: datetime | None = None,
    ) -> RunInfo:
        """The summary of a loaded snapshot (and of its lease, if any)."""
        owner, expires = lease if lease is not None else (None, None)
        return cls(
            run_id=snapshot.run_id,
            kind=snapshot.kind,
            name=snapshot.name,
            status=snapshot.status,
            started_at=snapshot.started_at,
            saved_at=snapshot.saved_at,
            version=snapshot.version,
            next_step=snapshot.next_step,
            iteration=snapshot.iteration,
            finished_at=snapshot.finished_at,
            lease_owner=owner,
            lease_expires_at=expires,
            cancel_requested_at=cancel_requested_at,
            signature=snapshot.signature,
            attempts=tuple(attempt.to_dict() for attempt in snapshot.attempts),
        )

    @classmethod
    def of_stored(
        cls,
        run_id: str,
        text: str | bytes,
        lease: tuple[str, datetime | None] | None = None,
        cancel_requested_at: datetime | None = None,
    ) -> RunInfo:
        """The summary of a snapshot stored as JSON text, whether it can be read or not:
        of one that cannot, what its stored form still says, ``"?"`` for what it does not,
        and why in ``unreadable``."""
        try:
            return cls.of(snapshot_from_json(text, run_id), lease, cancel_requested_at)
        except UnreadableSnapshotError as exc:
            problem = exc.problem or exc.message
        try:
            data = loads(text)
        except (ValueError, RecursionError):
            data = None
        raw: dict[str, Any] = data if isinstance(data, dict) else {}
        owner, expires = lease if lease is not None else (None, None)
        started = _time_or(raw.get("started_at"), UNKNOWN_TIME)
        return cls(
            run_id=run_id,
            kind=_text_or(raw.get("kind", "workflow"), "?"),
            name=_text_or(raw.get("workflow_name", raw.get("supervisor_name")), "?"),
            status=_text_or(raw.get("status"), "?"),
            started_at=started,
            saved_at=_time_or(raw.get("saved_at"), started),
            version=_text_or(raw.get("version"), None),
            signature=_text_or(raw.get("signature"), None),
            next_step=_text_or(raw.get("next"), None),
            lease_owner=owner,
            lease_expires_at=expires,
            cancel_requested_at=cancel_requested_at,
            unreadable=problem,
        )


def column_problem(kind: str, status: str) -> str | None:
    """What is wrong with a stored run's kind and status columns (the only ones a listing
    reads that can hold an unexpected value), or None."""
    if kind not in kind_names():
        return f"kind must be one of {', '.join(kind_names())}, got {shown(kind)}"
    if status not in STATUSES:
        return f"status must be one of {', '.join(STATUSES)}, got {shown(status)}"
    return None


def _text_or(value: Any, default: str | None) -> Any:
    return value if isinstance(value, str) else default


def _time_or(value: Any, default: datetime) -> datetime:
    try:
        return parse_iso(value) or default
    except (TypeError, ValueError):
        return default


@dataclass(frozen=True)
class RunQuery:
    """Which stored runs: every condition given must hold. Newest first unless
    ``oldest_first``; at most ``limit``."""

    statuses: frozenset[str] | None = None
    kind: str | None = None
    name: str | None = None
    #: Run ids starting with this, matched literally and case-sensitively.
    prefix: str = ""
    saved_before: datetime | None = None
    #: Only running runs no live worker holds (``leases.is_stale``): what drain resumes.
    stale: bool = False
    limit: int | None = None
    oldest_first: bool = False

    def __post_init__(self) -> None:
        if self.statuses is not None and not isinstance(self.statuses, frozenset):
            object.__setattr__(self, "statuses", frozenset(self.statuses))
        if self.limit is not None and (not isinstance(self.limit, int) or self.limit < 0):
            raise ValueError(f"RunQuery.limit must be None or an integer >= 0, not {self.limit!r}")

    def matches(self, info: RunInfo, now: datetime) -> bool:
        return (
            (self.statuses is None or info.status in self.statuses)
            and (self.kind is None or info.kind == self.kind)
            and (self.name is None or info.name == self.name)
            and info.run_id.startswith(self.prefix)
            and (self.saved_before is None or info.saved_at < self.saved_before)
            and (not self.stale or info.is_stale(now))
        )

    def apply(self, infos: Iterable[RunInfo], now: datetime | None = None) -> list[RunInfo]:
        """The runs of ``infos`` this query selects, in its order, limited."""
        now = now or datetime.now(UTC)
        found = [info for info in infos if self.matches(info, now)]
        found.sort(key=lambda i: i.run_id)
        found.sort(key=lambda i: i.saved_at, reverse=not self.oldest_first)
        return found if self.limit is None else found[: self.limit]

    def unlimited(self) -> RunQuery:
        return replace(self, limit=None)


class SnapshotStore(ABC):
    """Holds the live snapshot of each run: one per ``run_id``; ``save`` replaces it."""

    #: ``list(prefix)`` is available.
    supports_list: ClassVar[bool] = True
    #: Runs are leased to one worker at a time and writes are fenced.
    supports_leases: ClassVar[bool] = False
    #: Entries can expire.
    supports_ttl: ClassVar[bool] = False
    #: An operator's cancel request reaches the worker through the store.
    supports_cancel: ClassVar[bool] = False
    #: Seconds a lease lasts without renewal (stores that lease runs).
    lease_seconds: float = 300.0
    #: How long the run writer retries a write that failed with ``StoreUnavailableError``
    #: (the store could not be reached), waiting longer each time; 0 retries nothing.
    write_retry_seconds: float = 15.0

    def schema(self) -> str:
        """The DDL this store's migrations create, to read or to run through another
        migration tool ("" for stores that need no tables: memory, Redis)."""
        return ""

    @abstractmethod
    def load(self, run_id: str) -> RunSnapshot | None:
        """The snapshot of ``run_id``, or ``None``."""

    @abstractmethod
    def save(
        self, snapshot: RunSnapshot, *, claim: LeaseClaim | None = None
    ) -> CancelRequest | None:
        """Insert or replace the snapshot of ``snapshot.run_id`` (one write, all or nothing).

        With a ``claim`` (the run writer's), the write is also fenced by the run's lease
        (``LeaseHeldError``, ``LeaseLostError``) and returns an operator's pending
        ``CancelRequest``, if any. A store that could not be reached raises
        ``StoreUnavailableError`` (the writer retries it); any other failure ``StoreError``.
        """

    @abstractmethod
    def delete(self, run_id: str) -> bool:
        """Remove the snapshot; True when there was one."""

    @abstractmethod
    def list(self, prefix: str = "") -> list[str]:
        """Run ids starting with ``prefix`` (matched literally), sorted."""

    def lease(self, run_id: str) -> tuple[str, datetime | None] | None:
        """``(owner, expires_at)`` of the run's live or expired lease, or ``None``."""
        return None

    def renew_lease(self, run_id: str, owner: str) -> bool | CancelRequest:
        """Push the expiry of ``owner``'s lease on the run ``lease_seconds`` ahead, without
        writing a snapshot (the heartbeat of a long step).

        Returns False when ``owner`` no longer holds the lease (another worker took the run
        over, or it was deleted); else the operator's pending ``CancelRequest`` when there is
        one (read in the same round trip: it is how a cancel reaches a running step), else
        True. A ``CancelRequest`` is truthy, so a store that returns only a bool still works:
        its runs then learn of a cancel at their next snapshot write.
        """
        return True

    def request_cancel(self, run_id: str, reason: str = "") -> bool | CancelRequest:
        """Record that an operator wants the run cancelled, in one atomic write.

        Returns False when the run is not running (nothing recorded), the earlier request
        when one is already pending (kept as it is: the first reason wins), else True.
        The worker learns of it from its next lease renewal (``renew_lease``) or fenced write
        (``save`` returns a ``CancelRequest``) and ends the run ``cancelled``; the terminal
        write clears it.
        """
        raise NotImplementedError(f"{type(self).__name__} does not support cancel requests")

    # --- queries (the run operations' vocabulary) -----------------------------------------

    def runs(self, query: RunQuery = RunQuery()) -> builtins.list[RunInfo]:
        """The stored runs ``query`` selects, newest first (see :class:`RunQuery`)."""
        return query.apply(self.run_infos(query.prefix))

    def count(self, query: RunQuery = RunQuery()) -> int:
        """How many stored runs ``query`` selects (its ``limit`` ignored)."""
        return len(self.runs(query.unlimited()))

    def delete_runs(self, run_ids: Sequence[str], statuses: Iterable[str]) -> int:
        """Delete the runs of ``run_ids`` whose status is still one of ``statuses``; returns
        how many. (This default checks and deletes one run at a time; the database and Redis
        stores do both in one statement per run.)"""
        allowed, deleted = frozenset(statuses), 0
        for run_id in run_ids:
            if self._stored_status(run_id) in allowed and self.delete(run_id):
                deleted += 1
        return deleted

    def _stored_status(self, run_id: str) -> str | None:
        """The run's status as stored, even when its snapshot cannot be read."""
        try:
            snapshot = self.load(run_id)
        except UnreadableSnapshotError as exc:
            return exc.status
        return snapshot.status if snapshot is not None else None

    def run_infos(self, prefix: str = "") -> Iterable[RunInfo]:
        """Every stored run starting with ``prefix`` as a summary (what ``runs`` filters)."""
        for run_id in self.list(prefix):
            try:
                snapshot = self.load(run_id)
            except UnreadableSnapshotError as exc:
                yield RunInfo(
                    run_id=run_id,
                    kind="?",
                    name=exc.flow or "?",
                    status=exc.status or "?",
                    started_at=UNKNOWN_TIME,
                    saved_at=UNKNOWN_TIME,
                    unreadable=exc.problem,
                )
                continue
            if snapshot is not None:
                yield RunInfo.of(snapshot, self.lease(run_id))

    # --- async twins ----------------------------------------------------------------------

    async def aload(self, run_id: str) -> RunSnapshot | None:
        return await sync_to_async(self.load)(run_id)

    async def asave(
        self, snapshot: RunSnapshot, *, claim: LeaseClaim | None = None
    ) -> CancelRequest | None:
        return await sync_to_async(self.save)(snapshot, claim=claim)

    async def adelete(self, run_id: str) -> bool:
        return await sync_to_async(self.delete)(run_id)

    async def alist(self, prefix: str = "") -> builtins.list[str]:
        return await sync_to_async(self.list)(prefix)

    async def aruns(self, query: RunQuery = RunQuery()) -> builtins.list[RunInfo]:
        return await sync_to_async(self.runs)(query)

    async def acount(self, query: RunQuery = RunQuery()) -> int:
        return await sync_to_async(self.count)(query)

    async def adelete_runs(self, run_ids: Sequence[str], statuses: Iterable[str]) -> int:
        return await sync_to_async(self.delete_runs)(run_ids, statuses)


def _prune_failed(record: Any, prune_below: int, exc: BaseException) -> None:
    logging.getLogger("warlock_ai.orchestrator").warning(
        "turn %d of session %r is stored, but pruning below turn %d failed: %s",
        record.turn_index,
        record.session_id,
        prune_below,
        exc,
    )


#: Two threads asking a store for its lock the first time get the same one.
_session_lock_guard = threading.Lock()


class CheckpointStore(ABC):
    """Holds orchestrator sessions: one immutable record per ``(name, session_id, turn_index)``.

    ``save`` appends and never overwrites; the latest turn is the session's live state.
    """

    #: ``list(name, prefix)`` is available.
    supports_list: ClassVar[bool] = True
    #: ``prune(name, session_id, keep_from_turn)`` is available.
    supports_prune: ClassVar[bool] = True
    #: Entries can expire.
    supports_ttl: ClassVar[bool] = False

    _session_lock: SessionLock | None = None

    def schema(self) -> str:
        """The DDL this store's migrations create ("" for memory and Redis)."""
        return ""

    @abstractmethod
    def load(self, name: str, session_id: str) -> Any | None:
        """The record with the highest ``turn_index`` of the session, or ``None``."""

    @abstractmethod
    def save(self, record: Any) -> None:
        """Append ``record``; ``CheckpointConflictError`` if its turn is already stored."""

    @abstractmethod
    def delete(self, name: str, session_id: str) -> int:
        """Remove every record of the session; returns how many were removed."""

    @abstractmethod
    def list(self, name: str, prefix: str = "") -> list[str]:
        """Distinct session ids of ``name`` starting with ``prefix`` (literal), sorted."""

    @abstractmethod
    def prune(self, name: str, session_id: str, keep_from_turn: int) -> int:
        """Delete the session's records with ``turn_index < keep_from_turn``; returns how many.

        Anything but a non-negative int (a bool, a float, a negative number) is a no-op.
        """

    @abstractmethod
    def history(self, name: str, session_id: str) -> builtins.list[Any]:
        """Every record of the session, ascending by ``turn_index``."""

    def session_lock(self) -> SessionLock:
        """The lock the orchestrator runs this store's turns under when given none
        (``session_lock=``): made once per store by :meth:`make_session_lock`."""
        lock = self._session_lock
        if lock is None:
            with _session_lock_guard:
                lock = self._session_lock
                if lock is None:
                    lock = self._session_lock = self.make_session_lock()
        return lock

    def make_session_lock(self) -> SessionLock:
        """A new lock for this store's sessions; by default it serialises the turns of this
        process only (what a store that lives in one process needs)."""
        return ProcessSessionLock()

    def close_session_lock(self) -> None:
        """Close the lock :meth:`session_lock` made, if any (its connection, its file)."""
        lock, self._session_lock = self._session_lock, None
        if lock is not None:
            lock.close()

    def append(self, record: Any, prune_below: int | None = None) -> None:
        """Append ``record`` (as ``save``), then drop the session's rows with ``turn_index <
        prune_below``: what a turn does. A failed prune is logged, never raised (the turn is
        stored; the next one prunes again). Stores that can do both in one transaction do."""
        self.save(record)
        if prune_below is not None:
            try:
                self.prune(record.orchestrator_name, record.session_id, prune_below)
            except Exception as exc:
                _prune_failed(record, prune_below, exc)

    async def aappend(self, record: Any, prune_below: int | None = None) -> None:
        await self.asave(record)
        if prune_below is not None:
            try:
                await self.aprune(record.orchestrator_name, record.session_id, prune_below)
            except Exception as exc:
                _prune_failed(record, prune_below, exc)

    async def aload(self, name: str, session_id: str) -> Any | None:
        return await sync_to_async(self.load)(name, session_id)

    async def asave(self, record: Any) -> None:
        await sync_to_async(self.save)(record)

    async def adelete(self, name: str, session_id: str) -> int:
        return await sync_to_async(self.delete)(name, session_id)

    async def alist(self, name: str, prefix: str = "") -> builtins.list[str]:
        return await sync_to_async(self.list)(name, prefix)

    async def aprune(self, name: str, session_id: str, keep_from_turn: int) -> int:
        return await sync_to_async(self.prune)(name, session_id, keep_from_turn)

    async def ahistory(self, name: str, session_id: str) -> builtins.list[Any]:
        return await sync_to_async(self.history)(name, session_id)


def check_lease_seconds(value: Any) -> float:
    """``lease_seconds`` as a float, or a one-line ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"lease_seconds must be a number of seconds > 0, not {value!r}")
    if value > 10**9:
        raise ValueError(f"lease_seconds must be at most 1e9 seconds, not {value!r}")
    return float(value)


def check_write_retry_seconds(value: Any) -> float:
    """``write_retry_seconds`` as a float, or a one-line ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise ValueError(f"write_retry_seconds must be a number of seconds >= 0, not {value!r}")
    if value > 86400:
        raise ValueError(f"write_retry_seconds must be at most 86400 (a day), not {value!r}")
    return float(value)


# --- what a store refuses to save ------------------------------------------------------------


def check_columns(snapshot: RunSnapshot) -> None:
    """Raise ``StoreError`` (one line) unless the snapshot's id, name, version and status can
    be stored as they are, on every store: what the definitions and ``execute`` already
    refuse, checked again for snapshots saved directly. The id, name and version repeat in
    every save of a run: each combination is checked once."""
    problem = _identity_problem(snapshot.run_id, snapshot.name, snapshot.version)
    if problem is None and snapshot.status in STATUSES:
        return
    if problem is None:
        problem = f"status must be one of {', '.join(STATUSES)}, got {snapshot.status!r}"
    raise StoreError(f"cannot save run {shown(snapshot.run_id)}: {problem}")


@lru_cache(maxsize=4096)
def _identity_problem(run_id: Any, name: Any, version: Any) -> str | None:
    try:
        check_run_id(run_id)
        check_storable("the flow", "name", name, MAX_FLOW_NAME_LENGTH, StoreError)
        check_storable("the flow", "version", version, MAX_VERSION_LENGTH, StoreError)
    except AIError as exc:
        return exc.message
    if not isinstance(name, str) or (version is not None and not isinstance(version, str)):
        return f"name and version must be strings, got {name!r} and {version!r}"
    return None


def findable_id(run_id: Any) -> bool:
    """Whether any store could hold a run under ``run_id``: a string without a NUL or a lone
    surrogate (``load`` / ``delete`` of another find nothing, without asking the store, which
    would fail to encode it). Ids that ``check_run_id`` refuses today but an older version
    stored stay findable, so that they can be removed."""
    return isinstance(run_id, str) and name_problem(run_id, None) is None


def attempt_dicts(value: Any) -> tuple[dict[str, Any], ...] | None:
    """A stored ``attempts`` value as a listing keeps it: its objects, or None when it holds
    none (a row written before attempts were kept, or one edited into another shape)."""
    if not isinstance(value, list):
        return None
    return tuple(item for item in value if isinstance(item, dict))
