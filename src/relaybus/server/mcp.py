"""Streamable-HTTP MCP at ``/mcp`` on ``relaybus serve``: one agent per MCP session.

Auth is the REST API's (:class:`~relaybus.server.auth.Authenticator`): a bearer
token, checked before the MCP SDK sees the request, refused with the same
problem+json 401/403. Who a session acts as:

- an **agent token**: that agent, as it is (registering again would rotate
  its token); ``X-Relaybus-Agent`` naming another agent is 403;
- the **admin token**, or no token on an open loopback server: an agent
  registered for the session from ``X-Relaybus-Agent`` / ``-Label`` /
  ``-Tags`` / ``-Caps`` / ``-Channels`` (comma-separated lists); without
  ``X-Relaybus-Agent`` its id is derived from the client's name and the MCP
  session id. Each session is a new instance of that id (a newer session
  fences an older one off).

A ``relaybus mcp`` bridge (:mod:`relaybus.mcp.bridge`) also sends
``X-Relaybus-Session``: the coding-agent session it serves (its
:class:`~relaybus.identity.SessionIdentity`, see
:func:`~relaybus.mcp.streamable.session_header`). Such a
session's agent is registered as that session
(:func:`relaybus.tools.session.register_session`: its instance id, tool pid, cwd
and profile, so the session's hooks never fence it off), on first use or
:data:`~relaybus.mcp.session.REGISTER_AFTER` seconds after the client said it is
initialized (a connection check leaves no agent), and, where the runtime has a
:attr:`HttpRuntime.session_host` (the warm local relay), the session's hook
commands are served while it lives.

A session's agent heartbeats while the session lives and goes offline when it
ends: the client's DELETE, the idle timeout (no request in flight for
``Settings.mcp_idle_seconds``), or server shutdown. 2026-07-28 clients
have no sessions: each request names its agent by token or ``X-Relaybus-Agent``,
and presence follows its requests.

This module is the endpoint (:class:`McpEndpoint`: auth, the SDK's session manager,
the response side) and :func:`build`; the agents are :mod:`.mcp_agents`'
(:class:`HttpRuntime`), whose names it re-exports.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from starlette.datastructures import Headers
from starlette.types import Message as AsgiMessage
from starlette.types import Receive, Scope, Send

from ..errors import RelayError
from ..mcp.server import build_server
from ..mcp.streamable import SESSION_IDENTITY_HEADER, parse_session_header
from .auth import WORKSPACE_HEADER, Authenticator, bearer_token
from .mcp_agents import (
    AGENT_HEADER,
    CALLER_KEY,
    CAPS_HEADER,
    CHANNELS_HEADER,
    LABEL_HEADER,
    SESSION_HEADER,
    TAGS_HEADER,
    WAIT_LIMIT,
    HookHost,
    HttpRuntime,
    Seat,
)
from .problems import problem, relay_error_response

if TYPE_CHECKING:
    from ..service import Service
    from ..settings import Settings
    from .hub import Hub


class McpEndpoint:
    """The ASGI app at ``/mcp``: authenticates like the REST API, then hands the
    request to the MCP SDK's session manager, telling :class:`HttpRuntime` when
    sessions open, work and end."""

    def __init__(
        self, runtime: HttpRuntime, auth: Authenticator, manager: StreamableHTTPSessionManager
    ) -> None:
        self.runtime = runtime
        self.auth = auth
        self.manager = manager

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = Headers(scope=scope)
        client = scope.get("client")
        try:
            token = bearer_token(headers.get("authorization"))
            caller = await self.auth.authenticate(
                token, headers.get(WORKSPACE_HEADER), client[0] if client else None
            )
            named = headers.get(AGENT_HEADER)
            if named is not None:
                caller.act_as(named, AGENT_HEADER)
            raw_identity = headers.get(SESSION_IDENTITY_HEADER)
            bridged = parse_session_header(raw_identity) if raw_identity is not None else None
        except RelayError as err:
            await relay_error_response(err)(scope, receive, send)
            return
        session_id = headers.get(SESSION_HEADER)
        if session_id is not None and not self.runtime.owns(session_id, caller):
            await problem(404, "no such MCP session")(scope, receive, send)
            return
        scope[CALLER_KEY] = caller
        exchange = _Exchange(send, self.runtime, session_id, deleting=scope["method"] == "DELETE")

        async def receive_until_closed() -> AsgiMessage:
            return await self.runtime.receive_until_closed(receive)

        self.runtime.began(session_id)
        try:
            await self.manager.handle_request(scope, receive_until_closed, exchange.send)
        finally:
            with anyio.CancelScope(shield=True):
                if self.runtime.closing:
                    await exchange.complete(scope)
                await self.runtime.finished(
                    session_id,
                    caller=caller,
                    status=exchange.status,
                    opened=exchange.opened,
                    bridged=bridged,
                )


class _Exchange:
    """The response side of one ``/mcp`` request: its status, the session id a new
    session's first response carries, and whether the response is complete."""

    def __init__(
        self, send: Send, runtime: HttpRuntime, session_id: str | None, *, deleting: bool
    ) -> None:
        self._send = send
        self._runtime = runtime
        self._session_id = session_id
        self._deleting = deleting
        self.status = 500
        self.opened: str | None = None
        self.started = False
        self.completed = False

    async def send(self, message: AsgiMessage) -> None:
        if message["type"] == "http.response.start":
            self.started, self.status = True, message["status"]
            if self._session_id is None:
                self.opened = Headers(raw=message.get("headers", [])).get(SESSION_HEADER)
            elif self._deleting and self.status < 300:
                # Offline before the client hears that its session is over.
                with anyio.CancelScope(shield=True):
                    await self._runtime.end(self._session_id)
        elif message["type"] == "http.response.body" and not message.get("more_body", False):
            self.completed = True
        await self._send(message)

    async def complete(self, scope: Scope) -> None:
        """Finish a response that :meth:`HttpRuntime.close` cut short (the client is
        still there: end its stream properly, or say the server is going away)."""
        if self.completed:
            return
        if self.started:
            await self.send({"type": "http.response.body", "body": b"", "more_body": False})
        else:
            await problem(503, "the relay server is shutting down")(scope, _no_receive, self.send)


