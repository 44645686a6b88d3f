"""``relaybus mcp``: this coding-agent session's MCP server, over stdio."""

from __future__ import annotations

import os

import click

from ..errors import InvalidInput
from .app import creates_relay, get_app, loading

HELP = """Serve MCP over stdin/stdout as this coding-agent session's agent.

Coding tools start it from their MCP configuration ('relaybus install'
writes it). It registers the session as an agent on first use (or 3 s
after the client connected, so a mere connection check leaves none): its id comes
from RELAYBUS_AGENT, or from the host, the tool, the project folder and the
session; label, tags, capabilities and channels from RELAYBUS_LABEL,
RELAYBUS_TAGS, RELAYBUS_CAPS and RELAYBUS_CHANNELS, or from the table
RELAYBUS_PROFILE names in ~/.config/relaybus/profiles.toml. It heartbeats
while the client is connected and goes offline when the client disconnects
or on SIGTERM.

The relay is the embedded one of this repository, served by its warm local
relay: this process is a small bridge between stdio and the relay's /mcp
endpoint (it starts the relay when none runs; the relay also answers the
session's Claude Code hooks). With RELAYBUS_DAEMON=0, or a relay server
(RELAYBUS_URL) or a database (RELAYBUS_DATABASE), it serves MCP itself, in
this process. Tools: send, inbox, wait_for_message, agents, task, whoami;
resource relaybus://inbox.
"""


@click.command("mcp", help=HELP, short_help="Serve MCP over stdio as this session's agent.")
@click.option(
    "--tool",
    envvar="RELAYBUS_TOOL",
    default="mcp",
    show_default=True,
    metavar="NAME",
    help="The coding tool this session runs in: claude, codex, gemini, cursor (RELAYBUS_TOOL).",
)
@creates_relay
def mcp(tool: str) -> None:
    from ..identity import session_identity
    from ..profiles import ProfileError

    app = get_app()
    env = dict(os.environ)
    if app.overrides.get("agent"):  # --as NAME names the agent, like RELAYBUS_AGENT
        env["RELAYBUS_AGENT"] = app.overrides["agent"]
    try:
        identity = session_identity(tool, env=env)
    except ProfileError as exc:
        raise InvalidInput(str(exc)) from None
    from ..mcp.bridge import relay_dir, serve

    folder = relay_dir(app.settings)
    if folder is not None:  # the warm relay serves it; this process only relays
        serve(folder, identity, workspace=app.settings.workspace)
        return
    # The composition point: the MCP bridge, with the coding-tool side (the
    # session's registration and its hook host) handed in, never imported by mcp/.
    # The MCP SDK's import and the relay's opening load most of what the session
    # keeps, with the collector paused (see loading()).
    with loading(app.own_process):
        from ..mcp.stdio import serve_stdio
        from ..tools.hooks.host import session_host
        from ..tools.session import register_session

        relay = app.relay
    serve_stdio(relay, identity, register=register_session, host=session_host)
