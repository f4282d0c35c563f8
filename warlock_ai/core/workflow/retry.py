"""Retry policy for steps: attempts, backoff (none/linear/exponential/callable), ``retry_on``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

#: Backoff is capped at 30 seconds whatever the policy says.
MAX_BACKOFF = 30.0
BASE_DELAY = 0.5

Backoff = Literal["none", "linear", "exponential"] | Callable[[int], float] | None


@dataclass(frozen=True, slots=True)
class Retry:
    """How often a step is attempted and how long to wait between attempts.

    ``attempts`` counts every try (``Retry(attempts=3)`` is one try plus two retries).
    ``backoff`` is ``"none"``, ``"linear"`` (0.5 s x attempt), ``"exponential"`` (0.5 s x
    2^(attempt-1), the default) or a callable ``attempt -> seconds``; always clamped to
    [0, 30] seconds. ``retry_on(error, attempt)`` returning False stops retrying;
    ``on_retry(next_attempt, error)`` is called before each retry.
    """

    attempts: int = 1
    backoff: Backoff = "exponential"
    retry_on: Callable[[BaseException, int], Any] | None = None
    on_retry: Callable[[int, BaseException], Any] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.attempts, int) or isinstance(self.attempts, bool):
            raise TypeError(f"Retry(attempts=...) must be an int, got {self.attempts!r}")
        if self.attempts < 0:
            raise ValueError(f"Retry(attempts=...) must be 0 or more, got {self.attempts!r}")
        if not (self.backoff is None or callable(self.backoff)) and self.backoff not in (
            "none",
            "linear",
            "exponential",
        ):
            raise ValueError(
                f"Retry(backoff=...) must be 'none', 'linear', 'exponential' or a callable, "
                f"got {self.backoff!r}"
            )

    @property
    def total_attempts(self) -> int:
        return max(1, self.attempts)


NO_RETRY = Retry(attempts=1)


def resolve_backoff(attempt: int, backoff: Backoff) -> float:
    """Seconds to wait after failed attempt ``attempt`` (1-based), clamped to [0, 30]."""
    if backoff == "none":
        delay = 0.0
    elif backoff == "linear":
        delay = attempt * BASE_DELAY
    elif callable(backoff):
        delay = float(backoff(attempt))
    else:  # "exponential" and None
        delay = BASE_DELAY * 2 ** (attempt - 1)
    return min(max(delay, 0.0), MAX_BACKOFF)


def resolve_retry(step_retry: Retry | bool | None, default_retry: Retry | bool | None) -> Retry:
    """A step's ``retry=False`` forces one attempt even when the workflow has a default."""
    if step_retry is False:
        return NO_RETRY
    if isinstance(step_retry, Retry):
        return step_retry
    if isinstance(default_retry, Retry):
        return default_retry
    return NO_RETRY
