"""How a relay runs its calls: over HTTP (:class:`AsyncRemoteBackend`, one keep-alive
``httpx.AsyncClient``) or on an embedded :class:`~relaybus.service.Service`
(:class:`AsyncEmbeddedBackend`, each call ``call.local(service)``).

Every operation is a :class:`~relaybus.client.transport.Call`; a backend runs it and
returns its result or raises the :class:`~relaybus.errors.RelayError` of the refusal,
the same one in both modes. httpx and the service layer load on first use: a remote
relay never imports the service, an embedded one never imports httpx.
"""

# scripts/unasync.py writes the sync twin of this module: edit here, then run it.

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from ..errors import InvalidInput
from ..models import Event
from ..settings import Settings
from . import calls
from .request import LONGPOLL_CHUNK
from .runners import AsyncCallRunner
from .transport import (
    NEEDS_DATABASE,
    AsyncRetryPause,
    Call,
    HTTPSession,
    StreamQuery,
    matches,
    retries,
)

if TYPE_CHECKING:
    import httpx

    from ..service import Service
    from .calls import Registration

T = TypeVar("T")

#: Most events one read of the embedded log takes.
PAGE = 1000


class AsyncBackend(Protocol):
    """How a relay runs calls: over HTTP or on an embedded service."""

    #: The longest single wait (seconds); a longer wait is chained from several.
    wait_step: float

    @property
    def settings(self) -> Settings: ...

    @property
    def url(self) -> str | None:
        """The server's base URL; ``None`` embedded."""
        ...

    @property
    def service(self) -> Service:
        """The embedded service. Raises InvalidInput over HTTP (no database here)."""
        ...

    async def run(self, call: Call[T]) -> T:
        """The result of ``call``. Raises the RelayError of the refusal."""
        ...

    def remember(self, registration: Registration) -> None:
        """Keep the token a registration returned (if any)."""
        ...

    def token_for(self, agent_id: str, *, workspace: str) -> str | None:
        """The token the server issued to ``agent_id`` through this backend, if any."""
        ...

    def stream(self, query: StreamQuery) -> AsyncGenerator[Event, None]:
        """Live events, each once, for ever (see ``AsyncRelay.stream``)."""
        ...

    async def aclose(self) -> None:
        """Close the connections or the database."""
        ...


class AsyncRemoteBackend:
    """Calls to a relay server at ``settings.url`` over one keep-alive
    ``httpx.AsyncClient``.

    Errors are those of the embedded mode: a problem+json answer becomes the
    :class:`~relaybus.errors.RelayError` subclass of its status with its ``detail``
    as the message (see :func:`~relaybus.client.transport.problem_error`); no answer
    at all is a :class:`~relaybus.errors.StoreError` "cannot reach relay server at
    URL: ...".

    Auth: ``settings.token`` (``RELAYBUS_TOKEN``) is the bearer when set. Without
    it, a call acting as an agent this backend registered sends that agent's own
    token (see :attr:`tokens`); anything else goes without a token (a loopback
    server in open mode).
    """

    wait_step = LONGPOLL_CHUNK

    def __init__(self, settings: Settings, *, client: httpx.AsyncClient | None = None) -> None:
        """Raises InvalidInput: ``settings.url`` is missing or not an http(s) URL."""
        from .transport import new_async_client

        self.session = HTTPSession(settings)
        self.client: httpx.AsyncClient = client or new_async_client(self.session.url)

    @property
    def settings(self) -> Settings:
        return self.session.settings

    @property
    def url(self) -> str:
        """The server's base URL (no trailing slash)."""
        return self.session.url

    @property
    def service(self) -> Service:
        """There is no database here. Raises InvalidInput."""
        raise InvalidInput(NEEDS_DATABASE)

    @property
    def tokens(self) -> dict[str, str]:
        """Agent id → the bearer token the server issued when this backend registered
        it (print it for a client that is to act as that agent)."""
        return self.session.tokens

    async def run(self, call: Call[T]) -> T:
        """Send one call and return its result.

        A GET, or a call with an idempotency key (every send), whose connection
        breaks before the answer (a keep-alive connection the server closed, a
        replica that died) is sent again with the same key, up to three times in
        all, a moment apart (see :func:`~relaybus.client.transport.retries`); other
        requests are not repeated (they must not happen twice). A 401 for a token this
        backend holds drops the token and sends the call once more without it.

        Raises:
            RelayError: the server refused (the subclass of the status).
            StoreError: no answer from the server.
        """
        response = await self._send(call)
        if self.session.revoked(response, call.request.workspace, call.request.agent):
            response = await self._send(call)
        return self.session.result(call, response)

    async def _send(self, call: Call[Any]) -> httpx.Response:
        import httpx

        request = self.session.request(call)
        attempts = retries(call)
        for attempt in range(1, attempts + 1):
            if attempt > 1:
                await AsyncRetryPause.before(attempt)
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

    def stream(self, query: StreamQuery) -> AsyncGenerator[Event, None]:
        """``GET /v1/stream``, reconnecting with backoff and ``Last-Event-ID`` (see
        :func:`~relaybus.client.streams.follow`)."""
        from .streams import afollow

        return afollow(self.client, self.session, query)

    async def aclose(self) -> None:
        await self.client.aclose()


class AsyncEmbeddedBackend:
    """Calls to an embedded :class:`~relaybus.service.Service`: ``call.local(service)``,
    run by an :class:`~relaybus.client.runners.AsyncCallRunner`. Closing the backend
    closes the service's store."""

    def __init__(self, service: Service) -> None:
        self._service = service
        self._runner = AsyncCallRunner()
        self.wait_step = self._runner.wait_step

    @property
    def settings(self) -> Settings:
        return self._service.settings

    @property
    def url(self) -> None:
        """No server: ``None``."""
        return None

    @property
    def service(self) -> Service:
        """The embedded service."""
        return self._service

    async def run(self, call: Call[T]) -> T:
        service = self._service
        return await self._runner.run(lambda: call.local(service))

    def remember(self, registration: Registration) -> None:
        return None

    def token_for(self, agent_id: str, *, workspace: str) -> str | None:
        return None

    def stream(self, query: StreamQuery) -> AsyncGenerator[Event, None]:
        """The event log from ``since`` (default: now), followed in waits of at most
        :attr:`wait_step` (and :data:`~relaybus.client.transport.LONGPOLL_CHUNK`) s.

        Raises:
            InvalidInput: ``agent`` (watching as one agent needs a server).
        """
        if query.agent is not None:
            raise InvalidInput(
                "watching as one agent needs a relay server (RELAYBUS_URL); "
                "leave out the agent to see every event"
            )
        return self._follow(query)

    async def _follow(self, query: StreamQuery) -> AsyncGenerator[Event, None]:
        workspace, kinds = query.workspace, query.kinds
        cursor = query.since
        if cursor is None:
            cursor = await self.run(calls.last_event_id(workspace=workspace))
        step = min(self.wait_step, LONGPOLL_CHUNK)
        while True:
            found = await self.run(
                calls.wait_events(step, workspace=workspace, since=cursor, limit=PAGE)
            )
            for event in found:
                cursor = event.id
                if not kinds or matches(event.kind, kinds):
                    yield event

    async def aclose(self) -> None:
        await self._runner.finish(self._service.close)
