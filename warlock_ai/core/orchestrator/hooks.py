"""What a turn does around its dispatch: history windows, memory recall and remember, and
history compaction (reference sections 3.2, 3.6 and 3.7)."""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from ..errors import OrchestratorConfigError
from .results import Compaction

DEFAULT_ROUTER_WINDOW = 5
DEFAULT_AGENTS_WINDOW = 15
DEFAULT_KEEP = 8


# --- history windows ---------------------------------------------------------------------


def window_kind(value: Any) -> str | None:
    """What the signature records of a window: its strategy, not its value."""
    if value is None:
        return None
    return "callback" if callable(value) else "number"


def check_window(where: str, role: str, value: Any) -> None:
    if value is None or callable(value):
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise OrchestratorConfigError(
            f"{where}: history_window[{role!r}] must be a number of messages or a callable "
            f"(history) -> messages, got {value!r}"
        )


def apply_window(history: Sequence[Any], window: Any, default: int) -> list[Any]:
    """The last N messages (N <= 0 keeps none), or what a callable makes of the history."""
    if callable(window):
        return list(window(list(history)))
    n = default if window is None else window
    return list(history[-n:]) if n > 0 else []


# --- memory ------------------------------------------------------------------------------


@runtime_checkable
class MemoryContract(Protocol):
    """What the orchestrator needs of a memory (``ai.memory(...)`` implements it)."""

    def recall(self, query: str, **options: Any) -> Any: ...

    def remember(self, item: Any) -> Any: ...


@dataclass(frozen=True)
class MemoryHooks:
    """The orchestrator's ``memory=`` option, resolved."""

    store: Any
    scope: Any = "session"
    k: int = 5
    threshold: float | None = None
    tier: str | None = None
    remember: bool = True
    remember_tier: str | None = None
    inject_key: str = "memories"

    def scope_for(self, session_id: str) -> str | None:
        if self.scope == "session":
            return f"session:{session_id}"
        if self.scope == "shared":
            return None
        if callable(self.scope):
            scoped: str | None = self.scope(session_id)
            return scoped
        return str(self.scope)

    def recall_options(self, session_id: str) -> dict[str, Any]:
        options: dict[str, Any] = {"k": self.k, "scope": self.scope_for(session_id)}
        if self.threshold is not None:
            options["threshold"] = self.threshold
        if self.tier is not None:
            options["tier"] = self.tier
        return options

    def item(self, text: str, session_id: str) -> dict[str, Any]:
        item: dict[str, Any] = {"text": text, "scope": self.scope_for(session_id)}
        if self.remember_tier is not None:
            item["tier"] = self.remember_tier
        return item


def resolve_memory(where: str, value: Any) -> MemoryHooks | None:
    """``memory=``: a memory (recall/remember), or ``{"store": memory, "scope", "recall":
    {"k", "threshold", "tier"}, "remember", "remember_tier", "inject_key"}``."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        store = value.get("store")
        recall = value.get("recall") or {}
        unknown = set(value) - {
            "store",
            "scope",
            "recall",
            "remember",
            "remember_tier",
            "inject_key",
        }
        if unknown:
            raise OrchestratorConfigError(f"{where}: memory has unknown keys {sorted(unknown)}")
        hooks = MemoryHooks(
            store=store,
            scope=value.get("scope", "session"),
            k=recall.get("k", 5),
            threshold=recall.get("threshold"),
            tier=recall.get("tier"),
            remember=value.get("remember", True) is not False,
            remember_tier=value.get("remember_tier"),
            inject_key=value.get("inject_key", "memories"),
        )
    else:
        hooks = MemoryHooks(store=value)
    if not isinstance(hooks.store, MemoryContract):
        raise OrchestratorConfigError(
            f"{where}: memory must have recall(query, ...) and remember(item) "
            f"(ai.memory(...)), got {hooks.store!r}"
        )
    if isinstance(hooks.k, bool) or not isinstance(hooks.k, int) or hooks.k < 0:
        raise OrchestratorConfigError(f"{where}: memory recall k must be an integer >= 0")
    scope = hooks.scope
    if not (scope in ("session", "shared") or callable(scope) or isinstance(scope, str)):
        raise OrchestratorConfigError(
            f'{where}: memory scope must be "session", "shared", a string or a callable '
            f"(session_id) -> scope, got {scope!r}"
        )
    return hooks


def query_text(value: Any) -> str:
    """The text a memory is asked or told: a string as is, anything else as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def remembered_text(query: str, data: Any, branches: Mapping[str, Any]) -> str:
    """``"<query>\\n<outcome>"``, or whichever of the two is not empty."""
    if data not in (None, "", {}):
        outcome = query_text(data)
    else:
        outputs = [b.get("output") for b in branches.values() if b.get("output") is not None]
        outcome = "\n".join(query_text(o) for o in outputs)
    return "\n".join(part for part in (query, outcome) if part)


