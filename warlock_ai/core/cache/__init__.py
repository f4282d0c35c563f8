"""Cache drivers: the contract every driver keeps, and the in-process and file drivers.

A driver is a key-value store of JSON values grouped by namespace, with optional expiry, an
optional scope (an owner such as ``"session:42"``; a scope never reads another's entries) and,
where ``supports_similarity`` is true, cosine search over the vectors stored with the values.
The semantic cache and the memory tiers use them; the Django and Redis drivers live in
``warlock_ai.stores``.
"""

from .base import CacheDriver, CacheHit
from .file import FileCacheDriver
from .memory import LRUCacheDriver, MemoryCacheDriver

__all__ = ["CacheDriver", "CacheHit", "FileCacheDriver", "LRUCacheDriver", "MemoryCacheDriver"]
