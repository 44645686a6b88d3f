"""The MCP tools: one small function each over the SDK's :class:`AgentHandle` calls.

Every tool acts as the agent of its MCP session (:meth:`Runtime.agent`) and
returns short text (:mod:`.render`). A :class:`~relaybus.errors.RelayError`
becomes a tool error (``isError``) carrying its message; blocking SDK calls
run in worker threads, so no tool blocks the server's event loop.

:data:`TOOLS` pairs each function with the description the model reads: short
and exact, because every connected agent pays for the whole ``tools/list`` in
context (it stays under 10,000 characters; ``tests/mcp`` measures it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from ..errors import RelayError
from ..models import Via
from . import render
from .session import AgentSession, Runtime, blocking

if TYPE_CHECKING:
    from pydantic import ValidationError

T = TypeVar("T")

#: The context a tool receives; its lifespan context is the :class:`Runtime`.
Ctx = Context[Runtime, Any]

#: Longest wait_for_message wait (seconds).
MAX_WAIT = 300


async def _me(ctx: Ctx) -> AgentSession:
    try:
        return await ctx.request_context.lifespan_context.agent(ctx.request_context)
    except RelayError as exc:
        raise ToolError(exc.message) from exc


async def _run(fn: Callable[[], T]) -> T:
    try:
        return await blocking(fn)
    except RelayError as exc:
        raise ToolError(exc.message) from exc


async def send(
    ctx: Ctx,
    *,
    to: Annotated[
        str | None,
        Field(
            description="Agent id, tag:NAME, cap:NAME, label:TEXT or broadcast. "
            "Omit with reply_to to answer the sender."
        ),
    ] = None,
    body: str,
    subject: str | None = None,
    channel: Annotated[
        str | None, Field(description="Only agents subscribed to this channel.")
    ] = None,
    reply_to: Annotated[
        int | None, Field(description="Id of the message answered (same thread).")
    ] = None,
    claimable: Annotated[
        bool, Field(description="Also open a task that exactly one recipient can claim.")
    ] = False,
) -> str:
    """Send a message (see :meth:`AgentHandle.send`); returns what was sent to whom.

    Raises:
        ToolError: an unknown agent, a target nobody matches, a bad reply_to.
    """
    if to is None and reply_to is None:
        raise ToolError(f"`to` is required: {ACCEPTS['to']} (or give reply_to to answer a message)")
    me = await _me(ctx)
    options: dict[str, Any] = {"subject": subject, "channel": channel, "claimable": claimable}

    def call() -> str:
        if reply_to is not None:  # to the sender unless `to` says otherwise
            message = me.handle.reply(reply_to, body, to=to, **options)
        else:
            assert to is not None
            message = me.handle.send(to, body, **options)
        me.published([message])
        return render.sent(message)

    return await _run(call)


async def inbox(
    ctx: Ctx,
    limit: Annotated[int, Field(ge=1, le=100)] = 20,
    history: Annotated[
        bool, Field(description="Broadcasts sent before you joined instead, newest first.")
    ] = False,
    channel: Annotated[str | None, Field(description="With history: only this channel.")] = None,
) -> str:
    """New (unread) messages, oldest first, marked read as they are returned.

    Raises:
        ToolError: the relay refused.
    """
    me = await _me(ctx)
    if history:
        earlier = await _run(lambda: me.handle.history(channel=channel, limit=limit))
        return render.history(earlier)
    found = await _run(lambda: me.handle.read(newest_first=False, limit=limit, via=Via.MCP))
    more = await _run(me.handle.unread_count) if len(found) == limit else 0
    return render.messages(found, more=more)


async def wait_for_message(
    ctx: Ctx,
    timeout: Annotated[int, Field(ge=1, le=MAX_WAIT, description="Seconds, 1-300.")] = 60,
) -> str:
    """Wait up to ``timeout`` seconds for new mail; return it marked read (or say
    nothing came). Cancelling the call ends the wait.

    Raises:
        ToolError: the relay refused.
    """
    me = await _me(ctx)
    try:
        found = await me.wait_unread(timeout)
    except RelayError as exc:
        raise ToolError(exc.message) from exc
    if not found:
        return f"No new messages after {timeout} s."
    ids = [m.id for m in found]
    await _run(lambda: me.handle.mark_read(ids, via=Via.MCP))
    return render.messages(found)


async def agents(ctx: Ctx, include_offline: bool = False) -> str:
    """Agents of the workspace, online ones only unless ``include_offline``."""
    me = await _me(ctx)
    found = await _run(lambda: me.handle.relay.agents(online_only=not include_offline))
    return render.agents(found, me=me.id, offline=include_offline)


async def task(
    ctx: Ctx,
    action: Literal[
        "list",
        "claim",
        "progress",
        "done",
        "failed",
        "release",
        "pair_invite",
        "pair_accept",
        "pair_reject",
        "pair_send",
        "pair_hangup",
        "pair_status",
    ] = "list",
    task_id: int | None = None,
    progress: Annotated[int | None, Field(ge=0, le=100, description="Percent.")] = None,
    note: str | None = None,
    result: Annotated[str | None, Field(description="Outcome, for done/failed.")] = None,
    target: str | None = None,
    objective: str | None = None,
    pair_id: int | None = None,
    body: str | None = None,
) -> str:
    """List open tasks, or claim, report on, finish or release one; or act on a pair
    (:func:`pair`).

    Raises:
        ToolError: no task_id, or the relay refused (taken, not held, finished...).
    """
    me = await _me(ctx)
    handle = me.handle
    if action.startswith("pair_"):
        return await pair(me, action, target, objective, pair_id, body)
    if action == "list":
        # Only the tasks this agent may see; of the open ones, those offered to it
        # (its own are for its recipients to claim).
        open_ = await _run(lambda: handle.tasks(status="open", limit=20))
        held = await _run(lambda: handle.tasks(assignee=handle.id, limit=20))
        offered = [t for t in open_ if t.creator != handle.id]
        return render.tasks(offered, [t for t in held if not t.status.terminal])
    if task_id is None:
        raise ToolError(f"`task_id` is required to {action}: {ACCEPTS['task_id']}")
    number = task_id
    if action == "claim":
        claimed = await _run(lambda: handle.claim(number))
        text = render.task(claimed)
        if claimed.body:
            text += f"\n{claimed.body}"
        return text + "\nReport with action=progress, then done or failed."
    if action == "release":
        return render.task(await _run(lambda: handle.release(number)))
    if action == "progress":
        if progress is None and note is None:
            raise ToolError("`progress` (a whole number from 0 to 100) or `note` is required")
        updated = await _run(lambda: handle.update_task(number, progress=progress, note=note))
    else:
        updated = await _run(
            lambda: handle.update_task(number, status=action, note=note, result=result)
        )
    return render.task(updated)


async def pair(
    me: AgentSession,
    action: str,
    target: str | None,
    objective: str | None,
    pair_id: int | None,
    body: str | None,
) -> str:
    """The task tool's pair actions: invite (``target``, ``objective``), accept, reject,
    send (``body``), hang up (``pair_id``), or the agent's pairs (``pair_status``).

    Raises:
        ToolError: an argument missing, or the relay refused (busy, not pending...).
    """
    handle = me.handle
    if action == "pair_status":
        return render.pairs(await _run(lambda: handle.pairs(limit=10)), me=handle.id)
    if action == "pair_invite":
        if target is None or objective is None:
            raise ToolError(f"`target` ({ACCEPTS['target']}) and `objective` are required")
        invited = await _run(lambda: handle.pair_invite(target, objective))
        return render.pair(invited, me=handle.id) + "\nWait for the answer in your inbox."
    if pair_id is None:
        raise ToolError(f"`pair_id` is required to {action}: {ACCEPTS['pair_id']}")
    number = pair_id
    if action == "pair_send":
        if body is None:
            raise ToolError(f"`body` is required to pair_send: {ACCEPTS['body']}")
        sent = await _run(lambda: handle.pair_send(number, body))
        me.published([sent])
        return render.sent(sent)
    act = {
        "pair_accept": handle.pair_accept,
        "pair_reject": handle.pair_reject,
        "pair_hangup": handle.pair_hangup,
    }[action]
    return render.pair(await _run(lambda: act(number)), me=handle.id)


async def whoami(
    ctx: Ctx,
    label: str | None = None,
    tags: list[str] | None = None,
    capabilities: list[str] | None = None,
    channels: Annotated[
        list[str] | None, Field(description="Channels heard; [] means all.")
    ] = None,
    status: Literal["online", "busy", "idle"] | None = None,
) -> str:
    """This agent and its unread count; the given fields are changed first. A list
    of names replaces the stored one; a list of ``+NAME`` / ``-NAME`` items adds or
    removes those names, as ``relaybus tags add|rm`` does.

    Raises:
        ToolError: a malformed label, tag, capability or channel, or a list that
            mixes names with ``+NAME`` / ``-NAME`` items.
    """
    me = await _me(ctx)
    handle = me.handle
    changes: dict[str, Any] = {
        key: value for key, value in (("label", label), ("status", status)) if value is not None
    }
    for key, items in (("tags", tags), ("capabilities", capabilities), ("channels", channels)):
        changes.update(list_changes(key, items))
    if changes:
        await _run(lambda: handle.update(**changes))
    info = await _run(handle.info)
    unread = await _run(handle.unread_count)
    return render.whoami(info, unread=unread, where=me.where)


#: The ``update`` arguments that add and remove items of each whoami list.
ITEM_CHANGES = {
    "tags": ("add_tags", "remove_tags"),
    "capabilities": ("add_capabilities", "remove_capabilities"),
    "channels": ("join_channels", "leave_channels"),
}


def list_changes(key: str, items: list[str] | None) -> dict[str, list[str]]:
    """The :meth:`AgentHandle.update` arguments for whoami's list ``key``: ``{key:
    items}`` to replace it, or its add and remove arguments when every item is
    ``+NAME`` or ``-NAME``; nothing for None.

    Raises:
        ToolError: names mixed with ``+NAME`` / ``-NAME`` items.
    """
    if items is None:
        return {}
    signed = [item for item in items if item[:1] in ("+", "-")]
    if not signed:
        return {key: items}
    if len(signed) != len(items):
        raise ToolError(
            f"`{key}`: give names to replace the list, or +NAME / -NAME items to change it, "
            "not both"
        )
    add, remove = ITEM_CHANGES[key]
    changes = {
        add: [item[1:] for item in items if item[0] == "+"],
        remove: [item[1:] for item in items if item[0] == "-"],
    }
    return {name: names for name, names in changes.items() if names}


#: Each tool and the description the model reads.
TOOLS: list[tuple[Callable[..., Any], str]] = [
    (
        send,
        "Send a message. To answer one, give reply_to (to may be omitted). "
        "claimable=true also opens a task for the recipients.",
    ),
    (inbox, "Your new messages, oldest first; marks them read."),
    (
        wait_for_message,
        "Block until new messages arrive (up to timeout seconds) and return them, marked read.",
    ),
    (agents, "Who is online, with labels, tags (tag:X), capabilities (cap:X) and channels."),
    (
        task,
        "Tasks from claimable messages (one claimer each): list, claim, progress (0-100, "
        "note), done/failed (result), release. Pairs: pair_invite (target, objective), "
        "pair_accept|reject|send|hangup|status",
    ),
    (
        whoami,
        "Your agent id, status and unread count. Give any field to change it: a list "
        "replaces the old one; +NAME / -NAME items add or remove one.",
    ),
]


#: What an argument takes, where its type alone says too little.
ACCEPTS = {
    "to": "an agent id, tag:NAME, cap:NAME, label:TEXT or broadcast",
    "body": "the message text",
    "reply_to": "the id of a message (a whole number)",
    "task_id": "the id of a task (a whole number)",
    "target": "an agent id",
    "pair_id": "the id of a pair (a whole number)",
}


def argument_error(error: ValidationError, schema: Mapping[str, Any]) -> str:
    """What is wrong with a tool call's arguments, one sentence per argument
    (``error`` is the SDK's validation of them, ``schema`` the tool's input schema):
    "`limit` must be a whole number from 1 to 100", "`body` is required: the
    message text". No pydantic wording and no links: the model reads this."""
    properties = schema.get("properties", {})
    sentences: dict[str, str] = {}
    for problem in error.errors():
        loc = problem.get("loc") or ("arguments",)
        name = str(loc[0])
        if name in sentences:
            continue
        accepts = ACCEPTS.get(name) or _accepts(properties.get(name, {}))
        if problem.get("type") == "missing":
            sentences[name] = f"`{name}` is required: {accepts}"
        else:
            sentences[name] = f"`{name}` must be {accepts}"
    return "; ".join(sentences.values()) or "the arguments do not match the tool's schema"


def _accepts(prop: Mapping[str, Any]) -> str:
    """A JSON schema property in words ("one of a, b or c", "a whole number from 1 to 300")."""
    options = [p for p in prop.get("anyOf", [prop]) if p.get("type") != "null"]
    prop = options[0] if len(options) == 1 else prop
    if "enum" in prop:
        values = [str(v) for v in prop["enum"]]
        return "one of " + (", ".join(values[:-1]) + " or " + values[-1] if values else "")
    kind = prop.get("type")
    if kind == "integer":
        low, high = prop.get("minimum"), prop.get("maximum")
        if low is not None and high is not None:
            return f"a whole number from {low} to {high}"
        if low is not None:
            return f"a whole number of at least {low}"
        return "a whole number"
    if kind == "boolean":
        return "true or false"
    if kind == "array":
        items = prop.get("items", {})
        return "a list of strings" if items.get("type") == "string" else "a list"
    return {"string": "a string", "number": "a number", "object": "an object"}.get(
        str(kind), "a JSON value"
    )


def add_tools(server: MCPServer[Any]) -> None:
    """Register :data:`TOOLS` on ``server`` (plain-text results, no output schema)."""
    for fn, description in TOOLS:
        server.add_tool(fn, description=description, structured_output=False)