async def maybe_await(value: Any) -> Any:
    return (await value) if inspect.isawaitable(value) else value


# --- compaction --------------------------------------------------------------------------


@dataclass(frozen=True)
class Summarize:
    """The object form of ``summarize=``: compact once ``turn_index >= after_turns``."""

    after_turns: int | None = None
    keep: int = DEFAULT_KEEP
    summarizer: Any = None
    on_compact: Callable[..., Any] | None = None


def resolve_summarize(where: str, value: Any) -> Summarize | Callable[..., Any] | None:
    if value is None or callable(value):
        resolved: Callable[..., Any] | None = value
        return resolved
    if not isinstance(value, Mapping):
        raise OrchestratorConfigError(
            f"{where}: summarize must be a callable (history) -> compaction or a dict "
            f"{{after_turns, keep, summarizer, on_compact}}, got {value!r}"
        )
    unknown = set(value) - {"after_turns", "keep", "summarizer", "on_compact"}
    if unknown:
        raise OrchestratorConfigError(f"{where}: summarize has unknown keys {sorted(unknown)}")
    for key in ("after_turns", "keep"):
        number = value.get(key)
        if number is not None and (
            isinstance(number, bool) or not isinstance(number, int) or number < 0
        ):
            raise OrchestratorConfigError(f"{where}: summarize[{key!r}] must be an integer >= 0")
    on_compact = value.get("on_compact")
    if on_compact is not None and not callable(on_compact):
        raise OrchestratorConfigError(f"{where}: summarize['on_compact'] must be callable")
    return Summarize(
        after_turns=value.get("after_turns"),
        keep=value.get("keep", DEFAULT_KEEP) if value.get("keep") is not None else DEFAULT_KEEP,
        summarizer=value.get("summarizer"),
        on_compact=on_compact,
    )


def _transcript(messages: Sequence[Any]) -> str:
    lines = []
    for message in messages:
        if isinstance(message, Mapping):
            lines.append(f"{message.get('role', 'user')}: {message.get('content', '')}")
        else:
            lines.append(
                f"{getattr(message, 'role', 'user')}: {getattr(message, 'content', message)}"
            )
    return "\n".join(lines)


SUMMARY_INSTRUCTION = (
    "Summarise the conversation below for an assistant that will continue it: keep facts, "
    "decisions, open questions and the user's preferences; be brief."
)


def compaction_range(history: Sequence[Any], keep: int) -> tuple[int, int]:
    return 0, max(-1, len(history) - keep - 1)


def summary_text(summarizer: Any, messages: Sequence[Any], memo: str) -> Any:
    """The summary of ``messages``: the summarizer model's answer, else ``memo``. May
    return an awaitable (an async model)."""
    if not messages:
        return ""
    if summarizer is None:
        return memo
    prompt = [
        {"role": "system", "content": SUMMARY_INSTRUCTION},
        {"role": "user", "content": _transcript(messages)},
    ]
    return summarizer.complete(prompt)


def to_compaction(value: Any, start: int, end: int) -> Compaction:
    """A ``Compaction`` from what a summarizer or a summarize callback returned."""
    if isinstance(value, Compaction):
        return value
    if isinstance(value, Mapping) and "summary" in value:
        summary = value["summary"]
        if isinstance(summary, str):
            summary = {"role": "system", "content": summary}
        return Compaction(
            dict(summary),
            int(value.get("replaces_from_index", start)),
            int(value.get("replaces_to_index", end)),
        )
    content = getattr(value, "content", value)
    return Compaction({"role": "system", "content": str(content or "")}, start, end)