async def _no_receive() -> AsgiMessage:
    return {"type": "http.disconnect"}


def build(
    service: Service, config: Settings, *, auth: Authenticator, hub: Hub
) -> tuple[McpEndpoint, HttpRuntime, StreamableHTTPSessionManager]:
    """MCP for the app: the ASGI endpoint to serve at ``/mcp``, its
    :class:`HttpRuntime` (``await runtime.close()`` ends open MCP responses when
    shutdown begins), and the session manager, whose ``run()`` must be entered
    before the endpoint serves (it starts the runtime too).

    DNS-rebinding protection (the SDK's) is on when ``config.host`` is loopback.
    """
    runtime = HttpRuntime(
        service,
        hub,
        idle_seconds=config.mcp_idle_seconds,
        heartbeat_seconds=max(service.settings.stale_ttl / 3, 1.0),
    )
    server = build_server(runtime.lifespan, bus=runtime.bus)
    # Only for its side effect: it creates the session manager (server.session_manager).
    server.streamable_http_app(
        session_idle_timeout=config.mcp_idle_seconds,
        max_request_body_size=config.body_limit(),
        host=config.host,
    )
    manager = server.session_manager
    return McpEndpoint(runtime, auth, manager), runtime, manager


__all__ = [
    "AGENT_HEADER",
    "CALLER_KEY",
    "CAPS_HEADER",
    "CHANNELS_HEADER",
    "LABEL_HEADER",
    "SESSION_HEADER",
    "TAGS_HEADER",
    "WAIT_LIMIT",
    "HookHost",
    "HttpRuntime",
    "McpEndpoint",
    "Seat",
    "build",
]
