"""A stand-in for Anthropic's Messages API on 127.0.0.1, for driving the real
Claude Code CLI (``ANTHROPIC_BASE_URL``) in tests.

It is a real HTTP server (the standard library's, one thread per request) that
speaks ``POST /v1/messages`` as Claude Code calls it, streamed as Server-Sent
Events (``message_start``, ``content_block_*``, ``message_delta``,
``message_stop``) or as one JSON body, and ``POST /v1/messages/count_tokens``.
Every ``/v1/messages`` request is recorded. What the model answers comes from
a script: a function that sees the request and returns content blocks (text
or ``tool_use``); by default it answers "ok".

Tests import it as ``from tests.tools.fake_anthropic import ...``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

#: ``script(request body) -> content blocks`` of the assistant's answer.
Script = Callable[[dict[str, Any]], list[dict[str, Any]]]


def text(value: str) -> dict[str, Any]:
    """A text content block."""
    return {"type": "text", "text": value}


def tool_use(name: str, arguments: dict[str, Any], call_id: str) -> dict[str, Any]:
    """A ``tool_use`` content block calling tool ``name``."""
    return {"type": "tool_use", "id": call_id, "name": name, "input": arguments}


def says_ok(_request: dict[str, Any]) -> list[dict[str, Any]]:
    return [text("ok")]


def flatten(value: Any) -> str:
    """All the text in a request (system prompt, messages, tool results) as one string."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "\n".join(flatten(v) for v in value)
    if isinstance(value, dict):
        return "\n".join(flatten(v) for k, v in value.items() if k not in {"tools"})
    return ""


@dataclass
class Recorded:
    """What the stand-in saw: each ``/v1/messages`` request body, in order."""

    requests: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    arrived: threading.Condition = field(init=False)

    def __post_init__(self) -> None:
        self.arrived = threading.Condition(self.lock)

    def add(self, body: dict[str, Any]) -> None:
        with self.arrived:
            self.requests.append(body)
            self.arrived.notify_all()

    def all(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.requests)

    def conversation(self) -> list[dict[str, Any]]:
        """The requests of the main conversation (those that offer tools),
        not Claude Code's side calls (titles, topic checks)."""
        return [r for r in self.all() if r.get("tools")]


class FakeAnthropic:
    """The server: ``url`` for ``ANTHROPIC_BASE_URL``, ``recorded`` for checks.

    ``script`` decides each answer; it runs in the request's thread.
    """

    def __init__(self, script: Script = says_ok) -> None:
        self.script = script
        self.recorded = Recorded()
        self._count = 0
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass  # quiet: the test reads the recorded requests instead

            def do_POST(self) -> None:  # noqa: N802 (the standard library's name)
                size = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(size) if size else b"{}"
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = {}
                path = self.path.split("?", 1)[0]
                if path.endswith("/v1/messages/count_tokens"):
                    self._json(200, {"input_tokens": 100})
                elif path.endswith("/v1/messages"):
                    owner.recorded.add(body)
                    blocks = owner.script(body)
                    if body.get("stream"):
                        self._stream(owner.message_id(), body, blocks)
                    else:
                        self._json(200, owner.message(owner.message_id(), body, blocks))
                else:
                    self._json(404, {"type": "error", "error": {"type": "not_found_error"}})

            def do_GET(self) -> None:  # noqa: N802
                self._json(404, {"type": "error", "error": {"type": "not_found_error"}})

            do_HEAD = do_GET  # noqa: N815

            def _json(self, status: int, doc: dict[str, Any]) -> None:
                data = json.dumps(doc).encode("utf-8")
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            def _stream(self, msg_id: str, body: dict[str, Any], blocks: list[Any]) -> None:
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("cache-control", "no-cache")
                self.send_header("connection", "close")
                self.end_headers()
                for event, data in owner.events(msg_id, body, blocks):
                    chunk = f"event: {event}\ndata: {json.dumps(data)}\n\n"
                    self.wfile.write(chunk.encode("utf-8"))
                    self.wfile.flush()
                self.close_connection = True

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        host, port = self._server.server_address[:2]
        self.url = f"http://{host!s}:{port}"

    def message_id(self) -> str:
        with self._lock:
            self._count += 1
            return f"msg_{self._count:04d}"

    @staticmethod
    def stop_reason(blocks: list[dict[str, Any]]) -> str:
        return "tool_use" if any(b["type"] == "tool_use" for b in blocks) else "end_turn"

    def message(
        self, msg_id: str, body: dict[str, Any], blocks: list[dict[str, Any]]
    ) -> dict[str, Any]:
        """A whole (non-streamed) Messages API response."""
        return {
            "id": msg_id,
            "type": "message",
            "role": "assistant",
            "model": body.get("model", "claude-test"),
            "content": blocks,
            "stop_reason": self.stop_reason(blocks),
            "stop_sequence": None,
            "usage": {"input_tokens": 100, "output_tokens": 10},
        }

    def events(
        self, msg_id: str, body: dict[str, Any], blocks: list[dict[str, Any]]
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """The SSE events of a streamed response, in the API's order."""
        head = self.message(msg_id, body, [])
        head.update(stop_reason=None, usage={"input_tokens": 100, "output_tokens": 1})
        yield "message_start", {"type": "message_start", "message": head}
        for index, block in enumerate(blocks):
            start: dict[str, Any]
            if block["type"] == "text":
                start = {"type": "text", "text": ""}
                delta = {"type": "text_delta", "text": block["text"]}
            else:
                start = {**block, "input": {}}
                delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
            yield (
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": start,
                },
            )
            yield (
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": index,
                    "delta": delta,
                },
            )
            yield "content_block_stop", {"type": "content_block_stop", "index": index}
        yield (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": self.stop_reason(blocks), "stop_sequence": None},
                "usage": {"output_tokens": 10},
            },
        )
        yield "message_stop", {"type": "message_stop"}

    @contextmanager
    def running(self) -> Iterator[FakeAnthropic]:
        """Serve in a thread for the duration of the block."""
        thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._server.shutdown()
            self._server.server_close()
            thread.join()
