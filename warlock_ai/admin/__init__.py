"""The Django admin for operators: runs (``Snapshot``), sessions (``Checkpoint``) and the
cache (``CacheEntry``). Each ModelAdmin lives in its own module."""

from .cache import CacheEntryAdmin
from .runs import SnapshotAdmin
from .sessions import CheckpointAdmin

__all__ = ["CacheEntryAdmin", "CheckpointAdmin", "SnapshotAdmin"]
