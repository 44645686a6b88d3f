"""Limits: the request body size (413 before parsing) and per-token rate limits (429)."""

from __future__ import annotations

import time
from collections.abc import Callable

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import RateLimited
from .problems import problem


class HttpMiddleware:
    """ASGI middleware for HTTP requests: any other scope (lifespan, WebSocket) goes
    straight to ``app``; an HTTP request goes to :meth:`http`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.http(scope, receive, send)

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one HTTP request (``scope["type"] == "http"``)."""
        raise NotImplementedError


class BodyLimit(HttpMiddleware):
    """ASGI middleware refusing request bodies over ``limit`` bytes with 413.

    A declared ``Content-Length`` over the limit is refused before the app
    runs, without reading the body. A body without one (chunked) is counted as
    it arrives; the read that passes the limit raises a 413 ``HTTPException``
    inside the app, which the exception handlers render, and a response the
    app might still start is replaced by the 413. Either way the body is never
    parsed and nothing changes.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        super().__init__(app)
        self.limit = limit

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        declared, chunked = _body_headers(scope)
        if declared is not None:
            if declared < 0:
                response = problem(400, "the Content-Length header is not a byte count")
                await response(scope, receive, send)
            elif declared > self.limit:
                await self.too_large(declared)(scope, receive, send)
            else:
                # The server itself holds the client to a declared length.
                await self.app(scope, receive, send)
        elif chunked:
            await _Counted(self, scope, receive, send).run()
        else:
            await self.app(scope, receive, send)  # no body at all

    def too_large(self, size: int | None) -> ASGIApp:
        """The 413 problem response (``size``: the declared length, if known)."""
        which = f"{size} bytes" if size is not None else "over the limit"
        return problem(
            413,
            f"the request body is {which}; this server accepts at most {self.limit}",
            extra={"limit": self.limit},
        )

    def refusal(self) -> HTTPException:
        """What a read past the limit raises inside the app (rendered as a 413 problem)."""
        return HTTPException(
            413, f"the request body is over the limit; this server accepts at most {self.limit}"
        )


class _Counted:
    """One request with a body of unknown length: counts it as the app reads it."""

    __slots__ = ("limit", "scope", "receive", "send", "received", "over", "started")

    def __init__(self, limit: BodyLimit, scope: Scope, receive: Receive, send: Send) -> None:
        self.limit = limit
        self.scope = scope
        self.receive = receive
        self.send = send
        self.received = 0
        self.over = False
        self.started = False

    async def run(self) -> None:
        await self.limit.app(self.scope, self.counting_receive, self.guarded_send)

    async def counting_receive(self) -> Message:
        message = await self.receive()
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self.limit.limit:
                self.over = True
                raise self.limit.refusal()
        return message

    async def guarded_send(self, message: Message) -> None:
        if self.over and message["type"] == "http.response.start" and message["status"] != 413:
            # Whatever the app made of the refused read, the client gets the 413.
            self.started = True
            await self.limit.too_large(None)(self.scope, self.receive, self.send)
            return
        if self.started:
            return  # the rest of the replaced response
        await self.send(message)


def _body_headers(scope: Scope) -> tuple[int | None, bool]:
    """``(Content-Length or None (-1 if malformed), whether Transfer-Encoding is set)``."""
    length: int | None = None
    chunked = False
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                length = int(value)
            except ValueError:
                length = -1
        elif name == b"transfer-encoding":
            chunked = True
    return length, chunked


class RateLimiter:
    """Token buckets, one per key (a token's digest, or a client address).

    A bucket holds up to ``burst`` requests and refills at ``rate`` requests
    per second; a request takes one or is refused. Buckets that have refilled
    completely are forgotten when there are more than ``max_keys``, so unknown
    callers cannot grow memory without bound.

    Not thread-safe: call it from the event loop.
    """

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 10_000,
    ) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.clock = clock
        self.max_keys = max_keys
        # key -> [tokens left, when counted (clock seconds)]
        self._buckets: dict[str, list[float]] = {}

    def take(self, key: str) -> None:
        """Spend one request of ``key``'s bucket.

        Raises:
            RateLimited: the bucket is empty; ``retry_after`` is the seconds until
                it holds one request again.
        """
        now = self.clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.max_keys:
                self._forget_full(now)
            self._buckets[key] = [self.burst - 1.0, now]
            return
        tokens = min(self.burst, bucket[0] + (now - bucket[1]) * self.rate)
        bucket[1] = now
        if tokens >= 1.0:
            bucket[0] = tokens - 1.0
            return
        bucket[0] = tokens
        wait = (1.0 - tokens) / self.rate
        raise RateLimited(
            f"over the rate limit of {self.rate:g} requests per second; retry in {wait:.2f} s",
            retry_after=wait,
        )

    def _forget_full(self, now: float) -> None:
        full = [
            k
            for k, (tokens, at) in self._buckets.items()
            if tokens + (now - at) * self.rate >= self.burst
        ]
        for key in full:
            del self._buckets[key]
        if len(self._buckets) >= self.max_keys:
            # Every bucket is in use: forget the oldest half rather than grow.
            for key in list(self._buckets)[: self.max_keys // 2]:
                del self._buckets[key]
