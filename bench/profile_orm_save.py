"""Profile one ORM snapshot save on PostgreSQL: where does the time of a write go?

Run: ``.venv/bin/python bench/profile_orm_save.py [--writes N]``.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path[:0] = [str(ROOT), str(ROOT.parent)]

import step_overhead as bench  # noqa: E402

import warlock_ai as ai  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=2000)
    args = parser.parse_args()
    bench.setup_django(["postgres"], tempfile.mkdtemp(prefix="warlock-profile-"))
    snapshot = bench.sample_snapshot(ai.snapshot.memory)
    store = ai.snapshot.db(using="postgres")
    bench.time_store_save(store, snapshot, 300)  # warm up
    profiler = cProfile.Profile()
    profiler.enable()
    bench.time_store_save(store, snapshot, args.writes)
    profiler.disable()
    pstats.Stats(profiler).sort_stats("tottime").print_stats(15)


if __name__ == "__main__":
    main()
