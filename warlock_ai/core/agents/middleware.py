"""The middleware onion: ``before`` / ``after`` / ``on_error`` hooks around a call.

Four levels (``execute``, ``trip``, ``tool``, ``supervisor``); each middleware gives
:class:`Hooks` for the levels it cares about and is skipped at the others. Rules:

- ``before(ctx)`` runs top-down; a non-None return short-circuits: the inner call, the deeper
  layers and this layer's own ``after`` are skipped, the outer layers' ``after`` still run.
- When the inner call raises, ``on_error(ctx, err)`` runs bottom-up over the layers entered;
  the first non-None return recovers (layers deeper than it do not run ``after``), else the
  error is re-raised.
- ``after(ctx, result)`` runs bottom-up; a non-None return replaces the result.
- A hook that raises aborts the pipeline with its exception.

Hooks may be plain functions or coroutines. A hook may also return a generator of effects
(:mod:`..runs.effects`), which the pipeline drives to its return value: that is how built-in
middleware (the semantic cache) is written once for both drivers. The pipeline is itself
an effects generator (:func:`pipeline_effects`), so engines built on :mod:`.effects` nest it
with ``yield from``; :func:`run_pipeline` and :func:`arun_pipeline` drive it for plain callers.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..runs.effects import Call, Engine, run_async, run_sync

LEVELS = ("execute", "trip", "tool", "supervisor")
_HOOK_NAMES = ("before", "after", "on_error")


@dataclass(frozen=True)
class Hooks:
    """The hooks of one middleware at one level; any of them may be None."""

    before: Callable[[Any], Any] | None = None
    after: Callable[[Any, Any], Any] | None = None
    on_error: Callable[[Any, Exception], Any] | None = None

    def __post_init__(self) -> None:
        for name in _HOOK_NAMES:
            hook = getattr(self, name)
            if hook is not None and not callable(hook):
                raise TypeError(f"middleware hook {name} must be callable, got {hook!r}")

    @classmethod
    def coerce(cls, value: Hooks | Mapping[str, Any] | None, where: str) -> Hooks | None:
        """Accept ``Hooks``, a dict with the keys ``before``/``after``/``on_error``, or None."""
        if value is None or isinstance(value, Hooks):
            return value
        if isinstance(value, Mapping):
            unknown = sorted(set(value) - set(_HOOK_NAMES))
            if unknown:
                raise ValueError(f"{where}: unknown hooks {unknown}; known: {list(_HOOK_NAMES)}")
            return cls(**value)
        raise TypeError(f"{where}: expected Hooks or a dict of hooks, got {value!r}")


@dataclass(frozen=True)
class Middleware:
    """Named hooks per level: ``Middleware("audit", trip=Hooks(after=record))``."""

    name: str = ""
    execute: Hooks | None = None
    trip: Hooks | None = None
    tool: Hooks | None = None
    supervisor: Hooks | None = None

    def __post_init__(self) -> None:
        for level in LEVELS:
            where = f"middleware {self.name or '<unnamed>'!r}, level {level!r}"
            object.__setattr__(self, level, Hooks.coerce(getattr(self, level), where))

    def hooks(self, level: str) -> Hooks | None:
        hooks: Hooks | None = getattr(self, level)
        return hooks


@dataclass
class PipelineContext:
    """What hooks receive. ``state`` is fresh per execution and shared by all its levels.

    Only ``level`` is required: the supervisor level, for one, has no model.

    ``trip_index`` and ``messages`` are set at the trip and tool levels, ``tool_name`` and
    ``arguments`` at the tool level. A trip-level ``before`` may replace ``messages``: the
    model is called with ``ctx.messages``.
    """

    level: str
    agent: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)
    input: Any = None
    options: dict[str, Any] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)
    trip_index: int | None = None
    messages: list[Any] | None = None
    tool_name: str | None = None
    arguments: dict[str, Any] | None = None


def layers(middlewares: Sequence[Middleware], level: str) -> list[Hooks]:
    """The hooks of ``middlewares`` at ``level``, outermost first (others skipped)."""
    if level not in LEVELS:
        raise ValueError(f"unknown middleware level {level!r}; known: {', '.join(LEVELS)}")
    found = (getattr(m, level, None) for m in middlewares)
    return [hooks for hooks in found if hooks is not None]


def pipeline_effects(
    middlewares: Sequence[Middleware], level: str, ctx: Any, inner: Callable[[], Engine]
) -> Engine:
    """The onion as an effects generator; ``inner()`` returns the engine of the wrapped call."""
    entered: list[Hooks] = []
    short_circuited = False
    result: Any = None
    for hooks in layers(middlewares, level):
        if hooks.before is not None:
            early = yield Call(hooks.before, (ctx,))
            if inspect.isgenerator(early):
                early = yield from early
            if early is not None:
                result, short_circuited = early, True
                break
        entered.append(hooks)
    if not short_circuited:
        result, entered = yield from _guarded(entered, ctx, inner)
    for hooks in reversed(entered):
        if hooks.after is not None:
            replaced = yield Call(hooks.after, (ctx, result))
            if inspect.isgenerator(replaced):
                replaced = yield from replaced
            if replaced is not None:
                result = replaced
    return result


def _guarded(entered: list[Hooks], ctx: Any, inner: Callable[[], Engine]) -> Engine:
    """Run ``inner``; on error offer it to ``on_error`` bottom-up. Returns (result, layers
    whose ``after`` still runs)."""
    try:
        return (yield from inner()), entered
    except Exception as err:
        for depth in range(len(entered) - 1, -1, -1):
            on_error = entered[depth].on_error
            if on_error is None:
                continue
            recovered = yield Call(on_error, (ctx, err))
            if inspect.isgenerator(recovered):
                recovered = yield from recovered
            if recovered is not None:
                return recovered, entered[: depth + 1]
        raise


def _call(fn: Callable[[], Any]) -> Engine:
    return (yield Call(fn))


def run_pipeline(
    middlewares: Sequence[Middleware], level: str, ctx: Any, inner: Callable[[], Any]
) -> Any:
    """Run ``inner()`` inside the ``level`` hooks of ``middlewares`` (async hooks resolved)."""
    return run_sync(pipeline_effects(middlewares, level, ctx, lambda: _call(inner)))


async def arun_pipeline(
    middlewares: Sequence[Middleware], level: str, ctx: Any, inner: Callable[[], Any]
) -> Any:
    """The async twin: ``inner`` and the hooks may be coroutine functions or plain ones."""
    return await run_async(pipeline_effects(middlewares, level, ctx, lambda: _call(inner)))
