#!/usr/bin/env python3
"""A relaybus callback receiver: verifies each callback's signature, prints the event,
answers 204 (400 when the signature is wrong or stale).

Standard library only, and no relaybus import: copy it and change :func:`handle`.

    RELAYBUS_CALLBACK_SECRET=whsec_... python3 callback_receiver.py --port 8787

The signing scheme (docs/integrations.md, "Verifying a callback"): the header
``X-Relaybus-Signature: t=<unix seconds>,v1=<hex>`` where ``v1`` is
HMAC-SHA256 with the whole secret (``whsec_...``, UTF-8) as key over
``f"{t}.".encode() + raw_body``, Stripe's scheme. A callback is accepted when one
``v1`` matches (compared in constant time) and ``t`` is within ``--tolerance``
seconds of now. Delivery is at least once: a callback seen before (the same
``X-Relaybus-Delivery``) is answered 204 again and not handled twice.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import sys
import threading
import time
from collections import OrderedDict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

#: Largest body accepted (bytes); a callback is one task, a few KiB.
MAX_BODY = 1 << 20
#: Delivery ids remembered for deduplication (the oldest are forgotten first).
REMEMBERED = 10_000


class InvalidSignature(Exception):
    """The signature header is missing, malformed, stale, or matches no ``v1``."""


def verify(secret: str, header: str | None, body: bytes, tolerance: float = 300.0) -> None:
    """Check ``header`` (``t=...,v1=...``) against ``body`` signed with ``secret``.

    Raises:
        InvalidSignature: why the callback is refused.
    """
    if not header:
        raise InvalidSignature("no X-Relaybus-Signature header")
    timestamp, signatures = None, []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            timestamp = value
        elif key == "v1":
            signatures.append(value)
    if timestamp is None or not timestamp.isdigit() or not signatures:
        raise InvalidSignature("malformed X-Relaybus-Signature header")
    if abs(time.time() - int(timestamp)) > tolerance:
        raise InvalidSignature("timestamp outside the tolerance")
    signed = timestamp.encode() + b"." + body
    expected = hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()
    if not any(hmac.compare_digest(expected, candidate) for candidate in signatures):
        raise InvalidSignature("signature mismatch")


def handle(delivery: str, event: dict[str, Any]) -> None:
    """Act on one verified callback: here, print one line."""
    task = event.get("task") or {}
    holder = f" assignee={task['assignee']}" if task.get("assignee") else ""
    print(
        f"delivery {delivery} {event.get('event')} task {task.get('id')} "
        f"status={task.get('status')}{holder} occurrences={task.get('occurrence_count')} "
        f"{task.get('title')!r}",
        flush=True,
    )


class Receiver(ThreadingHTTPServer):
    """The HTTP server, with the secret and the delivery ids seen so far."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], secret: str, tolerance: float) -> None:
        super().__init__(address, CallbackHandler)
        self.secret = secret
        self.tolerance = tolerance
        self.seen: OrderedDict[str, None] = OrderedDict()
        self.lock = threading.Lock()

    def first_time(self, delivery: str) -> bool:
        """Whether ``delivery`` is new (and remember it)."""
        with self.lock:
            if delivery in self.seen:
                return False
            self.seen[delivery] = None
            if len(self.seen) > REMEMBERED:
                self.seen.popitem(last=False)
            return True


class CallbackHandler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        length = self.headers.get("Content-Length", "")
        if not length.isdigit() or int(length) > MAX_BODY:
            self.answer(413 if length.isdigit() else 411, "a body of known length is needed")
            return
        body = self.rfile.read(int(length))
        try:
            verify(
                self.server.secret,
                self.headers.get("X-Relaybus-Signature"),
                body,
                self.server.tolerance,
            )
            event = json.loads(body)
        except InvalidSignature as exc:
            self.answer(400, f"bad signature: {exc}")
            return
        except ValueError:
            self.answer(400, "the body is not JSON")
            return
        delivery = self.headers.get("X-Relaybus-Delivery") or str(event.get("id", ""))
        if self.server.first_time(delivery):
            handle(delivery, event)
        self.answer(204)

    def answer(self, status: int, reason: str = "") -> None:
        data = reason.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        if data:
            self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.end_headers()
        self.wfile.write(data)
        if reason:
            print(f"refused: {reason}", file=sys.stderr, flush=True)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per callback is printed by handle()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8787, help="0 picks a free port")
    parser.add_argument("--tolerance", type=float, default=300.0, help="seconds (default 300)")
    args = parser.parse_args()
    secret = os.environ.get("RELAYBUS_CALLBACK_SECRET")
    if not secret:
        parser.error("set RELAYBUS_CALLBACK_SECRET to the integration's secret (whsec_...)")
    server = Receiver((args.host, args.port), secret, args.tolerance)
    host, port = args.host, server.server_port
    print(f"listening on http://{host}:{port}/", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
