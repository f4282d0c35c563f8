"""Tools an agent offers its model: a name, a JSON Schema for the arguments, and ``run``."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def _empty_object() -> dict[str, Any]:
    return {"type": "object", "properties": {}}


@dataclass(frozen=True, eq=False)
class Tool:
    """``run(arguments)`` returns a JSON-able value; it may be a coroutine function.

    The name is restricted to ``[A-Za-z0-9_.-]`` (at most 64 characters) because that is
    what the chat-completion APIs accept for function names.
    """

    name: str
    run: Callable[..., Any]
    description: str = ""
    parameters: Mapping[str, Any] = field(default_factory=_empty_object)
    #: ``run(arguments, ctx)``: the tool also gets the call's context (the calling agent's
    #: options, e.g. its ``session_id``), which the model cannot set.
    takes_context: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ValueError(
                f"tool name {self.name!r} is invalid: use 1-64 of the characters A-Z a-z 0-9 _ . -"
            )
        if not callable(self.run):
            raise TypeError(f"tool {self.name!r}: run must be callable, got {self.run!r}")
        if not isinstance(self.parameters, Mapping):
            raise TypeError(
                f"tool {self.name!r}: parameters must be a JSON Schema dict, "
                f"got {self.parameters!r}"
            )

    def spec(self) -> dict[str, Any]:
        """What the model is given in ``tools=[...]``."""
        return {
            "name": self.name,
            "description": self.description,
            "parameters": dict(self.parameters),
        }

    def __repr__(self) -> str:
        return f"<Tool {self.name}>"


def tool(
    name: str,
    run: Callable[[dict[str, Any]], Any],
    *,
    description: str = "",
    parameters: Mapping[str, Any] | None = None,
) -> Tool:
    """Define a tool: ``tool("add", lambda args: args["a"] + args["b"], parameters={...})``."""
    return Tool(
        name=name,
        run=run,
        description=description,
        parameters=_empty_object() if parameters is None else parameters,
    )
