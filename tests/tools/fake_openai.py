"""A stand-in for OpenAI's Responses API on 127.0.0.1, for driving the real
Codex CLI in tests (a ``[model_providers.NAME]`` table with ``base_url`` and
``wire_api = "responses"`` points Codex at it).

A real HTTP server (the standard library's, one thread per request) that
answers ``POST /v1/responses`` as Server-Sent Events (``response.created``,
``response.output_item.done`` per output item, ``response.completed``) and
``GET /v1/models`` with an empty list. Every ``/v1/responses`` request is
recorded. What the model answers comes from a script: a function that sees
the request and returns output items (an assistant message, or a
``function_call``); by default it answers "ok".

Tests import it as ``from tests.tools.fake_openai import ...``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.tools.fake_anthropic import Recorded

#: ``script(request body) -> output items`` of the model's answer.
Script = Callable[[dict[str, Any]], list[dict[str, Any]]]


def message(value: str) -> dict[str, Any]:
    """An assistant message output item."""
    return {
        "type": "message",
        "role": "assistant",
        "content": [{"type": "output_text", "text": value, "annotations": []}],
    }


def function_call(name: str, arguments: dict[str, Any], call_id: str) -> dict[str, Any]:
    """A ``function_call`` output item calling tool ``name``."""
    return {
        "type": "function_call",
        "name": name,
        "arguments": json.dumps(arguments),
        "call_id": call_id,
    }


def says_ok(_request: dict[str, Any]) -> list[dict[str, Any]]:
    return [message("ok")]


def tool_names(request: dict[str, Any]) -> list[str]:
    """The names of the tools a request offers (functions, and MCP tools
    inside namespaces)."""
    names: list[str] = []
    for tool in request.get("tools") or []:
        if isinstance(tool, dict):
            if isinstance(tool.get("name"), str):
                names.append(tool["name"])
            for inner in tool.get("tools") or []:
                if isinstance(inner, dict) and isinstance(inner.get("name"), str):
                    names.append(f"{tool.get('name', '')}{inner['name']}")
    return names


class FakeOpenAI:
    """The server: ``url`` (ending in ``/v1``) for a model provider's ``base_url``,
    ``recorded`` for checks. ``script`` decides each answer, in the request's thread."""

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
                if self.path.split("?", 1)[0].endswith("/responses"):
                    owner.recorded.add(body)
                    self._stream(owner.response_id(), body, owner.script(body))
                else:
                    self._json(404, {"error": {"message": "not found", "type": "not_found"}})

            def do_GET(self) -> None:  # noqa: N802
                if self.path.split("?", 1)[0].endswith("/models"):
                    self._json(200, {"object": "list", "data": [], "models": []})
                else:
                    self._json(404, {"error": {"message": "not found", "type": "not_found"}})

            def _json(self, status: int, doc: dict[str, Any]) -> None:
                data = json.dumps(doc).encode("utf-8")
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _stream(self, resp_id: str, body: dict[str, Any], items: list[Any]) -> None:
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("cache-control", "no-cache")
                self.send_header("connection", "close")
                self.end_headers()
                for event, data in owner.events(resp_id, body, items):
                    chunk = f"event: {event}\ndata: {json.dumps(data)}\n\n"
                    self.wfile.write(chunk.encode("utf-8"))
                    self.wfile.flush()
                self.close_connection = True

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        host, port = self._server.server_address[:2]
        self.url = f"http://{host!s}:{port}/v1"

    def response_id(self) -> str:
        with self._lock:
            self._count += 1
            return f"resp_{self._count:04d}"

    def events(
        self, resp_id: str, body: dict[str, Any], items: list[dict[str, Any]]
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """The SSE events of one streamed response, in the API's order."""
        head = {"id": resp_id, "object": "response", "model": body.get("model", "test")}
        yield "response.created", {"type": "response.created", "response": head}
        for index, item in enumerate(items):
            done = {**item, "id": f"{resp_id}_item{index}", "status": "completed"}
            yield (
                "response.output_item.done",
                {"type": "response.output_item.done", "output_index": index, "item": done},
            )
        usage = {
            "input_tokens": 100,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": 10,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 110,
        }
        completed = {**head, "status": "completed", "usage": usage}
        yield "response.completed", {"type": "response.completed", "response": completed}

    @contextmanager
    def running(self) -> Iterator[FakeOpenAI]:
        """Serve in a thread for the duration of the block."""
        thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._server.shutdown()
            self._server.server_close()
            thread.join()
