"""A real HTTP server speaking the slice of the OpenAI API the provider uses, scripted per test.

Each test queues replies (text, tool calls, errors, slow or dropped answers) per endpoint; the
server answers them in order, checks ``Authorization: Bearer`` when it has a key, and records
every request so tests can assert what went over the wire.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

CHAT = "/v1/chat/completions"
EMBEDDINGS = "/v1/embeddings"

Body = dict[str, Any] | str | Callable[[dict[str, Any]], dict[str, Any]] | None


@dataclass
class Reply:
    """One scripted answer; a callable ``body`` is built from the request's JSON."""

    status: int = 200
    body: Body = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drop: bool = False  # close the connection without answering


@dataclass(frozen=True)
class Request:
    path: str
    headers: dict[str, str]
    body: Any
    at: float  # time.monotonic() when it arrived


def usage(prompt: int = 0, completion: int = 0, cached: int = 0, reasoning: int = 0) -> dict:
    """A chat ``usage`` block as OpenAI sends it."""
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": reasoning, "audio_tokens": 0},
    }


def error_body(message: str, code: str | None = None) -> dict:
    return {"error": {"message": message, "type": "invalid_request_error", "code": code}}


class OpenAIServer:
    """Start with :meth:`start`, point a provider at :attr:`base_url`, script, then assert."""

    def __init__(self, api_key: str | None = None) -> None:
        self.api_key = api_key
        self.requests: list[Request] = []
        self._queues: dict[str, deque[Reply]] = {CHAT: deque(), EMBEDDINGS: deque()}
        self._changed = threading.Condition()
        self._stopping = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.owner = self  # type: ignore[attr-defined]
        self._httpd.handle_error = lambda request, address: None  # clients that gave up
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def start(self) -> OpenAIServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    # --- scripting ------------------------------------------------------------------------

    def queue(self, path: str, reply: Reply, times: int = 1) -> None:
        with self._changed:
            self._queues[path].extend([reply] * times)

    def text(self, content: str, *, usage: dict | None = None, model: str | None = None) -> None:
        """Queue an assistant text reply."""
        self.queue(CHAT, Reply(body=_chat(content=content, usage=usage, model=model)))

    def tool_calls(self, *calls: tuple[str, str, Any], usage: dict | None = None) -> None:
        """Queue a reply calling tools; each call is ``(id, name, arguments)``, where a
        string ``arguments`` is sent verbatim (to script malformed JSON)."""
        wire = [
            {
                "id": call_id,
                "type": "function",
                "function": {
                    "name": name,
                    "arguments": args if isinstance(args, str) else json.dumps(args),
                },
            }
            for call_id, name, args in calls
        ]
        body = _chat(content=None, tool_calls=wire, usage=usage, finish_reason="tool_calls")
        self.queue(CHAT, Reply(body=body))

    def error(
        self,
        status: int,
        message: str = "",
        *,
        path: str = CHAT,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        times: int = 1,
    ) -> None:
        """Queue an error status with OpenAI's ``{"error": {"message", "code"}}`` body."""
        reply = Reply(status=status, body=error_body(message, code), headers=headers or {})
        self.queue(path, reply, times)

    def slow(self, seconds: float, *, path: str = CHAT, times: int = 1) -> None:
        """Queue replies that arrive only after ``seconds`` (for client timeouts)."""
        body = _embeddings if path == EMBEDDINGS else _chat(content="late")
        self.queue(path, Reply(body=body, delay=seconds), times)

    def drop(self, *, path: str = CHAT, times: int = 1) -> None:
        """Queue connections closed without an answer."""
        self.queue(path, Reply(drop=True), times)

    def embeddings(self, times: int = 1) -> None:
        """Queue embeddings replies: input i gets ``[len(text), i, 1, 0...]``, sent in reverse
        order so the client must sort by ``index``; the size is the request's ``dimensions``
        or 4."""
        self.queue(EMBEDDINGS, Reply(body=_embeddings), times)

    # --- inspection -----------------------------------------------------------------------

    def bodies(self, path: str = CHAT) -> list[Any]:
        return [r.body for r in self.requests if r.path == path]

    def wait_for_requests(self, count: int, timeout: float = 5.0) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: len(self.requests) >= count, timeout)

    # --- serving --------------------------------------------------------------------------

    def _answer(self, handler: _Handler, raw: bytes) -> None:
        body = json.loads(raw) if raw else None
        headers = {k.lower(): v for k, v in handler.headers.items()}
        with self._changed:
            self.requests.append(Request(handler.path, headers, body, time.monotonic()))
            self._changed.notify_all()
            reply = self._auth_failure(headers) or self._next(handler.path)
        if reply.delay:
            self._stopping.wait(reply.delay)
        if reply.drop:
            handler.close_connection = True
            return
        content = reply.body(body) if callable(reply.body) else reply.body
        if isinstance(content, dict) and content.get("model") is None and body:
            content = {**content, "model": body.get("model")}
        handler.send(reply.status, content, reply.headers)

    def _auth_failure(self, headers: dict[str, str]) -> Reply | None:
        if self.api_key is None or headers.get("authorization") == f"Bearer {self.api_key}":
            return None
        given = headers.get("authorization", "").removeprefix("Bearer ")
        # Echo the whole key: the client must redact it even when a server does not.
        message = f"Incorrect API key provided: {given}."
        return Reply(status=401, body=error_body(message, "invalid_api_key"))

    def _next(self, path: str) -> Reply:
        queue = self._queues.get(path)
        if queue is None:
            return Reply(404, error_body(f"Unknown request URL: POST {path}."))
        if not queue:
            return Reply(400, error_body(f"test server: nothing scripted for {path}"))
        return queue.popleft()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so the client's connection pool is exercised
    disable_nagle_algorithm = True  # else delayed ACKs add ~40 ms to each kept-alive request

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.owner._answer(self, raw)  # type: ignore[attr-defined]

    def send(self, status: int, content: Any, headers: dict[str, str]) -> None:
        is_text = isinstance(content, str)
        data = (content if is_text else json.dumps(content)).encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain" if is_text else "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _chat(
    *,
    content: str | None,
    tool_calls: list[dict] | None = None,
    usage: dict | None = None,
    model: str | None = None,
    finish_reason: str = "stop",
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
        "usage": usage,
    }


def _embeddings(request: dict[str, Any]) -> dict[str, Any]:
    texts = request["input"] if isinstance(request["input"], list) else [request["input"]]
    size = request.get("dimensions") or 4
    rows = [
        {
            "object": "embedding",
            "index": i,
            "embedding": ([float(len(text)), float(i), 1.0] + [0.0] * size)[:size],
        }
        for i, text in enumerate(texts)
    ]
    tokens = sum(len(text.split()) for text in texts)
    return {
        "object": "list",
        "data": rows[::-1],
        "model": request["model"],
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
