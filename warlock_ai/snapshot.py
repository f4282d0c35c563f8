"""Snapshot store factories: ``ai.snapshot.memory()`` (more tiers arrive with the Django app)."""

from __future__ import annotations

from .stores.memory import MemorySnapshotStore

__all__ = ["memory"]


def memory() -> MemorySnapshotStore:
    """A process-local store for development and tests; it does not survive a restart."""
    return MemorySnapshotStore()
