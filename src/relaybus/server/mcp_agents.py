"""The agents of the MCP sessions on one relay server (:class:`HttpRuntime`, the
runtime of the ``/mcp`` mount): which agent a request acts as and its registration
(an agent token's agent, one registered from the ``X-Relaybus-*`` headers, or a
bridged coding-agent session's), its heartbeats while the session lives, the leases it
holds renewed while the session is open (:mod:`.leases`), its going offline when the
session ends, and the hook host of a bridged session.

The rules are set out in :mod:`relaybus.server.mcp` (which re-exports these names),
whose endpoint authenticates each request and tells the runtime when sessions
open, work and end.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import anyio
from anyio.abc import TaskGroup
from mcp.server.context import ServerRequestContext
from starlette.requests import Request
from starlette.types import Message as AsgiMessage
from starlette.types import Receive

from ..client import AgentHandle, Relay
from ..errors import InvalidInput, RelayError
from ..identity import SessionIdentity
from ..mcp.resources import AgentBus
from ..mcp.session import OFFLINE_SECONDS, REGISTER_AFTER, AgentSession, blocking
from ..mcp.streamable import SESSION_IDENTITY_HEADER, parse_session_header
from ..models import Message
from ..profiles import split_list
from .auth import Caller
from .leases import SessionLeases

if TYPE_CHECKING:
    from ..service import Service
    from .hub import Hub

logger = logging.getLogger("relaybus.mcp")

#: Where the caller (:class:`Caller`) of an MCP request is left in its ASGI scope.
CALLER_KEY = "relaybus.caller"
SESSION_HEADER = "mcp-session-id"
AGENT_HEADER = "X-Relaybus-Agent"
LABEL_HEADER = "X-Relaybus-Label"
TAGS_HEADER = "X-Relaybus-Tags"
CAPS_HEADER = "X-Relaybus-Caps"
CHANNELS_HEADER = "X-Relaybus-Channels"
#: The most unread messages one wait returns.
WAIT_LIMIT = 50


class HookHost(Protocol):
    """Serves a coding-agent session's hook commands on ``path`` while the context
    is open (:func:`relaybus.tools.hooks.host.session_host`); ``me()`` returns the
    session's agent, registering it on first use."""

    def __call__(
        self,
        me: Callable[[], Awaitable[AgentHandle]],
        identity: SessionIdentity,
        *,
        path: Path | None = None,
    ) -> AbstractAsyncContextManager[object]: ...


@dataclass
class Seat:
    """A handshake-era MCP session: who opened it, its agent once resolved,
    and its requests in flight (for the idle timeout)."""

    caller: Caller
    last_active: float
    agent: AgentSession | None = None
    in_flight: int = 0
    #: The coding-agent session of a ``relaybus mcp`` bridge, or None.
    identity: SessionIdentity | None = None
    #: Where that session's hook commands look for their host.
    hook_socket: Path | None = None
    #: Set when the session has ended (stops its hook host).
    ended: anyio.Event | None = None


