"""Gemini CLI: ``mcpServers`` → ``relaybus`` in ``.gemini/settings.json``.

Gemini CLI reads the project's ``.gemini/settings.json`` (the default scope
here: the project's own setup) and the user's ``~/.gemini/settings.json``
(Gemini CLI docs, "Configuration" → "Settings files").
"""

from __future__ import annotations

from .base import ConfigFile, Context, JsonFile, ServerEntry, Tool


class Gemini(Tool):
    """Google Gemini CLI."""

    name = "gemini"
    title = "Gemini CLI"
    scopes = ("project", "user")
    default_scope = "project"

    def files(self, scope: str, ctx: Context) -> list[ConfigFile]:
        folder = ctx.project if scope == "project" else ctx.home
        entry = ServerEntry(("mcpServers",), self.server(ctx), "MCP server relaybus")
        return [JsonFile(folder / ".gemini" / "settings.json", [entry])]

    def next_steps(self, scope: str, ctx: Context) -> list[str]:
        where = f" in {ctx.project}" if scope == "project" else ""
        return [f"start `gemini`{where}: /mcp lists relaybus"]
