"""Gemini CLI: ``mcpServers`` → ``relaybus`` in ``.gemini/settings.json``, and
the folder trust that Gemini CLI wants before it starts any MCP server.

Gemini CLI reads the project's ``.gemini/settings.json`` (the default scope
here: the project's own setup) and the user's ``~/.gemini/settings.json``
(Gemini CLI docs, "Configuration" → "Settings files"), both as JSON with
``//`` and ``/* */`` comments (``strip-json-comments``, then ``JSON.parse``:
no trailing commas).

Folder trust (Gemini CLI docs, "Trusted Folders"; on unless the user's
``security.folderTrust.enabled`` is false): in a folder that is not trusted,
Gemini CLI ignores the project's settings and starts no MCP server at all,
the user's included; ``gemini mcp list`` shows them "Disabled". The choice is
kept in ``~/.gemini/trustedFolders.json`` (``GEMINI_CLI_TRUSTED_FOLDERS_PATH``
overrides it), an object from folder to ``TRUST_FOLDER``, ``TRUST_PARENT``
(the folder's parent) or ``DO_NOT_TRUST``; the longest matching rule wins.
``GEMINI_CLI_TRUST_WORKSPACE=true``/``false`` overrides everything.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from .base import ConfigFile, Context, JsonEdit, JsonFile, McpJsonTool
from .files import ConfigError, json_kind, parse_json, read_text
from .manifest import KeyPath

Trust = Literal["trusted", "untrusted", "unknown", "off"]
#: The level ``install gemini --trust`` writes.
TRUST_FOLDER = "TRUST_FOLDER"


def gemini_home(ctx: Context) -> Path:
    """Gemini CLI's home folder (``GEMINI_CLI_HOME``, else the home folder)."""
    return ctx.env_path("GEMINI_CLI_HOME", ctx.home)


def trusted_folders_path(ctx: Context) -> Path:
    """Where Gemini CLI keeps the trust rules."""
    default = gemini_home(ctx) / ".gemini" / "trustedFolders.json"
    return ctx.env_path("GEMINI_CLI_TRUSTED_FOLDERS_PATH", default)


def _read(path: Path) -> dict[str, Any]:
    """``path`` as JSON with comments; {} when missing.

    Raises:
        ConfigError: unreadable or not valid.
    """
    try:
        text = read_text(path)
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}", path=str(path)) from None
    return parse_json(text, path, comments=True) if text else {}


def folder_trust(ctx: Context) -> Trust:
    """Whether Gemini CLI trusts ``ctx.project``: ``off`` (the user turned the
    feature off), ``trusted``, ``untrusted`` (a ``DO_NOT_TRUST`` rule) or
    ``unknown`` (no rule: Gemini CLI asks, and until then runs no MCP server).

    Raises:
        ConfigError: the user's settings or the trust file is not valid.
    """
    forced = ctx.env.get("GEMINI_CLI_TRUST_WORKSPACE")
    if ctx.env.get("GEMINI_RESTRICTED_MODE") == "true" or forced == "false":
        return "untrusted"
    if forced == "true":
        return "trusted"
    settings = _read(gemini_home(ctx) / ".gemini" / "settings.json")
    security = settings.get("security")
    trust = security.get("folderTrust") if isinstance(security, dict) else None
    if isinstance(trust, dict) and trust.get("enabled") is False:
        return "off"
    return trust_rule(_read(trusted_folders_path(ctx)), ctx.project)


def trust_rule(rules: dict[str, Any], folder: Path) -> Trust:
    """What the longest rule in ``rules`` that covers ``folder`` says (Gemini
    CLI's ``isPathTrusted``: a ``TRUST_PARENT`` rule covers its parent folder)."""
    here = Path(os.path.realpath(folder))
    best, level = -1, None
    for rule, value in rules.items():
        covered = Path(rule).parent if value == "TRUST_PARENT" else Path(rule)
        real = Path(os.path.realpath(covered))
        if (here == real or real in here.parents) and len(rule) > best:
            best, level = len(rule), value
    if level == "DO_NOT_TRUST":
        return "untrusted"
    return "trusted" if level in (TRUST_FOLDER, "TRUST_PARENT") else "unknown"


class TrustEntry(JsonEdit):
    """``"<project>": "TRUST_FOLDER"`` in the trusted folders file, added only
    when no rule trusts the project yet and taken out only if still ours."""

    def __init__(self, project: Path) -> None:
        self.project = project
        self.key = str(project)

    def apply(self, data: dict[str, Any], created: list[KeyPath], path: Path) -> str | None:
        state = trust_rule(data, self.project)
        if state == "trusted":
            return None
        current = data.get(self.key)
        if current is not None:
            raise ConfigError(
                f"{path} says {json_kind(current)} {current!r} for {self.key}: change it to "
                f'"{TRUST_FOLDER}" by hand (or in Gemini CLI: /permissions trust) if you trust it; '
                "nothing was written",
                path=str(path),
            )
        data[self.key] = TRUST_FOLDER
        return f"trusted {self.key} for Gemini CLI"

    def revert(self, data: dict[str, Any]) -> str | None:
        if data.get(self.key) != TRUST_FOLDER:
            return None
        del data[self.key]
        return f"removed the trust in {self.key}"


class GeminiTool(McpJsonTool):
    """Google Gemini CLI."""

    name = "gemini"
    title = "Gemini CLI"
    folder = ".gemini"
    file = "settings.json"
    comments = True

    def files(self, scope: str, ctx: Context) -> list[ConfigFile]:
        files = super().files(scope, ctx)
        return files + self.optional_files(scope, ctx) if ctx.trust else files

    def optional_files(self, scope: str, ctx: Context) -> list[ConfigFile]:
        return [JsonFile(trusted_folders_path(ctx), [TrustEntry(ctx.project)], comments=True)]

    def next_steps(self, scope: str, ctx: Context) -> list[str]:
        where = f" in {ctx.project}" if scope == "project" else ""
        steps = [f"start `gemini`{where}: /mcp lists relaybus"]
        hint = trust_hint(ctx)
        return steps + [hint] if hint else steps


def trust_hint(ctx: Context) -> str | None:
    """What to do so that Gemini CLI starts relaybus in ``ctx.project``, or None."""
    try:
        state = folder_trust(ctx)
    except ConfigError as exc:
        return exc.message
    if state in ("trusted", "off"):
        return None
    if state == "untrusted":
        return (
            f"Gemini CLI does not trust {ctx.project} (a DO_NOT_TRUST rule in "
            f"{trusted_folders_path(ctx)}), so it starts no MCP server there and lists relaybus "
            "as Disabled: run /permissions trust in gemini there to use relaybus"
        )
    return (
        f"Gemini CLI starts MCP servers only in trusted folders, and {ctx.project} is not "
        "trusted yet (`gemini mcp list` shows relaybus as Disabled): run "
        '`relaybus install gemini --trust`, or choose "Trust folder" when gemini asks'
    )
