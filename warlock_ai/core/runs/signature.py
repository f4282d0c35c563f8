"""Structural signatures: FNV-1a 32-bit over a compact JSON fingerprint.

Byte-compatible with ``@warlock.js/ai``: the fingerprint is serialised like JavaScript's
``JSON.stringify`` (no whitespace, insertion order, non-ASCII kept raw) and hashed over
UTF-16 code units, so snapshots written by either library carry the same signature.
"""

from __future__ import annotations

import json
from typing import Any

_FNV_OFFSET = 0x811C9DC5
_FNV_PRIME = 16777619


def fnv1a32(text: str) -> int:
    """FNV-1a 32-bit over the UTF-16 code units of ``text``."""
    h = _FNV_OFFSET
    data = text.encode("utf-16-le")
    for i in range(0, len(data), 2):
        h ^= data[i] | (data[i + 1] << 8)
        h = (h * _FNV_PRIME) & 0xFFFFFFFF
    return h


def fnv_hex(text: str) -> str:
    """The signature form: lowercase hex, left-padded to 8 characters."""
    return format(fnv1a32(text), "08x")


def fnv_short(text: str) -> str:
    """The unpadded form used for cache keys and memory ids (may be shorter than 8)."""
    return format(fnv1a32(text), "x")


def compact_json(obj: Any) -> str:
    """Serialise like ``JSON.stringify``: compact, insertion order, non-ASCII raw."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def signature_of(fingerprint: dict[str, Any]) -> str:
    return fnv_hex(compact_json(fingerprint))
