"""Cursor: ``mcpServers`` → ``relaybus`` in ``.cursor/mcp.json``.

Cursor merges the project's ``.cursor/mcp.json`` (the default scope here) and
the user's ``~/.cursor/mcp.json`` (Cursor docs, "Model Context Protocol" →
"Configuration locations").
"""

from __future__ import annotations

from .base import ConfigFile, Context, JsonFile, ServerEntry, Tool


class Cursor(Tool):
    """The Cursor editor's agent."""

    name = "cursor"
    title = "Cursor"
    scopes = ("project", "user")
    default_scope = "project"

    def files(self, scope: str, ctx: Context) -> list[ConfigFile]:
        folder = ctx.project if scope == "project" else ctx.home
        entry = ServerEntry(("mcpServers",), self.server(ctx), "MCP server relaybus")
        return [JsonFile(folder / ".cursor" / "mcp.json", [entry])]

    def next_steps(self, scope: str, ctx: Context) -> list[str]:
        return [
            "reload Cursor, then check Cursor Settings → MCP: relaybus should be listed and "
            "switched on"
        ]
