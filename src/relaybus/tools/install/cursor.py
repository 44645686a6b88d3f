"""Cursor: ``mcpServers`` → ``relaybus`` in ``.cursor/mcp.json``.

Cursor merges the project's ``.cursor/mcp.json`` (the default scope here) and
the user's ``~/.cursor/mcp.json`` (Cursor docs, "Model Context Protocol" →
"Configuration locations").
"""

from __future__ import annotations

from .base import Context, McpJsonTool


class CursorTool(McpJsonTool):
    """The Cursor editor's agent."""

    name = "cursor"
    title = "Cursor"
    folder = ".cursor"
    file = "mcp.json"

    def next_steps(self, scope: str, ctx: Context) -> list[str]:
        return [
            "reload Cursor, then check Cursor Settings → MCP: relaybus should be listed and "
            "switched on"
        ]
