"""Gemini CLI: ``mcpServers`` → ``relaybus`` in ``.gemini/settings.json``.

Gemini CLI reads the project's ``.gemini/settings.json`` (the default scope
here: the project's own setup) and the user's ``~/.gemini/settings.json``
(Gemini CLI docs, "Configuration" → "Settings files").
"""

from __future__ import annotations

from .base import Context, McpJsonTool


class Gemini(McpJsonTool):
    """Google Gemini CLI."""

    name = "gemini"
    title = "Gemini CLI"
    folder = ".gemini"
    file = "settings.json"

    def next_steps(self, scope: str, ctx: Context) -> list[str]:
        where = f" in {ctx.project}" if scope == "project" else ""
        return [f"start `gemini`{where}: /mcp lists relaybus"]
