"""Identity commands: whoami, label, tags, caps, channels, approval.

They change the agent a call acts as (``--as`` / ``RELAYBUS_AGENT``, or, inside a
coding session, the session's own agent: :func:`session_agent_id`) in place,
through ``Service.update_agent``: no new registration, no new epoch, so a runner
or session holding the agent is never fenced off.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import click

from ..errors import InvalidInput
from . import render
from .app import HelpGroup, get_app, json_option

if TYPE_CHECKING:
    from ..client import AgentHandle, Relay

#: The coding tools whose sessions ``whoami`` looks for, in that order, when
#: ``RELAYBUS_TOOL`` does not name one (``mcp``: ``relaybus mcp`` without ``--tool``).
SESSION_TOOLS = ("claude", "codex", "gemini", "cursor", "mcp")
NOT_IN_A_SESSION = (
    "who are you? pass --as NAME or set RELAYBUS_AGENT (no agent of a coding session "
    "that runs this command is registered here)"
)


def session_agent_id(relay: Relay, env: dict[str, str] | None = None) -> str | None:
    """The agent of the coding-agent session this process runs in, as the hooks and
    ``relaybus mcp`` derive and register it (:func:`relaybus.identity.session_identity`),
    if it is registered on ``relay``: the derived id of ``RELAYBUS_TOOL`` (or of each
    of :data:`SESSION_TOOLS`), else the agent whose ``meta["session"]`` is the
    session's key (registered from another folder of the session). None when neither is.

    Raises:
        InvalidInput: a bad ``RELAYBUS_PROFILE`` or ``RELAYBUS_AUTO_TAGS``.
    """
    from ..identity import session_identity
    from ..profiles import ProfileError

    env = dict(os.environ) if env is None else env
    tool = env.get("RELAYBUS_TOOL", "").strip()
    try:
        identities = [session_identity(t, env=env) for t in ([tool] if tool else SESSION_TOOLS)]
    except ProfileError as exc:
        raise InvalidInput(str(exc)) from None
    found = {agent.id: agent for agent in relay.agents()}
    for identity in identities:
        if identity.agent_id in found:
            return identity.agent_id
    key = identities[0].session
    for agent in found.values():
        if agent.meta.get("session") == key:
            return agent.id
    return None


def acting_agent() -> AgentHandle:
    """The agent this call changes: ``--as`` / ``RELAYBUS_AGENT``, else the session's
    (fenced by ``--epoch`` when given).

    Raises:
        InvalidInput: neither names an agent. NotFound: ``--as`` names no agent.
    """
    app = get_app()
    if app.agent_id is not None:
        return app.me()
    found = session_agent_id(app.relay)
    if found is None:
        raise InvalidInput(NOT_IN_A_SESSION)
    return app.relay.agent(found, epoch=app.epoch)


def _changed(agent: dict[str, Any], line: str) -> None:
    render.result(agent, line, as_json=get_app().json)


def _update(what: str, **changes: Any) -> None:
    me = acting_agent()
    agent = render.dump(me.update(**changes))
    shown = {
        "label": agent["label"] or "-",
        "tags": ",".join(agent["tags"]) or "-",
        "capabilities": ",".join(agent["capabilities"]) or "-",
        "channels": ",".join(agent["channels"]) or "* (every channel)",
        "approval": agent["approval"],
    }[what]
    _changed(agent, f"{agent['id']} {what}: {shown}")


@click.command()
@json_option
def whoami() -> None:
    """Show who this call acts as: id, presence, tags, capabilities, channels, approval
    mode, unread mail.

    The agent is --as / RELAYBUS_AGENT; without either, inside a coding session
    (Claude Code, Codex, Gemini CLI, Cursor), the session's own agent as its hooks
    and 'relaybus mcp' register it (RELAYBUS_TOOL names the tool when the guess
    is wrong).

    \b
    Examples:
      relaybus whoami
      relaybus --as alice whoami --json
    """
    me = acting_agent()
    agent = render.dump(me.info())
    unread = me.unread_count()
    if get_app().json:
        render.emit_json({**agent, "unread": unread})
        return
    render.fields(
        [
            ("id", agent["id"]),
            ("status", f"{agent['status']} (epoch {agent['epoch']})"),
            ("label", agent["label"] or "-"),
            ("tags", render.names(agent["tags"])),
            ("capabilities", render.names(agent["capabilities"])),
            ("channels", render.names(agent["channels"]) if agent["channels"] else "* (all)"),
            ("approval", agent["approval"]),
            ("unread", str(unread)),
            ("last seen", render.ago(agent["last_seen_at"])),
            ("host", f"{agent['host']} pid {agent['pid'] or '-'} in {agent['cwd']}"),
        ]
    )


@click.command()
@click.argument("text")
@json_option
def label(text: str) -> None:
    """Set this agent's label (what label:TEXT targets), without re-registering.

    \b
    Examples:
      relaybus label "test writer"
      relaybus --as alice label "API reviewer" --json
    """
    _update("label", label=text)


def _names_argument(func: Any) -> Any:
    return click.argument("names", nargs=-1, required=True, metavar="NAME...")(func)


@click.group(cls=HelpGroup)
def tags() -> None:
    """Add or remove this agent's tags (what tag:NAME targets), in place.

    Adding a tag it has, or removing one it lacks, changes nothing. The agent
    keeps its registration and epoch.

    \b
    Examples:
      relaybus tags add backend python
      relaybus --as alice tags rm python --json
    """


@tags.command("add")
@_names_argument
@json_option
def tags_add(names: tuple[str, ...]) -> None:
    """Add tags (kept once, at the end)."""
    _update("tags", add_tags=names)


@tags.command("rm")
@_names_argument
@json_option
def tags_rm(names: tuple[str, ...]) -> None:
    """Remove tags, where present."""
    _update("tags", remove_tags=names)


@click.group(cls=HelpGroup)
def caps() -> None:
    """Add or remove this agent's capabilities (what cap:NAME targets), in place.

    \b
    Examples:
      relaybus caps add review
      relaybus --as alice caps rm deploy --json
    """


@caps.command("add")
@_names_argument
@json_option
def caps_add(names: tuple[str, ...]) -> None:
    """Add capabilities (kept once, at the end)."""
    _update("capabilities", add_capabilities=names)


@caps.command("rm")
@_names_argument
@json_option
def caps_rm(names: tuple[str, ...]) -> None:
    """Remove capabilities, where present."""
    _update("capabilities", remove_capabilities=names)


@click.group(cls=HelpGroup)
def channels() -> None:
    """Join or leave channels, in place.

    An agent with no channels hears every channel; once it joins one it hears only
    the channels it joined, and leaving the last one makes it hear every channel
    again.

    \b
    Examples:
      relaybus channels join ops ci
      relaybus --as alice channels leave ci --json
    """


@channels.command("join")
@_names_argument
@json_option
def channels_join(names: tuple[str, ...]) -> None:
    """Join channels."""
    _update("channels", join_channels=names)


@channels.command("leave")
@_names_argument
@json_option
def channels_leave(names: tuple[str, ...]) -> None:
    """Leave channels, where joined."""
    _update("channels", leave_channels=names)


@click.command()
@click.argument("mode", metavar="MODE")
@json_option
def approval(mode: str) -> None:
    """Set this agent's approval mode, in place: open, guarded or read-only.

    \b
    open       the coding tool's own permissions apply
    guarded    a person approves each tool call that changes files or runs
               commands (Write, Edit, Bash, MCP tools but relaybus's own)
    read-only  such calls are denied

    A Claude Code session's PreToolUse hook reads the mode at its next tool
    call, so the change applies at once; the agent keeps its registration and
    epoch. The session's next registration (a new session, /clear) sets the
    mode again from RELAYBUS_APPROVAL or its profile.

    \b
    Examples:
      relaybus approval read-only
      relaybus --as alice approval guarded --json
    """
    from .terminal import approval_mode

    _update("approval", approval=approval_mode(mode, "the approval mode"))
