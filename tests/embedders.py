"""A deterministic embedder whose similarities a test can reason about.

Each topic word puts weight on its own axis, so texts about the same topics point the same
way (cosine close to 1) and texts about different topics are orthogonal; a small, stable
per-text component keeps two different texts from being identical vectors. It is a real
implementation of the embedder contract (``embed``, ``embed_many``, async twins).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

from warlock_ai import Embedding, Embeddings

TOPICS = (
    ("refund", "refunds", "money", "reimburse"),
    ("password", "login", "sign", "credentials"),
    ("delivery", "parcel", "shipping", "package"),
    ("invoice", "bill", "receipt"),
    ("cancel", "subscription", "plan"),
    ("weather", "rain", "sunny"),
)


class TopicEmbedder:
    name = "topic-embedder"
    provider = "tests"

    def __init__(self, dimensions: int = 8, jitter: float = 0.05) -> None:
        if dimensions < len(TOPICS) + 1:
            raise ValueError(f"TopicEmbedder needs at least {len(TOPICS) + 1} dimensions")
        self.dimensions = dimensions
        self.jitter = jitter
        self.calls = 0

    def vector(self, text: str) -> list[float]:
        words = "".join(c if c.isalnum() else " " for c in text.lower()).split()
        vector = [0.0] * self.dimensions
        for axis, topic in enumerate(TOPICS):
            vector[axis] = float(sum(word in topic for word in words))
        digest = hashlib.sha256(text.encode()).digest()
        vector[len(TOPICS)] = self.jitter * (1 + digest[0] / 255)
        norm = math.sqrt(sum(x * x for x in vector))
        return [x / norm for x in vector]

    def embed(self, text: str) -> Embedding:
        self.calls += 1
        return Embedding(self.vector(text), self.dimensions)

    def embed_many(self, texts: Sequence[str]) -> Embeddings:
        self.calls += 1
        return Embeddings([self.vector(t) for t in texts], self.dimensions)

    async def aembed(self, text: str) -> Embedding:
        return self.embed(text)

    async def aembed_many(self, texts: Sequence[str]) -> Embeddings:
        return self.embed_many(texts)
