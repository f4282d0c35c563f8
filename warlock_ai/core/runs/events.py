"""Three tiers of event handlers: the definition's ``on=``, ``instance.on()``, the call's ``on=``.

Every emission runs all matching handlers in tier order 1, 2, 3; a handler that raises is
logged and swallowed. Handlers receive one dict: the payload plus ``event``, ``run_id`` and
``root_run_id``. Handlers may be plain functions or coroutines.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

Handler = Callable[[dict[str, Any]], Any]
HandlerMap = Mapping[str, Handler | Iterable[Handler]]


def normalise_handlers(
    on: HandlerMap | None, known: frozenset[str] | None = None
) -> dict[str, tuple[Handler, ...]]:
    """``{"event": fn | [fn, ...]}`` -> ``{"event": (fn, ...)}``, refusing unknown event names."""
    if not on:
        return {}
    result: dict[str, tuple[Handler, ...]] = {}
    for name, handlers in on.items():
        if known is not None and name not in known:
            raise ValueError(f"unknown event {name!r}; known events: {', '.join(sorted(known))}")
        items = (handlers,) if callable(handlers) else tuple(handlers)
        for handler in items:
            if not callable(handler):
                raise TypeError(f"handler for event {name!r} is not callable: {handler!r}")
        result[name] = items
    return result


class Emitter:
    """Holds tier-1 (definition) and tier-2 (instance) handlers of one definition."""

    __slots__ = ("_definition", "_instance", "_lock", "known")

    def __init__(self, definition: HandlerMap | None, known: frozenset[str]):
        self.known = known
        self._definition = normalise_handlers(definition, known)
        self._instance: dict[str, dict[Handler, None]] = {}
        self._lock = threading.Lock()

    def on(self, event: str, handler: Handler) -> Callable[[], None]:
        """Add an instance handler (once per function); returns an unsubscribe function."""
        if event not in self.known:
            raise ValueError(
                f"unknown event {event!r}; known events: {', '.join(sorted(self.known))}"
            )
        with self._lock:
            # Copy-on-write so a concurrent emission iterates a stable snapshot.
            handlers = dict(self._instance.get(event, {}))
            handlers[handler] = None
            self._instance[event] = handlers
        return lambda: self.off(event, handler)

    def off(self, event: str, handler: Handler) -> None:
        with self._lock:
            handlers = dict(self._instance.get(event, {}))
            handlers.pop(handler, None)
            self._instance[event] = handlers

    def handlers(self, event: str, per_call: dict[str, tuple[Handler, ...]]) -> list[Handler]:
        found: list[Handler] = []
        tier1 = self._definition.get(event)
        if tier1:
            found.extend(tier1)
        tier2 = self._instance.get(event)
        if tier2:
            found.extend(tier2)
        tier3 = per_call.get(event)
        if tier3:
            found.extend(tier3)
        return found
