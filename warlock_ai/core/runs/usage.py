"""Token and cost accounting, rolled up across steps, agents and runs."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens and cost of one call or of a whole run; ``+`` merges every channel."""

    input: int = 0
    output: int = 0
    total: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    cache_write_tokens: int = 0
    cost: float = 0.0

    def __add__(self, other: Usage) -> Usage:
        if not isinstance(other, Usage):
            return NotImplemented
        if not other:
            return self
        if not self:
            return other
        return Usage(*(getattr(self, n) + getattr(other, n) for n in _NAMES))

    def __bool__(self) -> bool:
        return self != ZERO

    def to_dict(self) -> dict[str, Any]:
        return {n: getattr(self, n) for n in _NAMES}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Usage:
        if not data:
            return ZERO
        return cls(**{k: v for k, v in data.items() if k in _NAMES})

    @classmethod
    def coerce(cls, value: Any) -> Usage:
        """Accept a ``Usage``, a dict of channels, or an object with the same attributes."""
        if isinstance(value, Usage):
            return value
        if value is None:
            return ZERO
        if isinstance(value, dict):
            return cls.from_dict(value)
        return cls(**{n: getattr(value, n, 0) or 0 for n in _NAMES})


_NAMES = tuple(f.name for f in fields(Usage))
ZERO = Usage()
