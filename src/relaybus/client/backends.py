"""How an :class:`~relaybus.client.aio.AsyncRelay` runs its calls: over HTTP
(:class:`RemoteBackend`, one ``httpx.AsyncClient``) or on an embedded sync service
in worker threads (:class:`EmbeddedBackend`).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import httpx

from ..errors import InvalidInput
from ..models import Event
from ..settings import Settings
from . import calls
from .api import ServiceAPI
from .streams import afollow, matches
from .transport import LONGPOLL_CHUNK, Call, HTTPSession, new_client, retries

if TYPE_CHECKING:
    from .calls import Registration

T = TypeVar("T")

#: Longest single wait (seconds) of an embedded relay's worker thread: a cancelled
#: wait frees its thread within this.
EMBEDDED_WAIT_STEP = 1.0
#: Most events one read of the embedded log takes.
PAGE = 1000
#: Seconds :meth:`EmbeddedBackend.aclose` waits for calls still running in worker threads
#: (a cancelled wait ends within :data:`EMBEDDED_WAIT_STEP`) before it closes the store.
EMBEDDED_CLOSE_WAIT = EMBEDDED_WAIT_STEP + 10.0


class Backend(Protocol):
    """How an :class:`AsyncRelay` runs calls: over HTTP or on a local service."""

    #: The longest single wait (seconds); longer waits take several.
    wait_step: float

    @property
    def settings(self) -> Settings: ...

    async def run(self, call: Call[T]) -> T:
        """The result of ``call``. Raises the RelayError of the refusal."""
        ...

    def remember(self, registration: Registration) -> None:
        """Keep the token a registration returned (if any)."""
        ...

    def token_for(self, agent_id: str, *, workspace: str) -> str | None: ...

    def stream(
        self,
        *,
        since: int | None,
        agent: str | None,
        kinds: Sequence[str] | None,
        workspace: str,
        max_backoff: float,
    ) -> AsyncGenerator[Event, None]:
        """Live events, each once, for ever (see :meth:`AsyncRelay.stream`)."""
        ...

    async def aclose(self) -> None: ...


class RemoteBackend:
    """Calls to a relay server over one keep-alive ``httpx.AsyncClient``."""

    wait_step = LONGPOLL_CHUNK

    def __init__(self, settings: Settings, *, client: httpx.AsyncClient | None = None) -> None:
        """Raises InvalidInput: ``settings.url`` is missing or not an http(s) URL."""
        self.session = HTTPSession(settings)
        self.client: httpx.AsyncClient = client or new_client(self.session.url, asynchronous=True)

    @property
    def settings(self) -> Settings:
        return self.session.settings

    async def run(self, call: Call[T]) -> T:
        """Send ``call`` (once more, a GET or a keyed send, if its connection broke).

        Raises:
            RelayError: the refusal. StoreError: no answer from the server.
        """
        response = await self._send(call)
        if self.session.revoked(response, call.workspace, call.agent):
            response = await self._send(call)
        return self.session.result(call, response)

    async def _send(self, call: Call[Any]) -> httpx.Response:
        request = self.session.request(call)
        attempts = retries(call)
        for attempt in range(1, attempts + 1):
            try:
                return await self.client.request(**request)
            except httpx.TimeoutException as exc:
                raise self.session.unreachable(exc, call) from None
            except httpx.TransportError as exc:
                if attempt == attempts:
                    raise self.session.unreachable(exc, call) from None
        raise AssertionError("unreachable")  # the loop returns or raises

    def remember(self, registration: Registration) -> None:
        self.session.remember(registration)

    def token_for(self, agent_id: str, *, workspace: str) -> str | None:
        return self.session.token_for(agent_id, workspace=workspace)

    def stream(
        self,
        *,
        since: int | None,
        agent: str | None,
        kinds: Sequence[str] | None,
        workspace: str,
        max_backoff: float,
    ) -> AsyncGenerator[Event, None]:
        """``GET /v1/stream`` as async events, reconnecting with backoff and
        ``Last-Event-ID`` (see :func:`~relaybus.client.streams.follow`)."""
        return afollow(
            self.client,
            self.session,
            since=since,
            agent=agent,
            kinds=kinds,
            workspace=workspace,
            max_backoff=max_backoff,
        )

    async def aclose(self) -> None:
        await self.client.aclose()


class EmbeddedBackend:
    """Calls to a sync service (the embedded store) in worker threads."""

    wait_step = EMBEDDED_WAIT_STEP

    def __init__(self, service: ServiceAPI) -> None:
        self.service = service
        self._running = 0  # calls in worker threads, cancelled ones included
        self._idle = threading.Condition()

    @property
    def settings(self) -> Settings:
        return self.service.settings

    async def run(self, call: Call[T]) -> T:
        return await asyncio.to_thread(self._call, call)

    def _call(self, call: Call[T]) -> T:
        with self._idle:
            self._running += 1
        try:
            return call.local(self.service)
        finally:
            with self._idle:
                self._running -= 1
                self._idle.notify_all()

    def remember(self, registration: Registration) -> None:
        return None

    def token_for(self, agent_id: str, *, workspace: str) -> str | None:
        return None

    async def stream(
        self,
        *,
        since: int | None,
        agent: str | None,
        kinds: Sequence[str] | None,
        workspace: str,
        max_backoff: float,
    ) -> AsyncGenerator[Event, None]:
        """The event log from ``since`` (default: now), followed in steps."""
        if agent is not None:
            raise InvalidInput(
                "watching as one agent needs a relay server (RELAYBUS_URL); "
                "leave out the agent to see every event"
            )
        if since is None:
            since = await self.run(calls.last_event_id(workspace=workspace))
        cursor = since
        while True:
            found = await self.run(
                calls.wait_events(self.wait_step, workspace=workspace, since=cursor, limit=PAGE)
            )
            for event in found:
                cursor = event.id
                if not kinds or matches(event.kind, kinds):
                    yield event

    async def aclose(self) -> None:
        await asyncio.to_thread(self._close)

    def _close(self) -> None:
        # A cancelled call goes on in its thread (a wait until its step ends, then one
        # last read): closing the store under it would let that read open a connection
        # that nothing closes. So let running calls finish first (bounded).
        with self._idle:
            self._idle.wait_for(lambda: self._running == 0, EMBEDDED_CLOSE_WAIT)
        closer: Callable[[], None] | None = getattr(self.service, "close", None)
        (closer or self.service.store.close)()
