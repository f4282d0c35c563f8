"""In-process stores for development and tests (they do not survive a restart)."""

from __future__ import annotations

import builtins
import threading
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta

from ..core.orchestrator.checkpoints import (
    CheckpointRecord,
    checkpoint_from_json,
    conflict_error,
    valid_threshold,
)
from ..core.runs import leases
from ..core.runs.cancel import CancelRequest
from ..core.runs.snapshots import TERMINAL_STATUSES, RunSnapshot, snapshot_from_json
from .base import CheckpointStore, RunInfo, SnapshotStore, check_columns, check_lease_seconds


class MemorySnapshotStore(SnapshotStore):
    """Keeps each run's snapshot as JSON text in a dict.

    Snapshots go through the same JSON encoding as the database stores, so a state that
    would fail in production fails here too, and a loaded snapshot never aliases the live
    run's state. Leases are emulated under a lock, with the same rules as the other stores.
    """

    supports_leases = True
    supports_cancel = True

    def __init__(self, lease_seconds: float = 300) -> None:
        self.lease_seconds = check_lease_seconds(lease_seconds)
        self._data: dict[str, str] = {}
        self._leases: dict[str, tuple[str, datetime]] = {}
        self._cancels: dict[str, CancelRequest] = {}
        self._lock = threading.RLock()

    def load(self, run_id: str) -> RunSnapshot | None:
        text = self._data.get(run_id)
        return snapshot_from_json(text, run_id) if text is not None else None

    def save(
        self, snapshot: RunSnapshot, *, claim: leases.LeaseClaim | None = None
    ) -> CancelRequest | None:
        check_columns(snapshot)
        text = snapshot.to_json()
        run_id = snapshot.run_id
        with self._lock:
            request = None
            if claim is not None:
                saved_at = None
                if claim.expected is not None and (stored := self.load(run_id)) is not None:
                    saved_at = stored.saved_at
                holder, expires = self._leases.get(run_id, (None, None))
                now = datetime.now(UTC)
                leases.check_claim(run_id, claim, holder, expires, now, saved_at)
                if claim.mode == leases.RELEASE:
                    self._leases.pop(run_id, None)
                    if snapshot.status in TERMINAL_STATUSES:  # an interrupted run keeps it
                        self._cancels.pop(run_id, None)
                else:
                    expires = now + timedelta(seconds=self.lease_seconds)
                    self._leases[run_id] = (claim.owner, expires)
                    request = self._cancels.get(run_id)
            self._data[run_id] = text
        return request

    def lease(self, run_id: str) -> tuple[str, datetime | None] | None:
        return self._leases.get(run_id)

    def renew_lease(self, run_id: str, owner: str) -> bool | CancelRequest:
        with self._lock:
            holder, _ = self._leases.get(run_id, (None, None))
            if holder != owner:
                return False
            expires = datetime.now(UTC) + timedelta(seconds=self.lease_seconds)
            self._leases[run_id] = (owner, expires)
            return self._cancels.get(run_id) or True

    def request_cancel(self, run_id: str, reason: str = "") -> bool | CancelRequest:
        with self._lock:
            if self._stored_status(run_id) != "running":
                return False
            pending = self._cancels.get(run_id)
            if pending is not None:
                return pending
            self._cancels[run_id] = CancelRequest(datetime.now(UTC), reason or None)
            return True

    def delete(self, run_id: str) -> bool:
        with self._lock:
            self._leases.pop(run_id, None)
            self._cancels.pop(run_id, None)
            return self._data.pop(run_id, None) is not None

    def list(self, prefix: str = "") -> list[str]:
        with self._lock:
            return sorted(k for k in self._data if k.startswith(prefix))

    def run_infos(self, prefix: str = "") -> builtins.list[RunInfo]:
        with self._lock:  # copied under the lock, decoded outside it
            rows = [
                (run_id, text, self._leases.get(run_id), _requested_at(self._cancels, run_id))
                for run_id, text in self._data.items()
                if run_id.startswith(prefix)
            ]
        return [RunInfo.of_stored(*row) for row in rows]

    def delete_runs(self, run_ids: Sequence[str], statuses: Iterable[str]) -> int:
        with self._lock:  # checked and deleted under one lock: no run changes in between
            return super().delete_runs(run_ids, statuses)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._leases.clear()
            self._cancels.clear()

    def __len__(self) -> int:
        return len(self._data)

    async def aload(self, run_id: str) -> RunSnapshot | None:
        return self.load(run_id)

    async def asave(
        self, snapshot: RunSnapshot, *, claim: leases.LeaseClaim | None = None
    ) -> CancelRequest | None:
        return self.save(snapshot, claim=claim)

    async def adelete(self, run_id: str) -> bool:
        return self.delete(run_id)

    async def alist(self, prefix: str = "") -> builtins.list[str]:
        return self.list(prefix)


