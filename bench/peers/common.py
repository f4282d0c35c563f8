"""What every worker of ``bench/peers/run.py`` shares: the big value, and the JSON-lines loop.

Standard library only: the peers' workers import it under the peers' own interpreter
(``.bench/peers-venv``), where neither warlock_ai nor Django is installed.
"""

from __future__ import annotations

import json
import random
import sys
import traceback
from collections.abc import Callable
from functools import cache
from typing import Any

#: Measured steps per run; a step 0 before them stores the big value and is not timed.
STEPS = 10

SIZES = {"1KB": 1024, "100KB": 100 * 1024, "1MiB": 1024 * 1024, "10MiB": 10 * 1024 * 1024}

_SYLLABLES = (
    "ka lo mer tin shu ra vel dor pa ni gest rum co lia ber ton fi sa mu lek "
    "tra os en dal vi qua zor hel pin ard mo ux bri cal fen ot"
)


@cache
def _vocabulary() -> tuple[str, ...]:
    """2,000 made-up words of 1 to 4 syllables: text that compresses about as prose does."""
    rng = random.Random(7)
    syllables = _SYLLABLES.split()
    words = {"".join(rng.choices(syllables, k=rng.randint(1, 4))) for _ in range(3000)}
    return tuple(sorted(words))[:2000]


def _text(rng: random.Random) -> str:
    words, vocabulary = [], _vocabulary()
    length = -1
    while length < 200:
        words.append(rng.choice(vocabulary))
        length += len(words[-1]) + 1
    return " ".join(words)


@cache
def big_value(size: int) -> list[dict[str, Any]]:
    """Row-like dicts (id, sku, qty, price, text) until their JSON (``json.dumps``) reaches
    ``size`` bytes; the same rows in every process (seeded by the size)."""
    rng = random.Random(size)
    rows: list[dict[str, Any]] = []
    encoded = 2  # the list's brackets
    while encoded < size:
        row = {
            "id": len(rows),
            "sku": f"SKU-{rng.randrange(16**8):08X}",
            "qty": rng.randrange(1, 500),
            "price": rng.randrange(100, 100_000) / 100,
            "text": _text(rng),
        }
        encoded += len(json.dumps(row)) + (2 if rows else 0)
        rows.append(row)
    return rows


def size_label(size: int) -> str:
    for label, value in SIZES.items():
        if value == size:
            return label
    return f"{size}B"


def serve(measure: Callable[[str, int, int], list[float]], hello: dict[str, Any]) -> None:
    """Answer requests on stdin, one JSON object a line, until stdin closes.

    A request is ``{"contender", "size", "runs"}``; the answer ``{"samples": [seconds per
    measured step, one per run]}`` or ``{"error": traceback}``. Whatever a library prints goes
    to stderr, so that stdout carries the answers only.
    """
    out = sys.stdout
    sys.stdout = sys.stderr

    def send(message: dict[str, Any]) -> None:
        out.write(json.dumps(message) + "\n")
        out.flush()

    send({"ready": True, **hello})
    for line in sys.stdin:
        request = json.loads(line)
        try:
            samples = measure(request["contender"], request["size"], request["runs"])
        except Exception:
            send({"error": traceback.format_exc()})
        else:
            send({"samples": samples})
