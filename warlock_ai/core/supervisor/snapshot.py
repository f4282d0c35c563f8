"""The supervisor's snapshot: the run plus one record per settled iteration.

The iterations go where a workflow keeps its step records (the ``steps`` column), the state
after the last iteration in ``state``. Each iteration is encoded once, when it settles, and
reused by every later save of the run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

from ..runs import shape
from ..runs.attempts import RunAttempt, attempts_from, attempts_json
from ..runs.serialization import dumps
from ..runs.snapshots import RunSnapshot, error_json, parse_time, usage_json
from ..runs.usage import ZERO, Usage


@dataclass(frozen=True, eq=False)
class EncodedRun:
    """JSON the engine already produced: the input and fingerprint (fixed for the run) and
    each settled iteration (encoded once, when it settled)."""

    input: str
    fingerprint: str
    iterations: list[str]


@dataclass(frozen=True)
class SupervisorSnapshot(RunSnapshot):
    """The live snapshot of one supervisor run (one per ``run_id``; each save replaces it).

    ``iteration`` is the index of the last settled iteration (``-1`` before the first);
    ``snapshots`` holds one JSON object per settled iteration: ``iteration``, ``decision``
    (``source``, ``next``, ``reasoning``), ``result`` (one branch per intent: ``input``,
    ``output``, ``usage``, ``error``, times), ``evaluate_verdict``, ``carried`` (what the next
    iteration dispatches without routing), ``state``, ``usage`` and times.
    """

    kind: ClassVar[str] = "supervisor"
    name_field: ClassVar[str] = "supervisor_name"
    records_field: ClassVar[str] = "snapshots"

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
    attempts: tuple[RunAttempt, ...] = ()
    # What the engine already encoded; not an init field, so dataclasses.replace() drops it.
    encoded: EncodedRun | None = field(default=None, init=False, compare=False, repr=False)

    def with_encoding(self, encoded: EncodedRun) -> SupervisorSnapshot:
        """This snapshot, carrying the JSON its run already produced (engine use)."""
        object.__setattr__(self, "encoded", encoded)
        return self

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

    def position_json(self) -> str:
        return f'"iteration":{self.iteration}'

    def record_parts(self) -> dict[str, str]:
        """A save of an engine-made snapshot encodes only the state (the iterations, input
        and fingerprint were encoded once)."""
        enc = self.encoded
        if enc is None:
            enc = EncodedRun(
                dumps(self.input, path="input"),
                dumps(self.fingerprint, path="fingerprint"),
                [dumps(s, path=f"snapshots.{i}") for i, s in enumerate(self.snapshots)],
            )
        return {
            "input": enc.input,
            "steps": f"[{','.join(enc.iterations)}]",
            "usage": usage_json(self.usage),
            "error": error_json(self.error),
            "fingerprint": enc.fingerprint,
            "attempts": attempts_json(self.attempts),
        }

    @classmethod
    def check_shape(cls, data: dict[str, Any]) -> None:
        super().check_shape(data)
        shape.expect(data, "iteration", lambda v: v is None or shape.is_int(v), "an integer")
        records = data.get("snapshots")
        if records is not None and not isinstance(records, list):
            text = f"snapshots must be an array, got {shape.shown(records)}"
            raise shape.ShapeProblem("snapshots", text)
        for index, record in enumerate(records or []):
            if not isinstance(record, dict):
                where = f"snapshots.{index}"
                raise shape.ShapeProblem(
                    where, f"{where} must be an object, got {shape.shown(record)}"
                )
        intents = (data.get("fingerprint") or {}).get("a")
        if intents is not None and not (
            isinstance(intents, list)
            and all(isinstance(i, dict) and isinstance(i.get("k"), str) for i in intents)
        ):
            raise shape.ShapeProblem("fingerprint.a", "fingerprint.a must be an array of intents")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SupervisorSnapshot:
        snapshots = data.get("snapshots")
        if not isinstance(snapshots, list):
            snapshots = []
        iteration = data.get("iteration")
        return cls(
            run_id=data["run_id"],
            supervisor_name=data[cls.name_field],
            signature=data["signature"],
            version=data.get("version"),
            input=data.get("input"),
            iteration=len(snapshots) - 1 if iteration is None else int(iteration),
            snapshots=snapshots,
            status=data["status"],
            started_at=parse_time(data["started_at"]),
            saved_at=parse_time(data.get("saved_at") or data["started_at"]),
            state=data.get("state") or {},
            usage=Usage.from_dict(data.get("usage")),
            error=data.get("error"),
            fingerprint=data.get("fingerprint"),
            attempts=attempts_from(data.get("attempts")),
        )
