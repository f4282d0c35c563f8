"""The Django admin for operators: runs (``Snapshot``), sessions (``Checkpoint``), the
cache (``CacheEntry``), background deliveries (``Delivery``) and concurrency slots
(``ConcurrencySlot``). Each ModelAdmin lives in its
own module."""

from .cache import CacheEntryAdmin
from .deliveries import DeliveryAdmin
from .runs import SnapshotAdmin
from .sessions import CheckpointAdmin
from .slots import ConcurrencySlotAdmin

__all__ = [
    "CacheEntryAdmin",
    "CheckpointAdmin",
    "ConcurrencySlotAdmin",
    "DeliveryAdmin",
    "SnapshotAdmin",
]
