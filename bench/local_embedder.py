"""Speed of LocalEmbedder (all-MiniLM-L6-v2 on the CPU): load time in a fresh process, and
latency of one short text and of a batch of 32, medians of several runs.

Run: ``.venv/bin/python bench/local_embedder.py [--runs N] [--loads L] [--threads T]`` (needs
the ``local`` extra, which ``make venv`` installs; ``--threads 1`` is how a forked worker runs).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

LOAD_SCRIPT = """
import json, time
t0 = time.perf_counter()
import sentence_transformers, torch
t1 = time.perf_counter()
from warlock_ai.providers import LocalEmbedder
embedder = LocalEmbedder().load()
t2 = time.perf_counter()
embedder.embed("warm up")
t3 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "load": t2 - t1, "first": t3 - t2}))
"""

SHORT = "How do I reset my password?"
BATCH = [
    f"Ticket {i}: the parcel arrived damaged and the customer asks for a refund." for i in range(32)
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30, help="timed calls of each kind")
    parser.add_argument("--loads", type=int, default=3, help="fresh processes that load the model")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's own choice)")
    args = parser.parse_args()

    import sentence_transformers
    import torch
    import transformers

    from warlock_ai.providers import LocalEmbedder

    if args.threads:
        torch.set_num_threads(args.threads)
    print(
        f"Python {platform.python_version()}, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), transformers {transformers.__version__}, "
        f"sentence-transformers {sentence_transformers.__version__}"
    )
    loads = []
    for _ in range(args.loads):
        done = subprocess.run(
            [sys.executable, "-c", LOAD_SCRIPT], capture_output=True, text=True, check=True
        )
        loads.append(json.loads(done.stdout.strip().splitlines()[-1]))
    for key, label in (
        ("import", "import torch + sentence-transformers"),
        ("load", "LocalEmbedder().load()"),
        ("first", "first embed"),
    ):
        print(f"{label:<40} {statistics.median(row[key] for row in loads) * 1000:8.0f} ms")

    embedder = LocalEmbedder().load()
    embedder.embed_many(BATCH)  # warm up
    for label, call in (
        ("embed(one short text)", lambda: embedder.embed(SHORT)),
        ("embed_many(32 texts)", lambda: embedder.embed_many(BATCH)),
    ):
        times = []
        for _ in range(args.runs):
            start = time.perf_counter()
            call()
            times.append(time.perf_counter() - start)
        print(
            f"{label:<40} {statistics.median(times) * 1000:8.1f} ms median "
            f"(min {min(times) * 1000:.1f}, {args.runs} runs)"
        )


if __name__ == "__main__":
    main()
