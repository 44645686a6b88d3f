"""The relaybus MCP server: tools, the inbox resource, subscriptions and instructions.

:func:`build_server` makes the :class:`~mcp.server.mcpserver.MCPServer` that
both transports serve (stdio in :mod:`.stdio`, streamable HTTP in
:mod:`relaybus.server.mcp`); what differs is the lifespan, which yields the
:class:`~.session.Runtime` that tells each request which agent it acts as.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.lowlevel.server import Server
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.resources import FunctionResource
from mcp.shared.exceptions import MCPError
from mcp_types import (
    INVALID_PARAMS,
    CallToolResult,
    InputRequiredResult,
    SubscribeRequestParams,
    UnsubscribeRequestParams,
)
from pydantic import BaseModel, ValidationError

from .. import __version__
from ..errors import RelayError
from .resources import CURRENT_AGENT, AgentBus, read_inbox, subscribe, unsubscribe
from .session import INBOX_URI, Runtime
from .tools import add_tools, argument_error

logger = logging.getLogger("relaybus.mcp")

#: Requests whose handler the SDK calls without a context: the agent is resolved
#: first and left in :data:`~.resources.CURRENT_AGENT`.
NEEDS_AGENT = frozenset({"resources/read", "subscriptions/listen"})

INSTRUCTIONS = """\
{who} on relaybus, the message bus the coding agents of this project share.
- inbox shows your new messages; wait_for_message blocks until some arrive.
- Reply with send(reply_to=<message id>, body=...): it goes to the sender, in the same thread.
- send(to=...) takes an agent id, tag:NAME, cap:NAME, label:TEXT or broadcast; \
agents shows who is online.
- A claimable message opens a task: task(action="claim", task_id=N) before working on it, \
then progress, then done or failed.
Etiquette: acknowledge a request briefly, then do it. Never reply to a pure acknowledgement \
or thanks (no ack loops). Keep messages short and self-contained.
"""


def instructions(agent_id: str | None) -> str:
    """The server instructions: who the agent is, how to reply, targets, etiquette.

    ``agent_id`` None (the HTTP mount, where each session has its own agent)
    points the agent at ``whoami`` instead.
    """
    who = f"You are agent {agent_id}" if agent_id else "You are an agent (whoami gives your id)"
    return INSTRUCTIONS.format(who=who)


def lowlevel(server: MCPServer[Any]) -> Server[Any]:
    """The low-level server under ``server``.

    MCPServer 2.3 has no public way to serve ``resources/subscribe`` or to run
    over caller-provided stdio streams; its docs send users to the low-level
    server for both. This is the one place that reaches for it.
    """
    return server._lowlevel_server


async def agent_middleware(
    ctx: ServerRequestContext[Any, Any], call_next: CallNext
) -> HandlerResult:
    """Resolve the request's agent where a handler needs it without a context.

    - ``notifications/initialized``: register the session's agent as soon as
      the client has connected (the HTTP mount), so it is online before its
      first tool call; a failure is logged and the tools report it later. A
      runtime with a ``connected`` method decides itself (stdio registers a
      little later, so a connection check leaves no agent).
    - :data:`NEEDS_AGENT` requests: set :data:`CURRENT_AGENT` for the handler.

    Raises:
        MCPError: the agent of a :data:`NEEDS_AGENT` request cannot be resolved.
    """
    method = ctx.method
    if method in ("initialize", "server/discover"):
        return named_instructions(ctx, await call_next(ctx))
    if method != "notifications/initialized" and method not in NEEDS_AGENT:
        return await call_next(ctx)
    runtime: Runtime = ctx.lifespan_context
    if method == "notifications/initialized":
        connected = getattr(runtime, "connected", None)
        try:
            await (connected(ctx) if connected is not None else runtime.agent(ctx))
        except RelayError as exc:
            logger.warning("could not register the agent of an MCP session: %s", exc)
        return await call_next(ctx)
    try:
        agent = await runtime.agent(ctx)
    except RelayError as exc:
        raise MCPError(INVALID_PARAMS, exc.message) from exc
    token = CURRENT_AGENT.set(agent)
    try:
        return await call_next(ctx)
    finally:
        CURRENT_AGENT.reset(token)


def named_instructions(ctx: ServerRequestContext[Any, Any], result: HandlerResult) -> HandlerResult:
    """``result`` (of ``initialize`` or ``server/discover``) with instructions that
    name the agent, when the runtime knows it before registering it: a runtime
    may have ``named_agent(request) -> str | None`` (the HTTP mount: an agent
    token's agent, or ``X-Relaybus-Agent``, which a ``relaybus mcp`` bridge sends)."""
    named = getattr(ctx.lifespan_context, "named_agent", None)
    agent_id = named(ctx) if named is not None else None
    if not agent_id:
        return result
    text = instructions(agent_id)
    if isinstance(result, BaseModel) and getattr(result, "instructions", None) is not None:
        return result.model_copy(update={"instructions": text})
    if isinstance(result, dict) and result.get("instructions") is not None:
        return {**result, "instructions": text}
    return result


class RelayMCPServer(MCPServer[Runtime]):
    """:class:`MCPServer` whose argument errors read as one sentence per argument.

    The SDK validates a tool's arguments against its signature with pydantic
    and hands the model pydantic's report (error types, input values, links);
    this rewrites that one kind of failure with :func:`.tools.argument_error`.
    """

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[Runtime, Any] | None = None
    ) -> CallToolResult | InputRequiredResult:
        """The SDK's ``call_tool``.

        Raises:
            ToolError: as the SDK's, with a readable message for bad arguments.
        """
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as exc:
            if not isinstance(exc.__cause__, ValidationError):
                raise
            tools = {tool.name: tool for tool in await self.list_tools()}
            schema = tools[name].input_schema if name in tools else {}
            raise ToolError(argument_error(exc.__cause__, schema)) from exc.__cause__


def build_server(
    lifespan: Callable[[MCPServer[Runtime]], AbstractAsyncContextManager[Runtime]],
    *,
    bus: AgentBus,
    agent_id: str | None = None,
) -> MCPServer[Runtime]:
    """The relaybus MCP server.

    Args:
        lifespan: yields the :class:`Runtime` for as long as the server serves
            (one stdio session, or the HTTP session manager's lifetime).
        bus: the ``subscriptions/listen`` bus the runtime's agents publish on.
        agent_id: the agent every request acts as, for the instructions
            (``None`` when each session has its own).
    """
    server: MCPServer[Runtime] = RelayMCPServer(
        "relaybus",
        version=__version__,
        instructions=instructions(agent_id),
        lifespan=lifespan,
        subscriptions=bus,
        log_level="WARNING",
    )
    add_tools(server)
    server.add_resource(
        FunctionResource.from_function(
            read_inbox,
            uri=INBOX_URI,
            name="inbox",
            description="Your unread messages (not marked read). Subscribe to hear of new mail.",
            mime_type="text/plain",
        )
    )
    low = lowlevel(server)
    low.add_request_handler("resources/subscribe", SubscribeRequestParams, subscribe)
    low.add_request_handler("resources/unsubscribe", UnsubscribeRequestParams, unsubscribe)
    server.middleware.append(agent_middleware)
    return server
