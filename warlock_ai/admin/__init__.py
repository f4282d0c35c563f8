"""The Django admin for operators: runs (``Snapshot``), sessions (``Checkpoint``), the
cache (``CacheEntry``) and background deliveries (``Delivery``). Each ModelAdmin lives in its
own module."""

from .cache import CacheEntryAdmin
from .deliveries import DeliveryAdmin
from .runs import SnapshotAdmin
from .sessions import CheckpointAdmin

__all__ = ["CacheEntryAdmin", "CheckpointAdmin", "DeliveryAdmin", "SnapshotAdmin"]
