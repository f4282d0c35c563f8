"""Built-in middleware: ``ai.middleware.semantic_cache(embedder=, store=, threshold=, ...)``.

Write your own with ``ai.Middleware(name, trip=ai.Hooks(before=..., after=...))``; see
docs/agents.md.
"""

from __future__ import annotations

from .core.agents.middleware import Hooks, Middleware, PipelineContext
from .core.cache.guard import negation_guard
from .core.cache.semantic import semantic_cache

__all__ = ["Hooks", "Middleware", "PipelineContext", "negation_guard", "semantic_cache"]
