"""Lease helpers for store implementations (defined in ``warlock_ai.core.leases``)."""

from ..core.leases import (
    ACQUIRE,
    RELEASE,
    RENEW,
    LeaseClaim,
    changed_error,
    held_error,
    lost_error,
    new_owner_id,
    owner_is_dead,
)

__all__ = [
    "ACQUIRE",
    "RELEASE",
    "RENEW",
    "LeaseClaim",
    "changed_error",
    "held_error",
    "lost_error",
    "new_owner_id",
    "owner_is_dead",
]
