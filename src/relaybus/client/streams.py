"""Following a relay server's live stream (``GET /v1/stream``, Server-Sent Events).

:func:`follow` (sync) and :func:`afollow` (asyncio) yield the events the caller may
see, for ever: after any disconnect (a server restart, a network cut, a stream
silent for :data:`STREAM_IDLE_TIMEOUT` seconds) they reconnect with exponential
backoff and jitter, resuming with ``Last-Event-ID`` from the last event they
yielded, so every event comes exactly once. A refusal that reconnecting cannot
change (401, 403, 404…) is raised.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import AsyncGenerator, Generator, Sequence
from typing import TYPE_CHECKING, Any

import httpx
from httpx_sse import EventSource, SSEError

from ..errors import InvalidInput, RateLimited, RelayError
from ..models import Event
from .request import CONNECT_TIMEOUT
from .transport import BACKOFF_CAP, BACKOFF_FIRST, delivered_to, matches, problem_error

if TYPE_CHECKING:
    from .transport import HTTPSession, StreamQuery

__all__ = [
    "BACKOFF_CAP",
    "Backoff",
    "StreamCursor",
    "afollow",
    "delivered_to",
    "follow",
    "matches",
]

logger = logging.getLogger("relaybus.client")

#: Seconds a stream may stay silent (the server pings every 15 s by default)
#: before the client drops it and reconnects.
STREAM_IDLE_TIMEOUT = 60.0
#: ``Accept`` and caching headers of an event stream request.
SSE_HEADERS = {"Accept": "text/event-stream", "Cache-Control": "no-store"}
STREAM_PATH = "/v1/stream"


class Backoff:
    """Reconnect delays: exponential from ``first`` up to ``cap`` seconds, with jitter
    (each delay is uniform in [d/2, d], AWS's "equal jitter"), so many clients cut
    off together do not all come back at the same instant."""

    def __init__(self, first: float = BACKOFF_FIRST, cap: float = BACKOFF_CAP) -> None:
        self.first = first
        self.cap = cap
        self.attempt = 0

    def next(self) -> float:
        """The next delay (seconds)."""
        ceiling = min(self.cap, self.first * 2.0**self.attempt)
        self.attempt += 1
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def reset(self) -> None:
        """After a success: the next failure starts again at ``first``."""
        self.attempt = 0


class StreamCursor:
    """The position of a live stream: what the next reconnect resumes from.

    Turns Server-Sent Events (``event``, ``data``) into
    :class:`~relaybus.models.Event` values, each exactly once: an event at or
    below the cursor (a replay after a reconnect) is dropped.

    Attributes:
        cursor: the last event id seen, or ``None`` before the stream's first
            ``ready`` frame when it started at "now".
    """

    def __init__(self, since: int | None, kinds: Sequence[str] | None = None) -> None:
        self.cursor = since
        self.kinds = tuple(kinds or ())

    def headers(self) -> dict[str, str]:
        """``Last-Event-ID`` to resume from, once there is a cursor."""
        return {} if self.cursor is None else {"Last-Event-ID": str(self.cursor)}

    def accept(self, kind: str, data: str) -> Event | None:
        """The event of one SSE frame if it is new (and of a wanted kind), else ``None``."""
        if kind == "ready":
            if self.cursor is None:
                self.cursor = int(json.loads(data)["last_event_id"])
            return None
        if not data:
            return None
        event = Event.model_validate_json(data)
        if self.cursor is not None and event.id <= self.cursor:
            return None
        self.cursor = event.id
        if self.kinds and not matches(event.kind, self.kinds):
            return None
        return event


class _Follower:
    """What both loops share: the request, the cursor, and what to do after a failure."""

    def __init__(self, session: HTTPSession, query: StreamQuery) -> None:
        self.session = session
        self.agent = query.agent
        self.workspace = query.workspace
        self.position = StreamCursor(query.since, query.kinds)
        self.backoff = Backoff(cap=query.max_backoff)
        self.give_up_after = query.give_up_after
        self.down_since: float | None = None
        # The current connection: when its ready frame came, and the cursor then.
        self.connected_at: float | None = None
        self.cursor_at_connect: int | None = None

    def request(self) -> dict[str, Any]:
        """Keyword arguments of ``client.stream``."""
        return {
            "method": "GET",
            "url": STREAM_PATH,
            "params": None if self.agent is None else {"agent": self.agent},
            "headers": {
                **self.session.headers(self.workspace, self.agent),
                **self.position.headers(),
                **SSE_HEADERS,
            },
            "timeout": httpx.Timeout(STREAM_IDLE_TIMEOUT, connect=CONNECT_TIMEOUT),
        }

    def accept(self, kind: str, data: str) -> Event | None:
        event = self.position.accept(kind, data)
        if kind == "ready":
            self.connected_at = time.monotonic()
            self.cursor_at_connect = self.position.cursor
        return event

    def refused(self, response: httpx.Response) -> RelayError:
        """The error of a refused stream, if reconnecting may help (429, 5xx, or a
        revoked agent token the next attempt leaves out).

        Raises:
            RelayError: a refusal that reconnecting will not change.
        """
        error = problem_error(response, self.session.url)
        if isinstance(error, RateLimited) or error.status >= 500:
            return error
        if self.session.revoked(response, self.workspace, self.agent):
            return error  # the next attempt goes without the revoked token
        raise error

    def ended(self) -> RelayError:
        return self.session.unreachable(EOFError("the stream ended"))

    def lost(self, exc: Exception) -> RelayError:
        return self.session.unreachable(exc)

    def not_a_stream(self) -> InvalidInput:
        return InvalidInput(
            f"{self.session.url} is not a relay server: "
            f"{STREAM_PATH} did not answer with an event stream"
        )

    def pause(self, failure: RelayError) -> float:
        """Seconds to wait before reconnecting after ``failure``.

        Raises:
            RelayError: ``failure``, once the server has been unreachable for
                longer than ``give_up_after``.
        """
        now = time.monotonic()
        if self.connected_at is not None:
            # The last connection got through. It counts as a success (the backoff
            # starts afresh) if it carried events or lasted: a server that accepts
            # and at once drops streams (e.g. shutting down) is not hammered.
            lasted = now - self.connected_at >= self.backoff.cap
            if lasted or self.position.cursor != self.cursor_at_connect:
                self.backoff.reset()
            self.down_since = None
            self.connected_at = None
        if self.down_since is None:
            self.down_since = now
        if self.give_up_after is not None and now - self.down_since > self.give_up_after:
            raise failure
        delay = self.backoff.next()
        if isinstance(failure, RateLimited):
            delay = max(delay, failure.retry_after)
        logger.info("event stream: %s; reconnecting in %.1f s", failure.message, delay)
        return delay


def follow(
    client: httpx.Client, session: HTTPSession, query: StreamQuery
) -> Generator[Event, None, None]:
    """The live events the caller may see, for ever (see the module docstring):
    those of ``query`` (its workspace, as its agent, after its ``since``, of its kinds).

    Raises:
        RelayError: the server refused the stream (401, 403, 404…).
        StoreError: unreachable for longer than ``query.give_up_after``.
        InvalidInput: the URL does not answer with an event stream.
    """
    state = _Follower(session, query)
    while True:
        failure: RelayError
        try:
            with client.stream(**state.request()) as response:
                if response.status_code >= 400:
                    response.read()
                    failure = state.refused(response)
                else:
                    for sse in EventSource(response).iter_sse():
                        event = state.accept(sse.event, sse.data)
                        if event is not None:
                            yield event
                    failure = state.ended()
        except SSEError:
            raise state.not_a_stream() from None
        except httpx.TransportError as exc:
            failure = state.lost(exc)
        time.sleep(state.pause(failure))


async def afollow(
    client: httpx.AsyncClient, session: HTTPSession, query: StreamQuery
) -> AsyncGenerator[Event, None]:
    """:func:`follow` for asyncio (same arguments and errors)."""
    state = _Follower(session, query)
    while True:
        failure: RelayError
        try:
            async with client.stream(**state.request()) as response:
                if response.status_code >= 400:
                    await response.aread()
                    failure = state.refused(response)
                else:
                    frames = EventSource(response).aiter_sse()
                    try:
                        async for sse in frames:
                            event = state.accept(sse.event, sse.data)
                            if event is not None:
                                yield event
                    finally:
                        await frames.aclose()
                    failure = state.ended()
        except SSEError:
            raise state.not_a_stream() from None
        except httpx.TransportError as exc:
            failure = state.lost(exc)
        await asyncio.sleep(state.pause(failure))
