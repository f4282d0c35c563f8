"""A workflow's snapshot: the run plus one record per settled step, and their JSON form.

Field names are the seed's in snake_case. ``json_parts()`` is the hot path: each settled step
record is encoded once and reused by every later snapshot of the run, so a save encodes only
the state and the newest step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar

from ..errors import AIError
from ..runs import shape
from ..runs.attempts import RunAttempt, attempts_from, attempts_json
from ..runs.serialization import dumps, key_json
from ..runs.snapshots import (
    RunSnapshot,
    error_dict,
    error_json,
    iso,
    parse_time,
    stored_error,
    usage_json,
)
from ..runs.state import StateEncoding
from ..runs.usage import ZERO, Usage

SKIPPED = "skipped"


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """One try of a step."""

    index: int
    started_at: datetime
    duration_ms: float
    status: str  # "success" | "failed"
    error: AIError | None = None

    @property
    def ended_at(self) -> datetime:
        return self.started_at + timedelta(milliseconds=self.duration_ms)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "index": self.index,
            "started_at": iso(self.started_at),
            "duration_ms": self.duration_ms,
            "status": self.status,
        }
        if self.error is not None:
            data["error"] = error_dict(self.error)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AttemptRecord:
        return cls(
            index=data["index"],
            started_at=parse_time(data["started_at"]),
            duration_ms=data.get("duration_ms", 0.0),
            status=data["status"],
            error=stored_error(data.get("error")),
        )


@dataclass(frozen=True)
class StepRecord:
    """How a step settled: ``completed``, ``skipped`` or ``failed``.

    A parallel group's record holds its children in ``steps``; each child is also recorded
    flat under its own name in the run's ``steps``. ``result`` (the raw return of ``run`` or
    the agent result) lives only in memory for routing and is never persisted.
    """

    status: str
    started_at: datetime
    duration_ms: float
    attempts: int
    attempt_history: tuple[AttemptRecord, ...] = ()
    output: Any = None
    skipped: bool = False
    error: AIError | None = None
    steps: dict[str, StepRecord] | None = None
    usage: Usage = ZERO
    result: Any = field(default=None, compare=False, repr=False)
    _json: list[str] = field(default_factory=list, init=False, compare=False, repr=False)

    @property
    def ended_at(self) -> datetime:
        return self.started_at + timedelta(milliseconds=self.duration_ms)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "status": self.status,
            "started_at": iso(self.started_at),
            "duration_ms": self.duration_ms,
            "attempts": self.attempts,
            "attempt_history": [a.to_dict() for a in self.attempt_history],
            "output": self.output,
            "skipped": self.skipped,
        }
        if self.error is not None:
            data["error"] = error_dict(self.error)
        if self.steps is not None:
            data["children"] = list(self.steps)
        if self.usage:
            data["usage"] = self.usage.to_dict()
        return data

    def to_json(self, path: str = "$") -> str:
        """Encoded once, then reused (records never change once settled)."""
        if not self._json:
            self._json.append(dumps(self.to_dict(), path=path, keys_in=self.output))
        return self._json[0]

    @classmethod
    def from_dict(cls, data: dict[str, Any], flat: dict[str, Any] | None = None) -> StepRecord:
        children = data.get("children")
        steps = None
        if children is not None:
            source = flat or {}
            steps = {n: cls.from_dict(source[n]) for n in children if n in source}
        return cls(
            status=data["status"],
            started_at=parse_time(data["started_at"]),
            duration_ms=data.get("duration_ms", 0.0),
            attempts=data.get("attempts", 0),
            attempt_history=tuple(
                AttemptRecord.from_dict(a) for a in data.get("attempt_history", ())
            ),
            output=data.get("output"),
            skipped=data.get("skipped", False),
            error=stored_error(data.get("error")),
            steps=steps,
            usage=Usage.from_dict(data.get("usage")),
        )


@dataclass(frozen=True, eq=False)
class Encoded:
    """JSON the engine already produced for a snapshot: the parts fixed for the whole run
    (input, fingerprint) and the state as of this save, by key."""

    input: str
    fingerprint: str
    state: StateEncoding


@dataclass(frozen=True)
class WorkflowSnapshot(RunSnapshot):
    """The live snapshot of one workflow run (one per ``run_id``; each save replaces it)."""

    kind: ClassVar[str] = "workflow"
    name_field: ClassVar[str] = "workflow_name"
    records_field: ClassVar[str] = "steps"

    run_id: str
    workflow_name: str
    signature: str
    version: str | None
    input: Any
    state: dict[str, Any]
    steps: dict[str, StepRecord]
    next: str | None
    status: str
    started_at: datetime
    saved_at: datetime
    usage: Usage = ZERO
    error: dict[str, Any] | None = None
    fingerprint: dict[str, Any] | None = None
    attempts: tuple[RunAttempt, ...] = ()
    # What the engine already encoded; not an init field, so dataclasses.replace() drops it.
    encoded: Encoded | None = field(default=None, init=False, compare=False, repr=False)

    def with_encoding(self, encoded: Encoded) -> WorkflowSnapshot:
        """This snapshot, carrying the JSON its run already produced (engine use)."""
        object.__setattr__(self, "encoded", encoded)
        return self

    @property
    def name(self) -> str:
        return self.workflow_name

    @property
    def next_step(self) -> str | None:
        return self.next

    @property
    def iteration(self) -> int | None:
        return None

    @property
    def completed_steps(self) -> list[str]:
        return [n for n, r in self.steps.items() if _status(r) in ("completed", SKIPPED)]

    def position_json(self) -> str:
        return f'"next":{key_json(self.next)}'

    def state_encoding(self) -> StateEncoding:
        enc = self.encoded
        return enc.state if enc is not None else StateEncoding.of(self.state)

    def record_parts(self) -> dict[str, str]:
        """Engine-made snapshots reuse the run's encoded input and fingerprint and each step
        record's cached encoding, so a save costs one string join."""
        enc = self.encoded
        if enc is not None:
            input_json, fingerprint_json = enc.input, enc.fingerprint
        else:
            input_json = dumps(self.input, path="input")
            fingerprint_json = dumps(self.fingerprint, path="fingerprint")
        steps = ",".join(
            f"{key_json(name)}:{_record_json(name, record)}" for name, record in self.steps.items()
        )
        return {
            "input": input_json,
            "steps": f"{{{steps}}}",
            "usage": usage_json(self.usage),
            "error": error_json(self.error),
            "fingerprint": fingerprint_json,
            "attempts": attempts_json(self.attempts),
        }

    @classmethod
    def check_shape(cls, data: dict[str, Any]) -> None:
        super().check_shape(data)
        shape.expect(data, "next", shape.is_opt_str, "a step name or null")
        _check_steps_print((data.get("fingerprint") or {}).get("s"), "fingerprint.s")
        steps = data.get("steps")
        if steps is None:
            return
        if not isinstance(steps, dict):
            raise shape.ShapeProblem("steps", f"steps must be an object, got {shape.shown(steps)}")
        for name, record in steps.items():
            _check_record(record, f"steps.{name}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WorkflowSnapshot:
        # Stored objects may come back with their keys reordered (PostgreSQL's jsonb sorts
        # them): step records are put back in the order the steps started.
        flat = dict(sorted((data.get("steps") or {}).items(), key=_started))
        return cls(
            run_id=data["run_id"],
            workflow_name=data["workflow_name"],
            signature=data["signature"],
            version=data.get("version"),
            input=data.get("input"),
            state=data.get("state") or {},
            steps={n: StepRecord.from_dict(r, flat) for n, r in flat.items()},
            next=data.get("next"),
            status=data["status"],
            started_at=parse_time(data["started_at"]),
            saved_at=parse_time(data.get("saved_at") or data["started_at"]),
            usage=Usage.from_dict(data.get("usage")),
            error=data.get("error"),
            fingerprint=data.get("fingerprint"),
            attempts=attempts_from(data.get("attempts")),
        )


_RECORD: shape.Spec = (
    ("status", shape.is_str, "a string", True),
    ("started_at", shape.is_timestamp, "an ISO 8601 timestamp", True),
    ("duration_ms", shape.is_number, "a number", False),
    ("attempts", shape.is_int, "an integer", False),
    ("skipped", shape.is_bool, "true or false", False),
    ("children", shape.is_opt_names, "an array of step names or null", False),
    ("attempt_history", shape.is_list, "an array", False),
)
_ATTEMPT: shape.Spec = (
    ("index", shape.is_int, "an integer", True),
    ("started_at", shape.is_timestamp, "an ISO 8601 timestamp", True),
    ("status", shape.is_str, "a string", True),
    ("duration_ms", shape.is_number, "a number", False),
)


def _check_record(record: Any, path: str) -> None:
    """A stored step record: what ``StepRecord.from_dict`` and the admin's timeline read."""
    shape.check_object(record, path, _RECORD)
    shape.check_error(record.get("error"), f"{path}.error")
    shape.check_usage(record.get("usage"), f"{path}.usage")
    for index, attempt in enumerate(record.get("attempt_history") or []):
        where = f"{path}.attempt_history.{index}"
        shape.check_object(attempt, where, _ATTEMPT)
        shape.check_error(attempt.get("error"), f"{where}.error")


def _check_steps_print(steps: Any, path: str) -> None:
    """The steps a stored fingerprint lists (what the drift diff compares): ``{n, c}``."""
    if steps is None:
        return
    if not isinstance(steps, list):
        raise shape.ShapeProblem(path, f"{path} must be an array, got {shape.shown(steps)}")
    for index, step in enumerate(steps):
        where = f"{path}.{index}"
        shape.check_object(step, where, (("n", shape.is_str, "a step name", True),))
        _check_steps_print(step.get("c"), f"{where}.c")


def _started(item: tuple[str, Any]) -> str:
    started = item[1].get("started_at") if isinstance(item[1], dict) else None
    return started if isinstance(started, str) else ""


def _status(record: StepRecord | dict[str, Any]) -> str | None:
    return record.get("status") if isinstance(record, dict) else record.status


def _record_json(name: str, record: StepRecord | dict[str, Any]) -> str:
    if isinstance(record, StepRecord):
        return record.to_json(path=f"steps.{name}")
    return dumps(record, path=f"steps.{name}")
