"""What every kind's snapshot shares: statuses, timestamps, the JSON helpers, and the
``RunSnapshot`` base the stores read (its columns and its JSON form).

Each kind's snapshot is a frozen dataclass of its own (``WorkflowSnapshot``,
``SupervisorSnapshot``) with the seed's field names; what is common to all of them, the
store contract needs, and the JSON shape is written here once.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar, Self

from ..errors import AIError, error_from_dict
from . import shape
from .kinds import kind_named, kind_names
from .serialization import dumps, key_json, keys_json, loads
from .state import StateEncoding
from .usage import Usage

RUNNING = "running"
COMPLETED = "completed"
FAILED = "failed"
CANCELLED = "cancelled"
MAX_ITERATIONS = "max-iterations"
TERMINAL_STATUSES = frozenset({COMPLETED, FAILED, CANCELLED, MAX_ITERATIONS})
STATUSES = (RUNNING, COMPLETED, FAILED, CANCELLED, MAX_ITERATIONS)

#: The JSON-valued parts of a snapshot, as the stores write them (each encoded on its own).
JSON_PARTS = ("input", "state", "steps", "usage", "error", "fingerprint", "attempts")

_safe_encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=repr)


def now() -> datetime:
    return datetime.now(UTC)


def iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_iso(value: str | datetime | None) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_time(value: str | datetime) -> datetime:
    """``parse_iso`` of a value that is always present."""
    parsed = parse_iso(value)
    if parsed is None:
        raise ValueError("a timestamp is missing")
    return parsed


def error_dict(error: AIError | dict[str, Any] | None) -> dict[str, Any] | None:
    """An error as JSON-safe data (diagnostic fields that are not JSON become their repr)."""
    if error is None:
        return None
    data = error if isinstance(error, dict) else error.to_dict()
    loaded: dict[str, Any] = loads(_safe_encoder.encode(data))
    return loaded


def stored_error(value: Any) -> AIError | None:
    """An error as a snapshot keeps it (``AIError`` or its dict form) as an ``AIError``."""
    if value is None or isinstance(value, AIError):
        return value
    return error_from_dict(value)


def usage_json(usage: Usage) -> str:
    return dumps(usage.to_dict()) if usage else "null"


def error_json(error: dict[str, Any] | None) -> str:
    return _safe_encoder.encode(error) if error else "null"


class RunSnapshot(ABC):
    """The live snapshot of one run, of any kind: what a ``SnapshotStore`` reads and writes.

    Subclasses are frozen dataclasses declaring these fields; each says where its flow's
    name and its records (steps, iterations) go in the JSON form.
    """

    kind: ClassVar[str]
    name_field: ClassVar[str]
    records_field: ClassVar[str]

    run_id: str
    signature: str
    version: str | None
    input: Any
    state: dict[str, Any]
    status: str
    started_at: datetime
    saved_at: datetime
    usage: Usage
    error: dict[str, Any] | None
    fingerprint: dict[str, Any] | None
    #: Each execution of the run (``attempts.RunAttempt``), oldest first.
    attempts: tuple[Any, ...]

    if TYPE_CHECKING:
        # Per kind a field or a property (a dataclass field must not meet a base property).
        @property
        def next_step(self) -> str | None: ...

        @property
        def iteration(self) -> int | None: ...

    @property
    @abstractmethod
    def name(self) -> str:
        """The flow's name (``workflow_name``, ``supervisor_name``)."""

    @property
    def finished_at(self) -> datetime | None:
        """When the run ended: its last save once its status is terminal."""
        return self.saved_at if self.status in TERMINAL_STATUSES else None

    #: The state encoding a store is known to hold for this run (set by the run writer on
    #: the snapshot it writes, from its last write that landed): a store that keeps state
    #: keys apart rewrites only those that differ from it. None: nothing is known, the store
    #: writes all of them.
    delta_base: StateEncoding | None = None

    def json_parts(self) -> dict[str, str]:
        """Each of ``JSON_PARTS`` encoded (``"null"`` for None): what a store writes.

        Raises ``SnapshotSerializationError`` naming the path of a value that is not JSON.
        """
        parts = self.record_parts()
        parts["state"] = self.state_encoding().json()
        return parts

    @abstractmethod
    def record_parts(self) -> dict[str, str]:
        """``json_parts()`` but the state: what a store keeping the state by key writes
        besides ``state_encoding()``."""

    def state_encoding(self) -> StateEncoding:
        """The state's JSON by top-level key (the engine's when it made this snapshot, else
        encoded once, here)."""
        encoding: StateEncoding | None = self.__dict__.get("_state_encoding")
        if encoding is None:
            encoding = StateEncoding.of(self.state)
            object.__setattr__(self, "_state_encoding", encoding)
        return encoding

    def with_delta_base(self, base: StateEncoding | None) -> Self:
        """This snapshot, saying which state encoding its store already holds (writer use)."""
        object.__setattr__(self, "delta_base", base)
        return self

    @abstractmethod
    def position_json(self) -> str:
        """Where the run stands, as a JSON member (``"next":"b"``, ``"iteration":2``)."""

    @classmethod
    @abstractmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Rebuild from the JSON form (or from a row's columns, see ``from_row``)."""

    @classmethod
    def check_shape(cls, data: dict[str, Any]) -> None:
        """Raise ``shape.ShapeProblem`` naming the first field ``from_dict`` could not
        read; a kind extends it with its records."""
        shape.check_common(data, cls.name_field, STATUSES)

    @classmethod
    def read(cls, data: dict[str, Any], run_id: str | None = None) -> Self:
        """``from_dict`` of a stored snapshot: ``UnreadableSnapshotError`` naming what is
        wrong when it does not have the shape this version writes."""
        if run_id is not None and data.get("run_id") not in (None, run_id):
            problem = f"run_id is {shape.shown(data['run_id'])}, but it is stored as this run"
            raise shape.unreadable(data, run_id, "run_id", problem)
        try:
            cls.check_shape(data)
            return cls.from_dict(data)
        except shape.ShapeProblem as problem:
            raise shape.unreadable(data, run_id, problem.field, problem.text) from None
        except shape.READ_ERRORS as exc:
            text = f"{type(exc).__name__}: {exc}".splitlines()[0]
            raise shape.unreadable(data, run_id, None, text) from exc

    def to_json(self, apart: bool = False) -> str:
        """The whole snapshot as compact JSON (the form memory and Redis stores keep).
        ``apart``: the state without its keys stored apart, which a last member,
        ``state_apart``, lists (the Redis store keeps their values in fields of their own)."""
        parts = self.record_parts()
        encoding = self.state_encoding()
        tail = ""
        if apart:
            parts["state"], listed = encoding.split()
            if listed:
                tail = f',"state_apart":{keys_json(listed)}'
        else:
            parts["state"] = encoding.json()
        return (
            f'{{"kind":"{self.kind}","run_id":{key_json(self.run_id)},'
            f'"{self.name_field}":{key_json(self.name)},"signature":{key_json(self.signature)},'
            f'"version":{key_json(self.version)},{self.position_json()},'
            f'"status":{key_json(self.status)},"started_at":"{iso(self.started_at)}",'
            f'"saved_at":"{iso(self.saved_at)}","usage":{parts["usage"]},"error":{parts["error"]},'
            f'"fingerprint":{parts["fingerprint"]},"input":{parts["input"]},'
            f'"state":{parts["state"]},"{self.records_field}":{parts["steps"]},'
            f'"attempts":{parts["attempts"]}{tail}}}'
        )

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = loads(self.to_json())
        return data

    @classmethod
    def from_row(cls, row: Any, state: Any = None) -> Self:
        """Build from an object with the ``Snapshot`` model's attributes (duck-typed; the
        state ``state`` when given, else the row's); ``UnreadableSnapshotError`` when its
        columns do not have the expected shape."""
        return cls.read(
            {
                "run_id": row.run_id,
                cls.name_field: row.name,
                "signature": row.signature,
                "version": row.version,
                "input": row.input,
                "state": row.state if state is None else state,
                cls.records_field: row.steps,
                "next": row.next_step,
                "iteration": row.iteration,
                "status": row.status,
                "started_at": row.started_at,
                "saved_at": row.saved_at,
                "usage": row.usage,
                "error": row.error,
                "fingerprint": row.fingerprint,
                "attempts": row.attempts,
            },
            row.run_id,
        )


def snapshot_type_of(data: Any, run_id: str | None = None) -> type[RunSnapshot]:
    """The snapshot class of a stored snapshot's ``kind`` (``UnreadableSnapshotError`` when
    ``data`` is not an object or its kind is not registered)."""
    if not isinstance(data, dict):
        text = f"it must be a JSON object, got {shape.json_type(data)}"
        raise shape.unreadable(data, run_id, None, text)
    kind = data.get("kind", "workflow")
    try:
        return kind_named(kind).snapshot_type
    except (ValueError, TypeError):
        known = ", ".join(kind_names())
        text = f"kind must be one of {known}, got {shape.shown(kind)}"
        raise shape.unreadable(data, run_id, "kind", text) from None


def snapshot_from_dict(data: dict[str, Any], run_id: str | None = None) -> RunSnapshot:
    """Rebuild a snapshot of any registered kind from its JSON form (``run_id``: the id it
    is stored under, named in an ``UnreadableSnapshotError``)."""
    return snapshot_type_of(data, run_id).read(data, run_id)


def snapshot_from_row(row: Any, state: Any = None) -> RunSnapshot:
    """Rebuild a snapshot from an object with the ``Snapshot`` model's attributes (and its
    whole ``state``, when the row holds only part of it)."""
    kind_only = {"kind": row.kind, "run_id": row.run_id, "name": row.name, "status": row.status}
    return snapshot_type_of(kind_only, row.run_id).from_row(row, state)


def snapshot_from_json(text: str | bytes, run_id: str | None = None) -> RunSnapshot:
    try:
        data = loads(text)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise shape.unreadable(None, run_id, None, f"it is not JSON: {detail}") from None
    return snapshot_from_dict(data, run_id)
