"""The inbox resource ``relaybus://inbox`` and its change notifications.

Reading it shows the agent's unread messages (without marking them read).
Clients learn of new mail without calling a tool, in either protocol era:

- handshake era (2024-11-05 .. 2025-11-25): ``resources/subscribe`` with the
  inbox URI; new mail sends ``notifications/resources/updated`` on the
  session's standalone channel;
- 2026-07-28: ``subscriptions/listen`` with the inbox URI among its
  ``resourceSubscriptions``; new mail sends the same notification on that
  stream. :class:`AgentBus` routes it to the listening agent's streams only.

Either way the agent's inbox watcher (:meth:`AgentSession._watch`) runs while
someone is subscribed.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable
from typing import Any

import anyio.lowlevel
from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver.exceptions import ResourceError
from mcp.server.subscriptions import ResourceUpdated, ServerEvent
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS, EmptyResult, SubscribeRequestParams, UnsubscribeRequestParams

from ..errors import RelayError
from ..models import Via
from . import render
from .session import INBOX_URI, AgentSession, Runtime, blocking

logger = logging.getLogger("relaybus.mcp")

#: The agent of the request being served, for handlers the SDK calls without a
#: context: the inbox resource's read and the bus's ``subscribe`` (set by
#: :func:`relaybus.mcp.server.agent_middleware`).
CURRENT_AGENT: contextvars.ContextVar[AgentSession | None] = contextvars.ContextVar(
    "relaybus_mcp_agent", default=None
)

#: Most unread messages the resource shows.
RESOURCE_LIMIT = 50


def inbox_updated() -> ServerEvent:
    """The event a listen stream carries when new mail arrives."""
    return ResourceUpdated(uri=INBOX_URI)


class AgentBus:
    """The ``subscriptions/listen`` fan-out, with each stream tied to its agent.

    Implements the SDK's ``SubscriptionBus``. A stream subscribes while
    :data:`CURRENT_AGENT` names the agent it belongs to; :meth:`publish_to`
    reaches that agent's streams only, so one agent never hears of another's
    mail. :meth:`publish` (the SDK's ``ctx.notify_*``) reaches every stream.
    Listeners run on the event loop.
    """

    def __init__(self) -> None:
        self._listeners: dict[
            object, tuple[AgentSession | None, Callable[[ServerEvent], None]]
        ] = {}

    async def publish(self, event: ServerEvent) -> None:
        """Deliver ``event`` to every stream."""
        for _agent, listener in list(self._listeners.values()):
            self._deliver(listener, event)
        await anyio.lowlevel.checkpoint()

    def publish_to(self, agent: AgentSession, event: ServerEvent) -> None:
        """Deliver ``event`` to the streams of ``agent`` only."""
        for owner, listener in list(self._listeners.values()):
            if owner is agent:
                self._deliver(listener, event)

    def subscribe(self, listener: Callable[[ServerEvent], None]) -> Callable[[], None]:
        """Register a stream's listener; returns its (idempotent) unsubscribe."""
        token = object()
        agent = CURRENT_AGENT.get()
        self._listeners[token] = (agent, listener)
        if agent is not None:
            agent.listening(+1)

        def unsubscribe() -> None:
            entry = self._listeners.pop(token, None)
            if entry is not None and entry[0] is not None:
                entry[0].listening(-1)

        return unsubscribe

    @staticmethod
    def _deliver(listener: Callable[[ServerEvent], None], event: ServerEvent) -> None:
        try:
            listener(event)
        except Exception:  # one broken stream must not starve the others
            logger.exception("a subscription listener failed")


async def read_inbox() -> str:
    """The ``relaybus://inbox`` resource: the agent's unread messages, oldest
    first, recorded delivered (by ``mcp``) but not marked read.

    Raises:
        ResourceError: the relay refused, with its message.
    """
    agent = CURRENT_AGENT.get()
    if agent is None:
        raise RuntimeError("relaybus://inbox read without an agent (agent_middleware missing)")
    try:
        found = await blocking(
            lambda: agent.handle.inbox(newest_first=False, limit=RESOURCE_LIMIT, via=Via.MCP)
        )
    except RelayError as exc:
        raise ResourceError(exc.message) from exc
    return render.messages(found)


async def _inbox_agent(ctx: ServerRequestContext[Runtime, Any], uri: object) -> AgentSession:
    """The session's agent, for a (un)subscription to ``uri``.

    Raises:
        MCPError: a URI other than ``relaybus://inbox``, or no agent.
    """
    if str(uri) != INBOX_URI:
        raise MCPError(INVALID_PARAMS, f"no resource {uri}: subscribe to {INBOX_URI}")
    try:
        return await ctx.lifespan_context.agent(ctx)
    except RelayError as exc:
        raise MCPError(INVALID_PARAMS, exc.message) from exc


async def subscribe(
    ctx: ServerRequestContext[Runtime, Any], params: SubscribeRequestParams
) -> EmptyResult:
    """``resources/subscribe``: notify this session when new mail arrives (MCPError as
    for :func:`_inbox_agent`)."""
    (await _inbox_agent(ctx, params.uri)).subscribe(ctx.session)
    return EmptyResult()


async def unsubscribe(
    ctx: ServerRequestContext[Runtime, Any], params: UnsubscribeRequestParams
) -> EmptyResult:
    """``resources/unsubscribe``: stop the notifications (MCPError as for
    :func:`_inbox_agent`)."""
    (await _inbox_agent(ctx, params.uri)).unsubscribe()
    return EmptyResult()
