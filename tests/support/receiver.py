"""A real callback receiver for the integration tests: a small Starlette app under
uvicorn on a free loopback port, in a thread.

It checks every ``X-Relaybus-Signature`` with its own HMAC code, written here from the
scheme the integrations contract fixes (``t=<unix seconds>,v1=<hex>``, ``v1`` =
HMAC-SHA256 keyed with the whole ``whsec_…`` secret over ``f"{t}."`` + the raw body),
not with relaybus's own ``verify``, so a relay signing with another scheme fails here.
It records each request (event, delivery id, parsed body, when it began and ended),
answers :attr:`CallbackReceiver.status` after :attr:`CallbackReceiver.delay` seconds,
and can be stopped and started again on the same port (a receiver that is down).

A request with a bad signature is recorded (``valid`` false) and answered 400, so the
relay retries it and the test sees it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.support.live import ThreadedServer, free_port

T = TypeVar("T")

#: Seconds to wait for the receiver to start or stop before calling it hung.
HUNG = 30.0
#: Seconds a signature's timestamp may differ from the receiver's clock (the contract's).
TOLERANCE = 300
#: The path callbacks are posted to.
PATH = "/hook"


@dataclass(frozen=True)
class Received:
    """One request the receiver answered."""

    delivery: int
    event: str
    body: dict[str, Any]
    #: Whether its signature verified with the receiver's secret.
    valid: bool
    #: The status the receiver answered.
    answered: int
    #: ``time.monotonic()`` when the request came in and when its answer was ready.
    started: float
    ended: float
    headers: dict[str, str]


def signature_valid(secret: str, header: str | None, raw: bytes, now: float) -> bool:
    """Whether ``header`` (``t=…,v1=…``; several ``v1`` allowed) signs ``raw`` with
    ``secret`` at a time within :data:`TOLERANCE` seconds of ``now``."""
    if not header:
        return False
    fields: dict[str, list[str]] = {}
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if sep:
            fields.setdefault(key, []).append(value)
    stamps, given = fields.get("t", []), fields.get("v1", [])
    if len(stamps) != 1 or not stamps[0].isdigit() or not given:
        return False
    if abs(now - int(stamps[0])) > TOLERANCE:
        return False
    mac = hmac.new(secret.encode("utf-8"), stamps[0].encode("ascii") + b"." + raw, hashlib.sha256)
    expected = mac.hexdigest()
    return any(hmac.compare_digest(expected, value) for value in given)


class CallbackReceiver:
    """The receiver: :attr:`url` to give an integration, :attr:`secret` to set from
    its creation's answer, :attr:`received` in arrival order of the answers."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}{PATH}"
        self.secret: str | None = None
        #: What to answer, and after how many seconds.
        self.status = 200
        self.delay = 0.0
        self.received: list[Received] = []
        #: Requests being answered now.
        self.in_flight = 0
        self._changed = threading.Condition()
        self._running: ThreadedServer | None = None
        self.app = Starlette(routes=[Route(PATH, self._hook, methods=["POST"])])

    async def _hook(self, request: Request) -> JSONResponse:
        started = time.monotonic()
        with self._changed:
            self.in_flight += 1
            self._changed.notify_all()
        try:
            raw = await request.body()
            secret = self.secret
            valid = secret is not None and signature_valid(
                secret, request.headers.get("x-relaybus-signature"), raw, time.time()
            )
            if self.delay > 0:
                await asyncio.sleep(self.delay)
            answered = self.status if valid else 400
            record = Received(
                delivery=int(request.headers.get("x-relaybus-delivery", "0")),
                event=request.headers.get("x-relaybus-event", ""),
                body=json.loads(raw),
                valid=valid,
                answered=answered,
                started=started,
                ended=time.monotonic(),
                headers=dict(request.headers),
            )
        finally:
            with self._changed:
                self.in_flight -= 1
                self._changed.notify_all()
        with self._changed:
            self.received.append(record)
            self._changed.notify_all()
        return JSONResponse({"ok": answered < 300}, status_code=answered)

    def wait_for(self, check: Callable[[CallbackReceiver], T], timeout: float = HUNG) -> T:
        """Wait until ``check(self)`` is true (checked at each request's start and end);
        returns its value.

        Raises:
            AssertionError: not within ``timeout`` seconds.
        """
        with self._changed:
            found = self._changed.wait_for(lambda: check(self), timeout)
            if not found:
                raise AssertionError(
                    f"the receiver did not see what the test waits for within {timeout} s; "
                    f"it got {[(r.delivery, r.event, r.answered) for r in self.received]}"
                )
            return found

    def delivered(self) -> list[Received]:
        """The requests answered 2xx (each a delivered callback), in answer order."""
        with self._changed:
            return [r for r in self.received if r.answered < 300]

    def start(self) -> None:
        """Listen on :attr:`port` (again); returns once it does."""
        self._running = ThreadedServer.start(
            self.app, self.port, "callback-receiver", lifespan="off"
        )

    def stop(self) -> None:
        """Stop listening (connections are refused until :meth:`start`)."""
        if self._running is not None:
            self._running.stop()
            self._running = None


@contextlib.contextmanager
def callback_receiver() -> Iterator[CallbackReceiver]:
    """A running :class:`CallbackReceiver`, stopped after the block."""
    receiver = CallbackReceiver()
    receiver.start()
    try:
        yield receiver
    finally:
        receiver.stop()
