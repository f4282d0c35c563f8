"""Who writes the product descriptions: a model behind one small contract.

``DescriptionWriter().write(product) -> str`` asks a model for a short description. A model is
any object with ``complete(messages) -> ModelResponse`` (``content`` and ``usage``), the same
shape as a ``warlock_ai`` model.

- By default the model is :class:`LocalTemplateModel`: offline and deterministic (same title and
  price, same text), so the demo needs no network and no API key. It sleeps
  ``WARLOCK_DEMO_WRITE_DELAY`` seconds per call (default 0.4) to stand in for a real model's
  latency, which makes a crash in the middle of the enrich step easy to watch.
- With ``settings.CATALOG_OPENAI = {"base_url": ..., "api_key": ..., "model": ...}``, or the
  environment variables ``OPENAI_BASE_URL`` and ``OPENAI_API_KEY`` (and optionally
  ``OPENAI_MODEL``, default ``gpt-4o-mini``), it is :class:`OpenAICompatibleModel`: any
  ``/chat/completions`` endpoint (OpenAI, vLLM, Ollama, llama.cpp server) over ``httpx``.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import warlock_ai as ai

DEFAULT_OPENAI_MODEL = "gpt-4o-mini"
DEFAULT_WRITE_DELAY = 0.4

SYSTEM_PROMPT = (
    "You write product descriptions for an online shop: one paragraph of 25 to 40 words, "
    "concrete and friendly, no headings, no emojis, no made-up specifications."
)
PROMPT = "Write a 30-word product description for: {title}. Price: {price} EUR."
_PROMPT_RE = re.compile(r"description for: (?P<title>.+)\. Price: (?P<price>[\d.]+) EUR\.$")


class DescriptionError(RuntimeError):
    """The model could not write a description (HTTP error, malformed answer)."""


@dataclass(frozen=True)
class ModelResponse:
    content: str
    usage: ai.Usage = field(default_factory=ai.Usage)
    finish_reason: str = "stop"


class Model(Protocol):
    def complete(self, messages: list[dict[str, str]], **options: Any) -> ModelResponse: ...


def _words(text: str) -> int:
    return len(text.split())


class LocalTemplateModel:
    """An offline stand-in for an LLM: a fixed template and a hash-chosen adjective."""

    name = "local-template"
    ADJECTIVES = (
        "dependable",
        "handsome",
        "thoughtful",
        "sturdy",
        "elegant",
        "practical",
        "charming",
        "versatile",
    )
    TEMPLATE = (
        "The {title} is a {adjective} everyday companion, made from carefully chosen materials "
        "and finished by hand. It is simple to use, easy to care for and built to last. "
        "Yours for {price} EUR."
    )

    def __init__(self, delay: float | None = None) -> None:
        self.delay = delay

    def complete(self, messages: list[dict[str, str]], **options: Any) -> ModelResponse:
        delay = self.delay
        if delay is None:
            delay = float(os.environ.get("WARLOCK_DEMO_WRITE_DELAY", DEFAULT_WRITE_DELAY))
        if delay > 0:
            time.sleep(delay)
        prompt = messages[-1]["content"]
        match = _PROMPT_RE.search(prompt)
        title, price = (match["title"], match["price"]) if match else ("product", "a fair price")
        digest = hashlib.sha256(title.encode()).digest()
        adjective = self.ADJECTIVES[digest[0] % len(self.ADJECTIVES)]
        content = self.TEMPLATE.format(title=title, adjective=adjective, price=price)
        prompt_words = sum(_words(m["content"]) for m in messages)
        output_words = _words(content)
        usage = ai.Usage(input=prompt_words, output=output_words, total=prompt_words + output_words)
        return ModelResponse(content=content, usage=usage)


class OpenAICompatibleModel:
    """``POST {base_url}/chat/completions`` with a bearer key; 30 s timeout."""

    def __init__(self, base_url: str, api_key: str, model: str = DEFAULT_OPENAI_MODEL) -> None:
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.api_key = api_key
        self.model = model or DEFAULT_OPENAI_MODEL
        self.name = self.model

    def complete(self, messages: list[dict[str, str]], **options: Any) -> ModelResponse:
        import httpx  # the "openai" extra; only needed when a real endpoint is configured

        try:
            response = httpx.post(
                self.url,
                headers={"Authorization": f"Bearer {self.api_key}"},
                json={"model": self.model, "messages": messages, **options},
                timeout=30.0,
            )
        except httpx.HTTPError as exc:
            raise DescriptionError(f"POST {self.url} failed: {exc}") from exc
        if not response.is_success:
            raise DescriptionError(
                f"POST {self.url} answered HTTP {response.status_code}: {response.text[:300]}"
            )
        try:
            data = response.json()
            content = data["choices"][0]["message"]["content"] or ""
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise DescriptionError(f"POST {self.url} returned an unexpected body") from exc
        raw = data.get("usage") or {}
        usage = ai.Usage(
            input=raw.get("prompt_tokens", 0),
            output=raw.get("completion_tokens", 0),
            total=raw.get("total_tokens", 0),
        )
        finish = data["choices"][0].get("finish_reason") or "stop"
        return ModelResponse(content=content, usage=usage, finish_reason=finish)


def openai_settings() -> dict[str, str] | None:
    """``settings.CATALOG_OPENAI`` if set, else the ``OPENAI_*`` environment, else ``None``."""
    from django.conf import settings

    configured = getattr(settings, "CATALOG_OPENAI", None)
    if configured:
        return dict(configured)
    base_url, api_key = os.environ.get("OPENAI_BASE_URL"), os.environ.get("OPENAI_API_KEY")
    if base_url and api_key:
        model = os.environ.get("OPENAI_MODEL") or DEFAULT_OPENAI_MODEL
        return {"base_url": base_url, "api_key": api_key, "model": model}
    return None


def default_model() -> Model:
    config = openai_settings()
    if config is None:
        return LocalTemplateModel()
    return OpenAICompatibleModel(config["base_url"], config["api_key"], config.get("model", ""))


class DescriptionWriter:
    """Writes one product description per call; ``usage`` adds up what the calls cost."""

    def __init__(self, model: Model | None = None) -> None:
        self.model = model if model is not None else default_model()
        self.usage = ai.Usage()

    def write(self, product: dict[str, Any]) -> str:
        prompt = PROMPT.format(title=product["title"], price=product["price"])
        messages = [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": prompt},
        ]
        response = self.model.complete(messages)
        self.usage = self.usage + ai.Usage.coerce(response.usage)
        text = (response.content or "").strip()
        if not text:
            raise DescriptionError(f"the model returned an empty description for {product['sku']}")
        return text
