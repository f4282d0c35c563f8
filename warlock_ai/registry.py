"""The flow registry: ``(kind, name) -> definition``.

Every module-level definition in ``<app>/flows.py`` (the module names come from
``WARLOCK_AI["FLOW_MODULES"]``) is registered when Django starts, so commands, jobs, the admin
and the API can rebuild a run's definition from its snapshot.
"""

from __future__ import annotations

import threading
from importlib import import_module
from importlib.util import find_spec
from typing import Any

from .core.errors import UnknownFlowError, WorkflowError
from .core.runs.definition import Definition
from .core.runs.kinds import kind_names


def is_definition(value: Any) -> bool:
    return isinstance(value, Definition)


class FlowRegistry:
    def __init__(self) -> None:
        self._flows: dict[tuple[str, str], Any] = {}
        self._origins: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()

    def register(self, definition: Any, origin: str = "", replace: bool = False) -> Any:
        """Register ``definition``; a different definition under the same name is refused."""
        if not is_definition(definition):
            raise TypeError(
                f"{definition!r} is not a durable definition (a workflow, a supervisor, ...)"
            )
        key = (definition.kind, definition.name)
        with self._lock:
            existing = self._flows.get(key)
            if existing is not None and existing is not definition and not replace:
                where = self._origins.get(key) or "elsewhere"
                raise WorkflowError(
                    f'{definition.kind} "{definition.name}" is already registered (from {where}); '
                    "flow names must be unique"
                )
            self._flows[key] = definition
            self._origins[key] = origin
        return definition

    def unregister(self, kind: str, name: str) -> None:
        with self._lock:
            self._flows.pop((kind, name), None)
            self._origins.pop((kind, name), None)

    def get(self, kind: str, name: str) -> Any:
        try:
            return self._flows[(kind, name)]
        except KeyError:
            raise self._unknown(name, kind) from None

    def lookup(self, kind: str, name: str) -> Any | None:
        """The definition registered as ``(kind, name)``, or None."""
        return self._flows.get((kind, name))

    def find(self, name: str) -> Any:
        """Look a flow up by name (``kind:name`` picks one when two kinds share a name)."""
        if ":" in name and name.split(":", 1)[0] in kind_names():
            kind, _, bare = name.partition(":")
            return self.get(kind, bare)
        matches = [d for (kind, n), d in self._flows.items() if n == name]
        if not matches:
            raise self._unknown(name)
        if len(matches) > 1:
            kinds = ", ".join(f"{d.kind}:{name}" for d in matches)
            raise UnknownFlowError(f'"{name}" names several flows; say which: {kinds}')
        return matches[0]

    def _unknown(self, name: str, kind: str | None = None) -> UnknownFlowError:
        known = ", ".join(self.names()) or "none (is there a flows.py in an installed app?)"
        what = f"{kind} " if kind else "flow "
        return UnknownFlowError(f'unknown {what}"{name}"; registered flows: {known}')

    def names(self) -> list[str]:
        return sorted(name for _, name in self._flows)

    def all(self) -> list[Any]:
        return [self._flows[k] for k in sorted(self._flows)]

    def clear(self) -> None:
        with self._lock:
            self._flows.clear()
            self._origins.clear()

    def register_module(self, module: Any) -> list[Any]:
        """Register every module-level definition of ``module``."""
        found = [v for v in vars(module).values() if is_definition(v)]
        for definition in found:
            self.register(definition, origin=module.__name__)
        return found


registry = FlowRegistry()


def autodiscover(module_names: list[str] | tuple[str, ...]) -> None:
    """Import ``<app>.<module>`` for every installed app that has one, and register its flows."""
    from django.apps import apps

    for app_config in apps.get_app_configs():
        for module_name in module_names:
            dotted = f"{app_config.name}.{module_name}"
            try:
                spec = find_spec(dotted)
            except ModuleNotFoundError:
                spec = None
            if spec is not None:
                registry.register_module(import_module(dotted))
