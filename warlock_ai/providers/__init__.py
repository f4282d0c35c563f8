"""Model and embedder providers: ``OpenAIModel`` and ``OpenAIEmbedder`` (OpenAI-compatible),
``LocalEmbedder`` (offline, sentence-transformers).

Names are imported on first use, so ``import warlock_ai.providers`` works without the
``openai`` extra (httpx) or the ``local`` extra (sentence-transformers) installed.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from .pricing import PRICES, price_for

if TYPE_CHECKING:
    from .local import LocalEmbedder
    from .openai import OpenAIEmbedder, OpenAIModel

__all__ = ["PRICES", "LocalEmbedder", "OpenAIEmbedder", "OpenAIModel", "price_for"]

_LAZY = {"OpenAIModel": ".openai", "OpenAIEmbedder": ".openai", "LocalEmbedder": ".local"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
