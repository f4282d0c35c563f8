"""Fixtures: a scripted OpenAI-compatible server and providers pointed at it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.providers.server import OpenAIServer
from warlock_ai.providers.openai import OpenAIEmbedder, OpenAIModel

API_KEY = "sk-test-0123456789abcdef"


@pytest.fixture
def openai_server() -> Iterator[OpenAIServer]:
    """A fresh server per test, expecting ``API_KEY``."""
    server = OpenAIServer(api_key=API_KEY).start()
    yield server
    server.stop()


@pytest.fixture
def make_model(openai_server: OpenAIServer) -> Iterator[Callable[..., OpenAIModel]]:
    """Build ``OpenAIModel``s on the server with fast retries; closed after the test."""
    made: list[OpenAIModel] = []

    def make(name: str = "gpt-4o-mini", **options: Any) -> OpenAIModel:
        defaults = {"api_key": API_KEY, "base_url": openai_server.base_url, "backoff": 0.01}
        made.append(OpenAIModel(name, **{**defaults, "timeout": 5.0, **options}))
        return made[-1]

    yield make
    for model in made:
        model.close()


@pytest.fixture
def make_embedder(openai_server: OpenAIServer) -> Iterator[Callable[..., OpenAIEmbedder]]:
    """Build ``OpenAIEmbedder``s on the server with fast retries; closed after the test."""
    made: list[OpenAIEmbedder] = []

    def make(name: str = "text-embedding-3-small", **options: Any) -> OpenAIEmbedder:
        defaults = {"api_key": API_KEY, "base_url": openai_server.base_url, "backoff": 0.01}
        made.append(OpenAIEmbedder(name, **{**defaults, "timeout": 5.0, **options}))
        return made[-1]

    yield make
    for embedder in made:
        embedder.close()
