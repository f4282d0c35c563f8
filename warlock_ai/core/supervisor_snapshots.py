"""The supervisor's snapshot: the run plus one record per settled iteration.

Same store contract as ``WorkflowSnapshot`` (``json_parts``, ``to_json``, ``from_row``,
``from_dict``): the iterations go where a workflow keeps its step records (the ``steps``
column), the state after the last iteration in ``state``. Each iteration is encoded once,
when it settles, and reused by every later save of the run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

from .serialization import dumps, loads
from .snapshots import SNAPSHOT_TYPES, _error_json, _usage_json, iso, key_json, parse_iso
from .usage import ZERO, Usage


@dataclass(frozen=True, eq=False)
class EncodedRun:
    """JSON the engine already produced: the input and fingerprint (fixed for the run) and
    each settled iteration (encoded once, when it settled)."""

    input: str
    fingerprint: str
    iterations: list[str]


@dataclass(frozen=True)
class SupervisorSnapshot:
    """The live snapshot of one supervisor run (one per ``run_id``; each save replaces it).

    ``iteration`` is the index of the last settled iteration (``-1`` before the first);
    ``snapshots`` holds one JSON object per settled iteration: ``iteration``, ``decision``
    (``source``, ``next``, ``reasoning``), ``result`` (one branch per intent: ``input``,
    ``output``, ``usage``, ``error``, times), ``evaluate_verdict``, ``carried`` (what the next
    iteration dispatches without routing), ``state``, ``usage`` and times.
    """

    kind: ClassVar[str] = "supervisor"

    run_id: str
    supervisor_name: str
    signature: str
    version: str | None
    input: Any
    iteration: int
    snapshots: list[dict[str, Any]]
    status: str
    started_at: datetime
    saved_at: datetime
    state: dict[str, Any] = field(default_factory=dict)
    usage: Usage = ZERO
    error: dict[str, Any] | None = None
    fingerprint: dict[str, Any] | None = None
    # Set by the engine only (what it already encoded, the lease claim).
    encoded: EncodedRun | None = field(default=None, init=False, compare=False, repr=False)
    claim: Any = field(default=None, init=False, compare=False, repr=False)

    @property
    def name(self) -> str:
        return self.supervisor_name

    @property
    def next_step(self) -> str | None:
        return None

    @property
    def steps(self) -> list[dict[str, Any]]:
        """The iterations, under the name every snapshot kind answers to."""
        return self.snapshots

    def to_dict(self) -> dict[str, Any]:
        return loads(self.to_json())

    def json_parts(self) -> dict[str, str]:
        """Each JSON-valued field encoded; a save of an engine-made snapshot encodes only
        the state (the iterations, input and fingerprint were encoded once)."""
        enc = self.encoded
        if enc is None:
            enc = EncodedRun(
                dumps(self.input, path="input"),
                dumps(self.fingerprint, path="fingerprint"),
                [dumps(s, path=f"snapshots.{i}") for i, s in enumerate(self.snapshots)],
            )
        return {
            "input": enc.input,
            "state": dumps(self.state, path="state"),
            "steps": f"[{','.join(enc.iterations)}]",
            "usage": _usage_json(self.usage),
            "error": _error_json(self.error),
            "fingerprint": enc.fingerprint,
        }

    def to_json(self) -> str:
        parts = self.json_parts()
        return (
            f'{{"kind":"{self.kind}","run_id":{key_json(self.run_id)},'
            f'"supervisor_name":{key_json(self.supervisor_name)},'
            f'"signature":{key_json(self.signature)},"version":{key_json(self.version)},'
            f'"iteration":{self.iteration},"status":{key_json(self.status)},'
            f'"started_at":"{iso(self.started_at)}","saved_at":"{iso(self.saved_at)}",'
            f'"usage":{parts["usage"]},"error":{parts["error"]},'
            f'"fingerprint":{parts["fingerprint"]},"input":{parts["input"]},'
            f'"state":{parts["state"]},"snapshots":{parts["steps"]}}}'
        )

    @classmethod
    def from_row(cls, row: Any) -> SupervisorSnapshot:
        """Build from an object with the ``Snapshot`` model's attributes (duck-typed)."""
        return cls.from_dict(
            {
                "run_id": row.run_id,
                "supervisor_name": row.name,
                "signature": row.signature,
                "version": row.version,
                "input": row.input,
                "iteration": row.iteration,
                "snapshots": row.steps,
                "status": row.status,
                "started_at": row.started_at,
                "saved_at": row.saved_at,
                "state": row.state,
                "usage": row.usage,
                "error": row.error,
                "fingerprint": row.fingerprint,
            }
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SupervisorSnapshot:
        snapshots = data.get("snapshots")
        if not isinstance(snapshots, list):
            snapshots = []
        iteration = data.get("iteration")
        return cls(
            run_id=data["run_id"],
            supervisor_name=data["supervisor_name"],
            signature=data["signature"],
            version=data.get("version"),
            input=data.get("input"),
            iteration=len(snapshots) - 1 if iteration is None else int(iteration),
            snapshots=snapshots,
            status=data["status"],
            started_at=parse_iso(data["started_at"]),
            saved_at=parse_iso(data.get("saved_at") or data["started_at"]),
            state=data.get("state") or {},
            usage=Usage.from_dict(data.get("usage")),
            error=data.get("error"),
            fingerprint=data.get("fingerprint"),
        )


SNAPSHOT_TYPES[SupervisorSnapshot.kind] = SupervisorSnapshot