def _requested_at(cancels: dict[str, CancelRequest], run_id: str) -> datetime | None:
    request = cancels.get(run_id)
    return request.requested_at if request is not None else None


class MemoryCheckpointStore(CheckpointStore):
    """Keeps each checkpoint record as JSON text, per session, in a dict.

    Records go through the same JSON encoding as the database stores; ``save`` appends and a
    turn saved twice raises ``CheckpointConflictError``, as everywhere.
    """

    def __init__(self) -> None:
        self._sessions: dict[tuple[str, str], dict[int, str]] = {}
        self._lock = threading.Lock()

    def load(self, name: str, session_id: str) -> CheckpointRecord | None:
        with self._lock:
            turns = self._sessions.get((name, session_id))
            text = turns[max(turns)] if turns else None
        return checkpoint_from_json(text) if text is not None else None

    def save(self, record: CheckpointRecord) -> None:
        text = record.to_json()
        name, session_id, turn = record.key
        with self._lock:
            turns = self._sessions.setdefault((name, session_id), {})
            if turn in turns:
                raise conflict_error(name, session_id, turn)
            turns[turn] = text

    def delete(self, name: str, session_id: str) -> int:
        with self._lock:
            return len(self._sessions.pop((name, session_id), {}))

    def list(self, name: str, prefix: str = "") -> list[str]:
        with self._lock:
            return sorted(
                sid
                for (owner, sid), turns in self._sessions.items()
                if owner == name and turns and sid.startswith(prefix)
            )

    def prune(self, name: str, session_id: str, keep_from_turn: int) -> int:
        if not valid_threshold(keep_from_turn):
            return 0
        with self._lock:
            turns = self._sessions.get((name, session_id))
            if not turns:
                return 0
            old = [t for t in turns if t < keep_from_turn]
            for turn in old:
                del turns[turn]
            if not turns:
                del self._sessions[(name, session_id)]
            return len(old)

    def history(self, name: str, session_id: str) -> builtins.list[CheckpointRecord]:
        with self._lock:
            turns = dict(self._sessions.get((name, session_id), {}))
        return [checkpoint_from_json(turns[t]) for t in sorted(turns)]

    def clear(self) -> None:
        with self._lock:
            self._sessions.clear()

    async def aload(self, name: str, session_id: str) -> CheckpointRecord | None:
        return self.load(name, session_id)

    async def asave(self, record: CheckpointRecord) -> None:
        self.save(record)

    async def adelete(self, name: str, session_id: str) -> int:
        return self.delete(name, session_id)

    async def alist(self, name: str, prefix: str = "") -> builtins.list[str]:
        return self.list(name, prefix)

    async def aprune(self, name: str, session_id: str, keep_from_turn: int) -> int:
        return self.prune(name, session_id, keep_from_turn)

    async def ahistory(self, name: str, session_id: str) -> builtins.list[CheckpointRecord]:
        return self.history(name, session_id)
