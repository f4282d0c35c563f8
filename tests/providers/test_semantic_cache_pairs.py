"""The semantic cache on a real embedder (the `local` extra's all-MiniLM-L6-v2), through the
whole middleware, on the labelled pairs of ``tests/data/semantic_cache_pairs.json``: for each
pair the ``cached`` prompt is answered first, then the ``query`` is asked; the query is served
from the cache when its reply is the first one. Measured with and without the negation guard
(figures in docs/benchmarks.md; ``bench/semantic_guard.py`` prints them per threshold)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import warlock_ai as ai
from warlock_ai.providers.local import LocalEmbedder
from warlock_ai.testing import FakeModel

PAIRS = json.loads(
    (Path(__file__).parent.parent / "data" / "semantic_cache_pairs.json").read_text()
)
THRESHOLD = 0.90


class Remembering:
    """The packaged embedder, each text embedded once (both runs ask for the same texts)."""

    def __init__(self) -> None:
        self.inner = LocalEmbedder()
        self.name, self.provider, self.dimensions = "all-MiniLM-L6-v2", "local", 384
        self.seen: dict[str, Any] = {}

    def embed(self, text: str) -> Any:
        if text not in self.seen:
            self.seen[text] = self.inner.embed(text)
        return self.seen[text]


@pytest.fixture(scope="module")
def embedder() -> Remembering:
    return Remembering()


def served(embedder: Remembering, pair: dict[str, Any], guard: bool) -> bool:
    cache = ai.middleware.semantic_cache(
        embedder=embedder, store=ai.cache.memory(dimensions=384), threshold=THRESHOLD, guard=guard
    )
    agent = ai.agent(name="desk", model=FakeModel(["cached", "fresh"]), middleware=[cache])
    agent.execute(pair["cached"], session_id="s")
    return agent.execute(pair["query"], session_id="s").text == "cached"


def rates(embedder: Remembering, guard: bool) -> dict[str, Any]:
    hits = {i: served(embedder, pair, guard) for i, pair in enumerate(PAIRS["pairs"])}

    def rate(label: str, hard: bool | None = None) -> float:
        chosen = [
            i
            for i, p in enumerate(PAIRS["pairs"])
            if p["label"] == label and (hard is None or p["hard"] == hard)
        ]
        return sum(hits[i] for i in chosen) / len(chosen)

    return {
        "hits": hits,
        "paraphrase": rate("paraphrase"),
        "negation": rate("negation"),
        "plain_paraphrase": rate("paraphrase", hard=False),
        "plain_negation": rate("negation", hard=False),
    }


def test_the_labelled_set_has_enough_pairs_of_both_kinds() -> None:
    labels = [pair["label"] for pair in PAIRS["pairs"]]
    assert len(labels) >= 40
    assert labels.count("paraphrase") >= 20 and labels.count("negation") >= 20


def test_the_guard_stops_negations_the_threshold_lets_through(embedder: Remembering) -> None:
    without, guarded = rates(embedder, guard=False), rates(embedder, guard=True)
    print(
        f"\nthreshold {THRESHOLD}: paraphrase hits {without['paraphrase']:.1%} -> "
        f"{guarded['paraphrase']:.1%}, negation false hits {without['negation']:.1%} -> "
        f"{guarded['negation']:.1%}"
    )
    # The problem is real: a threshold alone serves most negations of a cached prompt.
    assert without["negation"] >= 0.5
    # The guard serves almost none of them, and none of the ordinary ones.
    assert guarded["negation"] <= 0.1 and guarded["plain_negation"] == 0.0
    # It costs no ordinary paraphrase: those served without it are served with it.
    plain = [
        i for i, p in enumerate(PAIRS["pairs"]) if p["label"] == "paraphrase" and not p["hard"]
    ]
    assert [guarded["hits"][i] for i in plain] == [without["hits"][i] for i in plain]
    assert guarded["plain_paraphrase"] > 0