class HttpRuntime:
    """The agents of the MCP sessions on one relay server (the :class:`Runtime`
    of the HTTP mount). Waits ride the server's hub, so a waiting client holds
    no thread.

    Args:
        idle_seconds: a session with no request in flight for this long has ended.
        heartbeat_seconds: how often live sessions' agents are marked seen.
    """

    def __init__(
        self, service: Service, hub: Hub, *, idle_seconds: float, heartbeat_seconds: float
    ) -> None:
        self.service = service
        self.hub = hub
        self.idle_seconds = idle_seconds
        self.heartbeat_seconds = heartbeat_seconds
        self.bus = AgentBus()
        self.seats: dict[str, Seat] = {}
        #: Serves the hook commands of bridged coding-agent sessions (the warm relay
        #: sets it: it runs where those sessions run); None serves none.
        self.session_host: HookHost | None = None
        #: Seconds after ``notifications/initialized`` a bridged session's agent is registered.
        self.register_after = REGISTER_AFTER
        #: Agents of sessionless requests, by (workspace, id), with their last heartbeat.
        self._stateless: dict[tuple[str, str], tuple[AgentSession, float]] = {}
        self._tasks: TaskGroup | None = None
        self._lock: anyio.Lock | None = None  # registrations
        self._presence: anyio.Lock | None = None  # heartbeats vs. offline
        self.closing = False
        self._receiving: set[anyio.CancelScope] = set()
        #: Renews the leases of the agents of open sessions (a request in flight).
        self.leases = SessionLeases(service, hub, self._open_agents)
        #: Requests in flight of sessions whose seat is not made yet (a bridge opens its
        #: GET stream as soon as the first response arrives, before that request ends).
        self._early: dict[str, int] = {}

    @asynccontextmanager
    async def lifespan(self, _server: object) -> AsyncIterator[HttpRuntime]:
        """Run the sweeper (heartbeats, idle sessions) for the duration of the
        block; on the way out every live session's agent goes offline."""
        async with anyio.create_task_group() as tg:
            self._tasks, self._lock, self._presence = tg, anyio.Lock(), anyio.Lock()
            tg.start_soon(self._sweep)
            tg.start_soon(self.leases.run)
            try:
                yield self
            finally:
                tg.cancel_scope.cancel()
                with anyio.move_on_after(OFFLINE_SECONDS, shield=True):
                    for session_id in list(self.seats):
                        await self.end(session_id)

    # -- which agent ------------------------------------------------------------

    async def agent(self, request: ServerRequestContext[Any, Any]) -> AgentSession:
        """The agent of the request's MCP session (registered on first use), or
        for a sessionless 2026-07-28 request the agent it names.

        Raises:
            InvalidInput: a sessionless request naming no agent; a malformed header.
            NotFound: an agent token's agent is gone.
        """
        http = request.request
        if not isinstance(http, Request) or CALLER_KEY not in http.scope:
            raise InvalidInput("an MCP request that did not come through /mcp")
        caller: Caller = http.scope[CALLER_KEY]
        client = request.session.client_params
        client_name = client.client_info.name if client is not None else "mcp"
        session_id = http.headers.get(SESSION_HEADER)
        assert self._lock is not None, "used outside the runtime's lifespan"
        async with self._lock:
            if session_id is None:
                return await self._stateless_agent(caller, http, client_name)
            seat = self.seats.get(session_id)
            if seat is None:  # written off already, or its opening has not finished yet
                seat = self._seat(session_id, caller, _bridged(http))
            if seat.agent is None:
                seat.agent = await self._register(
                    caller, http, client_name, session_id, seat.identity
                )
                self.leases.wake()
            return seat.agent

    def named_agent(self, request: ServerRequestContext[Any, Any]) -> str | None:
        """The agent a request names before any registration (for the server's
        instructions): an agent token's, else ``X-Relaybus-Agent``'s; None if neither."""
        http = request.request
        if not isinstance(http, Request) or CALLER_KEY not in http.scope:
            return None
        caller: Caller = http.scope[CALLER_KEY]
        return caller.agent_id or http.headers.get(AGENT_HEADER)

    async def connected(self, request: ServerRequestContext[Any, Any]) -> None:
        """``notifications/initialized``: register the session's agent now, or, for
        a bridged coding-agent session, :attr:`register_after` seconds later unless
        something needs it sooner (a ``claude mcp list`` check leaves no agent)."""
        http = request.request
        session_id = http.headers.get(SESSION_HEADER) if isinstance(http, Request) else None
        if session_id is None or not isinstance(http, Request) or _bridged(http) is None:
            await self.agent(request)
            return
        self._running_tasks.start_soon(self._register_later, session_id)

    async def _register_later(self, session_id: str) -> None:
        await anyio.sleep(self.register_after)
        seat = self.seats.get(session_id)
        if seat is None or seat.identity is None:
            return  # ended meanwhile
        try:
            await self._seat_agent(session_id, seat)
        except RelayError as exc:
            logger.warning("could not register the agent of MCP session %s: %s", session_id, exc)

    async def _seat_agent(self, session_id: str, seat: Seat) -> AgentSession:
        """The agent of a bridged session (``seat.identity`` set), registered on first use.

        Raises:
            RelayError: the registration failed, or the session has ended.
        """
        assert self._lock is not None and seat.identity is not None
        async with self._lock:
            if self.seats.get(session_id) is not seat:
                raise InvalidInput(f"MCP session {session_id} has ended")
            if seat.agent is None:
                seat.agent = await self._register(
                    seat.caller, None, "relaybus mcp", session_id, seat.identity
                )
                self.leases.wake()
            return seat.agent

    async def _host_hooks(self, session_id: str, seat: Seat) -> None:
        """Serve the hook commands of a bridged session until it ends."""
        assert self.session_host is not None and seat.identity is not None
        assert seat.ended is not None

        async def agent() -> AgentHandle:
            return (await self._seat_agent(session_id, seat)).handle

        async with self.session_host(agent, seat.identity, path=seat.hook_socket):
            await seat.ended.wait()

    async def _stateless_agent(
        self, caller: Caller, http: Request, client_name: str
    ) -> AgentSession:
        named = caller.agent_id or http.headers.get(AGENT_HEADER)
        if not named:
            raise InvalidInput(
                "this MCP request has no session (a 2026-07-28 client), so it must name its "
                f"agent: send {AGENT_HEADER}: <agent id>, or an agent's token"
            )
        key = (caller.workspace, named)
        now = anyio.current_time()
        known = self._stateless.get(key)
        if known is None:
            bridged = _bridged(http)
            identity = bridged[0] if bridged is not None else None
            agent = await self._register(caller, http, client_name, None, identity)
        else:
            agent, seen = known
            if now - seen < self.heartbeat_seconds:
                return agent
            await blocking(agent.handle.heartbeat)  # its requests are its heartbeats
        self._stateless[key] = (agent, now)
        return agent

    async def _register(
        self,
        caller: Caller,
        http: Request | None,
        client_name: str,
        session_id: str | None,
        identity: SessionIdentity | None = None,
    ) -> AgentSession:
        relay = Relay.embedded(self.service, workspace=caller.workspace)
        # A bridged session registers as its coding-agent session; an agent token
        # acts as its agent (registering would rotate its token).
        bridged = identity if caller.agent_id is None else None
        if bridged is not None:
            from ..tools.session import register_session

            handle = await blocking(lambda: register_session(relay, bridged))
        else:
            assert http is not None, "only a bridged session registers without a request"
            if caller.agent_id is not None:
                agent_id = caller.agent_id
                await blocking(
                    lambda: relay.service.heartbeat(agent_id, workspace=caller.workspace)
                )
                handle = AgentHandle(relay, agent_id, None)
            else:
                handle = await blocking(
                    lambda: self._register_new(relay, http, client_name, session_id)
                )
        return AgentSession(
            handle,
            waiter=self._wait,
            bus=self.bus,
            tasks=self._running_tasks,
            where=self._where(http),
            identity=bridged,
            on_published=self._publish,
        )

    def _where(self, http: Request | None) -> str:
        """Where this relay is, for ``whoami``: its URL, or its store when it is
        the warm local relay (a Unix socket has no URL worth showing)."""
        if http is None or http.client is None:
            path = self.service.store.path
            return f"the warm relay of {path}" if path is not None else "the warm relay"
        return f"the relay server {str(http.base_url).rstrip('/')}"

    def _register_new(
        self, relay: Relay, http: Request, client_name: str, session_id: str | None
    ) -> AgentHandle:
        headers = http.headers
        named = headers.get(AGENT_HEADER)
        if named is None:
            assert session_id is not None
            named = f"{_slug(client_name)}-{session_id[:8]}"
        instance = f"mcp-{session_id}" if session_id else f"mcp-http-{named}"
        agent = relay.service.register(
            named,
            workspace=relay.workspace,
            label=headers.get(LABEL_HEADER),
            tags=split_list(headers.get(TAGS_HEADER)),
            capabilities=split_list(headers.get(CAPS_HEADER)),
            channels=split_list(headers.get(CHANNELS_HEADER)),
            pid=None,
            host=http.client.host if http.client is not None else None,
            meta={"mcp_session": session_id, "client": client_name},
            instance_id=instance,
            tool=client_name,
        )
        return AgentHandle(relay, agent.id, agent.epoch)

    def _open_agents(self) -> list[AgentSession]:
        """The agents of the sessions open now: with a request in flight (a bridge's
        ``GET /mcp`` stream stays open while the bridge lives)."""
        return [s.agent for s in self.seats.values() if s.agent is not None and s.in_flight > 0]

    @property
    def _running_tasks(self) -> TaskGroup:
        assert self._tasks is not None, "used outside the runtime's lifespan"
        return self._tasks

    async def _wait(self, handle: AgentHandle, since: int, timeout: float) -> list[Message]:
        service, workspace = self.service, handle.relay.workspace

        def check() -> list[Message]:
            return service.inbox(
                handle.id,
                workspace=workspace,
                newest_first=False,
                since=since,
                limit=WAIT_LIMIT,
            )

        found: list[Message] = await self.hub.wait_for(check, timeout)
        return found

    def _publish(self, sent: Sequence[Message]) -> None:
        self.hub.publish(sent)

    # -- session lifecycle (fed by McpEndpoint) -----------------------------------

    async def close(self) -> None:
        """End every open ``/mcp`` response (SSE streams, pending tool calls) as if
        its client had gone, so that a shutting-down server need not wait for them.
        Call it when shutdown begins, before the server drains its connections."""
        self.closing = True
        for scope in list(self._receiving):
            scope.cancel()

    async def receive_until_closed(self, receive: Receive) -> AsgiMessage:
        """``receive()``, or a disconnect once :meth:`close` was called."""
        if not self.closing:
            with anyio.CancelScope() as scope:
                self._receiving.add(scope)
                try:
                    return await receive()
                finally:
                    self._receiving.discard(scope)
        return {"type": "http.disconnect"}

    def owns(self, session_id: str, caller: Caller) -> bool:
        """Whether ``caller`` may use the session (the one who opened it, or a
        session this runtime does not know: the SDK answers those with 404)."""
        seat = self.seats.get(session_id)
        return seat is None or seat.caller == caller

    def began(self, session_id: str | None) -> None:
        """A request of ``session_id`` started."""
        seat = self.seats.get(session_id) if session_id else None
        if seat is None and session_id:
            self._early[session_id] = self._early.get(session_id, 0) + 1
        if seat is not None:
            seat.in_flight += 1
            seat.last_active = anyio.current_time()
            if seat.in_flight == 1 and seat.agent is not None:
                self.leases.wake()  # open again: its leases are renewed again

    async def finished(
        self,
        session_id: str | None,
        *,
        caller: Caller,
        status: int,
        opened: str | None,
        bridged: tuple[SessionIdentity, Path | None] | None = None,
    ) -> None:
        """A request ended with ``status``; ``opened`` is the session id a new
        session's first response carried, ``bridged`` the coding-agent session
        that request said it serves and its hook socket. A 404 means the SDK no
        longer knows the session (it timed out): it has ended."""
        if opened is not None and status < 400 and opened not in self.seats:
            self._seat(opened, caller, bridged)
        if session_id is None:
            return
        known = self.seats.get(session_id)
        if known is None and session_id in self._early:
            self._early[session_id] -= 1
            if self._early[session_id] <= 0:
                del self._early[session_id]
        if known is not None:
            seat = known
            seat.in_flight = max(seat.in_flight - 1, 0)
            seat.last_active = anyio.current_time()
        if status == 404:
            await self.end(session_id)

    def _seat(
        self, session_id: str, caller: Caller, bridged: tuple[SessionIdentity, Path | None] | None
    ) -> Seat:
        """A new seat for ``session_id``; a bridged one (``bridged``, not under an
        agent token) gets its hook host where the runtime has one."""
        seat = self.seats[session_id] = Seat(caller, anyio.current_time())
        seat.in_flight = self._early.pop(session_id, 0)
        if bridged is not None and caller.agent_id is None:
            seat.identity, seat.hook_socket = bridged
            seat.ended = anyio.Event()
            if self.session_host is not None:
                self._running_tasks.start_soon(self._host_hooks, session_id, seat)
        return seat

    async def end(self, session_id: str) -> None:
        """The session ended: stop its watcher and, unless another live session
        acts as the same agent, mark the agent offline. Idempotent."""
        assert self._lock is not None, "used outside the runtime's lifespan"
        async with self._lock:  # a registration in flight ends first: its agent goes offline too
            seat = self.seats.pop(session_id, None)
        if seat is not None and seat.ended is not None:
            seat.ended.set()
        if seat is None or seat.agent is None:
            return
        agent = seat.agent
        agent.close()
        if any(s.agent is not None and _same(s.agent, agent) for s in self.seats.values()):
            return
        assert self._presence is not None, "used outside the runtime's lifespan"
        async with self._presence:
            try:
                await blocking(lambda: agent.handle.update(status="offline"))
            except RelayError as exc:  # fenced off by a newer session, or unregistered
                logger.info("MCP session %s ended; %s stays: %s", session_id, agent.id, exc)

    async def _sweep(self) -> None:
        assert self._presence is not None
        period = max(min(self.heartbeat_seconds, self.idle_seconds / 2), 0.05)
        while True:
            await anyio.sleep(period)
            now = anyio.current_time()
            for session_id, seat in list(self.seats.items()):
                if seat.in_flight == 0 and now - seat.last_active >= self.idle_seconds:
                    await self.end(session_id)
            live = {id(s.agent): s.agent for s in self.seats.values() if s.agent is not None}
            for agent in live.values():
                async with self._presence:  # never revive an agent a session end just retired
                    if not any(s.agent is agent for s in self.seats.values()):
                        continue
                    try:
                        await blocking(agent.handle.heartbeat)
                    except RelayError as exc:
                        logger.info("heartbeat of %s failed: %s", agent.id, exc)


def _bridged(http: Request) -> tuple[SessionIdentity, Path | None] | None:
    """The coding-agent session a request says it serves (``X-Relaybus-Session``),
    and its hook socket.

    Raises:
        InvalidInput: a malformed header.
    """
    raw = http.headers.get(SESSION_IDENTITY_HEADER)
    return parse_session_header(raw) if raw is not None else None


def _same(one: AgentSession, other: AgentSession) -> bool:
    """Whether two sessions act as the same agent (id and workspace)."""
    return one.id == other.id and one.handle.relay.workspace == other.handle.relay.workspace


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")[:32] or "mcp"
