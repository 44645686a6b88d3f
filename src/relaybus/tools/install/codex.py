"""Codex: the ``[mcp_servers.relaybus]`` table of ``~/.codex/config.toml``, and
the session hooks in ``~/.codex/hooks.json``.

Codex reads MCP servers from ``$CODEX_HOME/config.toml`` (default
``~/.codex``); it has no per-project file for them that works without the
project being trusted, so only the user scope exists. Its hooks
(https://developers.openai.com/codex/hooks; on by default since 0.133, the
``hooks`` feature) take Claude Code's hook JSON, events and ``hooks.json``
layout, so ``relaybus hook EVENT --tool codex`` serves them; Codex runs a new
or changed hook only once the user has trusted it (``/hooks`` in the TUI).

The table is appended as text at the end of the file and taken out the same
way, so every other byte of the file (comments, blank lines, key order) stays
as it was. Each textual edit is checked by parsing the result; where the file
is laid out so that this does not work (an inline ``mcp_servers = {…}``, say)
tomlkit makes the change instead, which also keeps comments.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.items import InlineTable, Table

from .base import SERVER_NAME, ConfigFile, Context, EditOutcome, Tool, merge_entry
from .claude import ClaudeHooks, SettingsFile
from .files import ConfigError, load_toml, parse_toml
from .manifest import KeyPath

_HEADER = re.compile(
    r"^[ \t]*\[[ \t]*mcp_servers[ \t]*\.[ \t]*\"?relaybus\"?[ \t]*\][ \t]*(#.*)?\r?$", re.MULTILINE
)
_ANY_HEADER = re.compile(r"^[ \t]*\[")
#: The environment variables Codex forwards to ``relaybus mcp`` (``env_vars``). Codex
#: starts MCP servers with a filtered environment (``HOME``, ``PATH``, ``TMPDIR``…) but
#: its hooks with all of it: without these the session's MCP server and its hooks
#: would find different relays, agent ids or hook sockets (``XDG_RUNTIME_DIR``).
FORWARDED_ENV = (
    "RELAYBUS_DIR",
    "RELAYBUS_DATABASE",
    "RELAYBUS_URL",
    "RELAYBUS_TOKEN",
    "RELAYBUS_WORKSPACE",
    "RELAYBUS_DAEMON",
    "RELAYBUS_TMPDIR",
    "RELAYBUS_SESSION",
    "RELAYBUS_AGENT",
    "RELAYBUS_PROFILE",
    "RELAYBUS_LABEL",
    "RELAYBUS_TAGS",
    "RELAYBUS_CAPS",
    "RELAYBUS_CHANNELS",
    "RELAYBUS_AUTO_TAGS",
    "RELAYBUS_AUTO_CAPS",
    "XDG_RUNTIME_DIR",
    "XDG_CONFIG_HOME",
    "XDG_STATE_HOME",
)
#: The hooks relaybus installs for Codex: Claude Code's, without a matcher (Codex
#: matchers are regular expressions; none matches every tool).
HOOK_EVENTS: tuple[tuple[str, str, str | None], ...] = (
    ("SessionStart", "session-start", None),
    ("UserPromptSubmit", "user-prompt-submit", None),
    ("PostToolUse", "post-tool-use", None),
    ("Stop", "stop", None),
    ("SessionEnd", "session-end", None),
)


def _inline(value: Any) -> Any:
    """``value`` as a TOML item, a table written inline (``env = {A = "b"}``)."""
    if isinstance(value, dict):
        table = tomlkit.inline_table()
        table.update(value)
        return table
    return tomlkit.item(value)


def render_table(value: dict[str, Any]) -> str:
    """``[mcp_servers.relaybus]`` with one ``key = value`` line per field."""
    lines = [f"[mcp_servers.{SERVER_NAME}]"]
    lines += [f"{key} = {_inline(field).as_string()}" for key, field in value.items()]
    return "\n".join(lines) + "\n"


class CodexConfig(ConfigFile):
    """``config.toml`` and its ``[mcp_servers.relaybus]`` table."""

    def __init__(self, path: Path, value: dict[str, Any]) -> None:
        super().__init__(path)
        self.value = value

    def parse(self, text: str) -> dict[str, Any]:
        return parse_toml(text, self.path).unwrap()

    def server_entry(self, text: str) -> dict[str, Any] | None:
        servers = self.parse(text).get("mcp_servers")
        entry = servers.get(SERVER_NAME) if isinstance(servers, dict) else None
        return entry if isinstance(entry, dict) else None

    def _servers(self, doc: tomlkit.TOMLDocument) -> Any:
        servers = doc.get("mcp_servers")
        if servers is not None and not isinstance(servers, dict):
            raise ConfigError(
                f"{self.path}: mcp_servers is not a table: fix it by hand; nothing was written",
                path=str(self.path),
            )
        return servers

    def install(self, text: str | None) -> EditOutcome:
        base = text or ""
        doc = parse_toml(base, self.path)
        servers = self._servers(doc)
        current = servers.get(SERVER_NAME) if servers is not None else None
        if current is not None:
            if not isinstance(current, Table | InlineTable):
                raise ConfigError(
                    f"{self.path}: mcp_servers.relaybus is not a table: fix or remove it by "
                    "hand; nothing was written",
                    path=str(self.path),
                )
            plain = current.unwrap()
            merged = merge_entry(plain, self.value)
            if merged == plain:
                return EditOutcome(text)
            for key in self.value:
                current[key] = _inline(merged[key])
            return EditOutcome(tomlkit.dumps(doc), ["updated MCP server relaybus"])
        expected = doc.unwrap()
        expected.setdefault("mcp_servers", {})[SERVER_NAME] = self.value
        new = base + _separator(base) + render_table(self.value)
        if _loads_or_none(new) != expected:
            if servers is None:
                doc["mcp_servers"] = tomlkit.table(is_super_table=True)
            doc["mcp_servers"][SERVER_NAME] = self.value
            new = tomlkit.dumps(doc)
        return EditOutcome(new, ["added MCP server relaybus"])

    def uninstall(self, text: str, created: list[KeyPath]) -> EditOutcome:
        doc = parse_toml(text, self.path)
        servers = self._servers(doc)
        if servers is None or SERVER_NAME not in servers:
            return EditOutcome(text)
        expected = doc.unwrap()
        del expected["mcp_servers"][SERVER_NAME]
        new = _cut_table(text)
        if new is None or _without_empty_servers(_loads_or_none(new)) != _without_empty_servers(
            expected
        ):
            del servers[SERVER_NAME]
            if not servers and isinstance(servers, Table) and servers.is_super_table():
                del doc["mcp_servers"]
            new = tomlkit.dumps(doc)
        return EditOutcome(new, ["removed MCP server relaybus"])

    def is_empty(self, text: str) -> bool:
        return not text.strip()


def _separator(text: str) -> str:
    """What goes between the existing text and the appended table: a blank line."""
    if not text.strip():
        return ""
    if text.endswith("\n\n"):
        return ""
    return "\n" if text.endswith("\n") else "\n\n"


def _cut_table(text: str) -> str | None:
    """``text`` without the ``[mcp_servers.relaybus]`` header and its key lines
    (up to the first blank line, comment or header), and without the blank line
    that install put before it. None if there is no such header."""
    found = _HEADER.search(text)
    if found is None:
        return None
    start = found.start()
    end = found.end()
    lines = text[end:].splitlines(keepends=True)
    if lines and lines[0].strip() == "":  # the rest of the header line
        end += len(lines.pop(0))
    for line in lines:
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or _ANY_HEADER.match(line):
            break
        end += len(line)
    before, after = text[:start], text[end:]
    if before.endswith("\n\n") and (not after or after.startswith(("\n", "\r\n"))):
        before = before[:-1]
    elif before.endswith("\r\n\r\n") and (not after or after.startswith("\r\n")):
        before = before[:-2]
    return before + after


def _loads_or_none(text: str) -> dict[str, Any] | None:
    try:
        return load_toml(text)
    except ValueError:  # tomllib.TOMLDecodeError
        return None


def _without_empty_servers(data: dict[str, Any] | None) -> dict[str, Any] | None:
    if data is not None and data.get("mcp_servers") == {}:
        return {k: v for k, v in data.items() if k != "mcp_servers"}
    return data


def codex_home(ctx: Context) -> Path:
    """``CODEX_HOME``, default ``~/.codex``."""
    return ctx.env_path("CODEX_HOME", ctx.home / ".codex")


class CodexTool(Tool):
    """OpenAI Codex CLI."""

    name = "codex"
    title = "Codex"
    scopes = ("user",)
    default_scope = "user"

    def server(self, ctx: Context) -> dict[str, Any]:
        """The MCP server entry, with ``env_vars`` (:data:`FORWARDED_ENV` less the
        variables ``env`` sets)."""
        entry = super().server(ctx)
        entry["env_vars"] = [name for name in FORWARDED_ENV if name not in entry["env"]]
        return entry

    def files(self, scope: str, ctx: Context) -> list[ConfigFile]:
        home = codex_home(ctx)
        hooks = ClaudeHooks(ctx.executable, tool=self.name, events=HOOK_EVENTS)
        return [
            CodexConfig(home / "config.toml", self.server(ctx)),
            SettingsFile(home / "hooks.json", hooks),
        ]

    def next_steps(self, scope: str, ctx: Context) -> list[str]:
        return [
            "start a new Codex session (`codex`): /mcp lists relaybus",
            "Codex runs new hooks only once you trust them: open /hooks in Codex and trust "
            "relaybus's (they register the session and hand it its messages); until then "
            "the session registers on its first relaybus tool call",
        ]
