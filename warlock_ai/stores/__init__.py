"""Snapshot and checkpoint stores: the contracts (``base``) and their implementations."""

from .base import SnapshotStore
from .memory import MemorySnapshotStore

__all__ = ["MemorySnapshotStore", "SnapshotStore"]
