"""HTTP plumbing for OpenAI-compatible endpoints: pooled httpx clients, retries with backoff
(honouring ``Retry-After``), cancellation, and mapping every failure to ``ModelCallError``."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
import weakref
from dataclasses import replace
from email.utils import parsedate_to_datetime
from typing import Any, NamedTuple

import httpx

from warlock_ai.core.agents.messages import Price
from warlock_ai.core.errors import AgentCancelledError, ModelCallError
from warlock_ai.core.runs.cancel import CancelToken
from warlock_ai.core.runs.usage import Usage

from .pricing import price_for

# The documented logger for retries (docs/providers.md), kept when this code left openai.py.
logger = logging.getLogger("warlock_ai.providers.openai")

DEFAULT_BASE_URL = "https://api.openai.com/v1"
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_BACKOFF = 8.0
#: A ``Retry-After`` longer than this (a quota reset hours away) is not waited for.
MAX_RETRY_AFTER = 60.0
_HINTS = {
    401: " (check the API key: api_key= or OPENAI_API_KEY)",
    404: " (check the model name and base_url)",
}


class _Problem(NamedTuple):
    """Why one attempt failed, and whether another attempt may succeed."""

    detail: str
    status: int | None
    retryable: bool
    retry_after: float | None = None
    cause: BaseException | None = None


class Endpoint:
    """HTTP plumbing shared by the chat model and the embedder: clients, retries, errors."""

    provider = "openai"

    def __init__(
        self,
        name: str,
        *,
        api_key: str | None,
        base_url: str | None,
        timeout: float,
        max_retries: int,
        backoff: float,
        price: Price | None,
        client: httpx.Client | None,
        async_client: httpx.AsyncClient | None,
    ) -> None:
        self.name = name
        base_url = base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.max_retries = max(0, max_retries)
        self.backoff = backoff
        self.price = price if price is not None else price_for(name)
        self._api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self._headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        self._client, self._owns_client = client, client is None
        self._given_async_client = async_client
        self._async_clients: weakref.WeakKeyDictionary[Any, httpx.AsyncClient] = (
            weakref.WeakKeyDictionary()
        )
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} at {self.base_url}>"

    # --- clients ----------------------------------------------------------------------------

    def _sync_client(self) -> httpx.Client:
        client = self._client
        if client is None:
            with self._lock:
                if self._client is None:
                    self._client = httpx.Client()
                client = self._client
        return client

    def _async_client(self) -> httpx.AsyncClient:
        """One client per event loop: pooled connections cannot outlive the loop they use."""
        if self._given_async_client is not None:
            return self._given_async_client
        loop = asyncio.get_running_loop()
        with self._lock:
            client = self._async_clients.get(loop)
            if client is None:
                client = self._async_clients[loop] = httpx.AsyncClient()
        return client

    def close(self) -> None:
        """Close the sync client this instance created (a client passed in stays open)."""
        if not self._owns_client:
            return
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    async def aclose(self) -> None:
        """Close the async client this instance created for the running event loop."""
        with self._lock:
            client = self._async_clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()

    # --- requests ---------------------------------------------------------------------------

    def _post(self, path: str, body: dict[str, Any], cancel: CancelToken | None) -> dict:
        client = self._sync_client()
        for attempt in range(1, self.max_retries + 2):
            _check_cancel(cancel)
            try:
                response = client.post(
                    self.base_url + path, json=body, headers=self._headers, timeout=self.timeout
                )
            except httpx.TransportError as exc:
                problem = self._transport_problem(exc)
            else:
                if response.is_success:
                    return self._json(response)
                problem = self._status_problem(response)
            _sleep(self._next_delay(problem, attempt), cancel)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _apost(self, path: str, body: dict[str, Any], cancel: CancelToken | None) -> dict:
        client = self._async_client()
        for attempt in range(1, self.max_retries + 2):
            _check_cancel(cancel)
            try:
                response = await client.post(
                    self.base_url + path, json=body, headers=self._headers, timeout=self.timeout
                )
            except httpx.TransportError as exc:
                problem = self._transport_problem(exc)
            else:
                if response.is_success:
                    return self._json(response)
                problem = self._status_problem(response)
            await _asleep(self._next_delay(problem, attempt), cancel)
        raise AssertionError("unreachable")  # pragma: no cover

    def _next_delay(self, problem: _Problem, attempt: int) -> float:
        """Seconds to wait before the next attempt, or raise when there is none."""
        if not problem.retryable or attempt > self.max_retries:
            raise self._error(problem, attempt)
        delay = problem.retry_after
        if delay is None or not 0 <= delay <= MAX_RETRY_AFTER:
            delay = min(self.backoff * 2 ** (attempt - 1), MAX_BACKOFF)
        logger.info(
            "%s: %s; retry %d of %d in %.2fs",
            self.name,
            self._redact(problem.detail),
            attempt,
            self.max_retries,
            delay,
        )
        return delay

    def _transport_problem(self, exc: httpx.TransportError) -> _Problem:
        if isinstance(exc, httpx.TimeoutException):
            detail = f"no reply within timeout={self.timeout}s ({type(exc).__name__})"
        else:
            detail = f"cannot reach {self.base_url} ({type(exc).__name__}: {exc})"
        return _Problem(detail, None, True, cause=exc)

    def _status_problem(self, response: httpx.Response) -> _Problem:
        status = response.status_code
        message, code = _api_error(response)
        detail = f"HTTP {status}" + (f": {message}" if message else "") + _HINTS.get(status, "")
        # A 429 for an exhausted quota or budget stays until someone pays: do not wait on it.
        retryable = status in RETRY_STATUSES and code != "insufficient_quota"
        return _Problem(detail, status, retryable, _retry_after(response))

    def _json(self, response: httpx.Response) -> dict:
        try:
            data = response.json()
        except ValueError as exc:
            raise self._malformed(f"reply is not JSON ({exc})") from None
        if not isinstance(data, dict):
            raise self._malformed(f"reply is a JSON {type(data).__name__}, not an object")
        return data

    def _error(self, problem: _Problem, attempts: int) -> ModelCallError:
        detail = problem.detail
        if problem.retryable:
            detail += f" (gave up after {attempts} attempt{'s' if attempts > 1 else ''})"
        return ModelCallError(
            f"{self.provider} {self.name!r} at {self.base_url}: {self._redact(detail)}",
            provider=self.provider,
            model=self.name,
            status=problem.status,
            retryable=problem.retryable,
            cause=problem.cause,
        )

    def _malformed(self, detail: str) -> ModelCallError:
        return self._error(_Problem(f"malformed reply: {detail}", None, False), 1)

    def _redact(self, text: str) -> str:
        """Servers sometimes echo the key they rejected; it must not reach logs or snapshots."""
        return text.replace(self._api_key, "***") if self._api_key else text

    def _priced(self, usage: Usage) -> Usage:
        return replace(usage, cost=self.price.cost(usage)) if self.price else usage


# --- errors, retries, cancellation ------------------------------------------------------------


def _api_error(response: httpx.Response) -> tuple[str, str | None]:
    """The API's ``error.message`` (or the start of a non-JSON body) on one line, and its code."""
    try:
        body = response.json()
    except ValueError:
        body = response.text
    code = None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            body, code = error.get("message") or "", error.get("code")
        else:
            body = error or body.get("message") or body.get("detail") or ""
    text = " ".join(str(body).split())
    return (text if len(text) <= 300 else text[:299] + "…"), code


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds asked for by ``retry-after-ms`` (OpenAI) or ``Retry-After`` (seconds or a date)."""
    headers = response.headers
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        try:
            return float(headers[name]) * scale
        except (KeyError, ValueError):
            pass
    try:
        return parsedate_to_datetime(headers["retry-after"]).timestamp() - time.time()
    except (KeyError, TypeError, ValueError):
        return None


def _cancelled(token: CancelToken) -> AgentCancelledError:
    reason = token.reason_text
    return AgentCancelledError(
        "model call cancelled" + (f": {reason}" if reason else ""),
        cancelled_at=token.cancelled_at.isoformat() if token.cancelled_at else None,
        reason=reason or None,
    )


def _check_cancel(token: CancelToken | None) -> None:
    if token is not None and token.cancelled:
        raise _cancelled(token)


def _sleep(seconds: float, token: CancelToken | None) -> None:
    if token is None:
        time.sleep(seconds)
    elif token.wait(seconds):
        raise _cancelled(token)


async def _asleep(seconds: float, token: CancelToken | None) -> None:
    if token is None:
        await asyncio.sleep(seconds)
    elif await token.async_wait(seconds):
        raise _cancelled(token)
