"""Model and embedder providers: ``OpenAIModel`` and ``OpenAIEmbedder`` (OpenAI-compatible).

Names are imported on first use, so ``import warlock_ai.providers`` works without the
``openai`` extra (httpx) installed.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from .pricing import PRICES, price_for

if TYPE_CHECKING:
    from .openai import OpenAIEmbedder, OpenAIModel

__all__ = ["PRICES", "OpenAIEmbedder", "OpenAIModel", "price_for"]

_LAZY = {"OpenAIModel": ".openai", "OpenAIEmbedder": ".openai"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
