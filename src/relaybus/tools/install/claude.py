"""Claude Code: the MCP server in the scope's own file, and the session hooks.

Where Claude Code keeps each scope (``claude mcp add --scope …``; Claude Code
docs, "MCP installation scopes" and "Hooks" → "Configuration"):

===========  ==============================================  ==================================
scope        MCP server                                      hooks
===========  ==============================================  ==================================
local        ``~/.claude.json`` → projects → DIR → mcpServers  ``DIR/.claude/settings.local.json``
project      ``DIR/.mcp.json`` → mcpServers                  ``DIR/.claude/settings.json``
user         ``~/.claude.json`` → mcpServers                 ``~/.claude/settings.json``
===========  ==============================================  ==================================

Local is the default, as in ``claude mcp add``: Claude Code connects those
servers at once, while servers from a project's ``.mcp.json`` wait until the
user approves them. ``CLAUDE_CONFIG_DIR``, when set, holds ``.claude.json``
and ``settings.json`` instead of the home folder and ``~/.claude``.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Any, Literal

from .base import ConfigFile, Context, JsonEdit, JsonFile, ServerEntry, Tool, descend
from .files import ConfigError, json_kind, lookup, parse_json, read_text
from .manifest import KeyPath

#: The hooks relaybus installs: (Claude Code event, ``relaybus hook`` argument, matcher).
HOOK_EVENTS: tuple[tuple[str, str, str | None], ...] = (
    ("SessionStart", "session-start", None),
    ("UserPromptSubmit", "user-prompt-submit", None),
    ("PostToolUse", "post-tool-use", "*"),
    ("Stop", "stop", None),
    ("SessionEnd", "session-end", None),
    # The approval gate (tools/hooks/gate.py): before every tool call.
    ("PreToolUse", "pre-tool-use", "*"),
)
#: Seconds Claude Code gives a hook command before it cancels it.
HOOK_TIMEOUT = 10


def is_relaybus_hook(command: object, argument: str, tool: str | None = None) -> bool:
    """Whether ``command`` is ``<path>/relaybus hook ARGUMENT`` (any install's path),
    followed by ``--tool TOOL`` when ``tool`` is given."""
    if not isinstance(command, str):
        return False
    try:
        argv = shlex.split(command)
    except ValueError:
        return False
    if not argv or os.path.basename(argv[0]) != "relaybus":
        return False
    return argv[1:] == ["hook", argument, *(["--tool", tool] if tool else [])]


class ClaudeHooks(JsonEdit):
    """One matcher group per event, ``{"hooks": [{"type": "command", "command":
    "<relaybus> hook <event>", "timeout": 10}]}``, appended to the event's array.

    Hooks are recognised by their command, so an install from another
    relaybus path is updated in place and never doubled; other hooks are
    never touched. Codex's ``hooks.json`` has the same layout: ``tool`` adds
    ``--tool TOOL`` to the commands, ``events`` names the events and matchers.
    """

    def __init__(
        self,
        executable: str,
        *,
        tool: str | None = None,
        events: tuple[tuple[str, str, str | None], ...] = HOOK_EVENTS,
    ) -> None:
        self.prefix = shlex.quote(executable)
        self.tool = tool
        self.events = events

    def hook(self, argument: str) -> dict[str, Any]:
        """The hook entry for ``relaybus hook ARGUMENT [--tool TOOL]``."""
        command = f"{self.prefix} hook {argument}" + (f" --tool {self.tool}" if self.tool else "")
        return {"type": "command", "command": command, "timeout": HOOK_TIMEOUT}

    def ours(self, command: object, argument: str) -> bool:
        """Whether ``command`` is this edit's ``relaybus hook ARGUMENT``."""
        return is_relaybus_hook(command, argument, self.tool)

    def apply(self, data: dict[str, Any], created: list[KeyPath], path: Path) -> str | None:
        hooks = descend(data, ("hooks",), created, path)
        added, updated = [], []
        for event, argument, matcher in self.events:
            if event not in hooks:
                hooks[event] = []
                created.append(("hooks", event))
            groups = hooks[event]
            if not isinstance(groups, list):
                raise ConfigError(
                    f"{path}: hooks → {event} holds {json_kind(groups)}, not an array: fix it "
                    "by hand; nothing was written",
                    path=str(path),
                )
            want = self.hook(argument)
            found = False
            for items in _hook_lists(groups):
                for i, item in enumerate(items):
                    if isinstance(item, dict) and self.ours(item.get("command"), argument):
                        found = True
                        if item != want:
                            items[i] = want
                            updated.append(event)
            if not found:
                group: dict[str, Any] = {"matcher": matcher} if matcher else {}
                group["hooks"] = [want]
                groups.append(group)
                added.append(event)
        parts = []
        if added:
            parts.append(f"added hooks {', '.join(added)}")
        if updated:
            parts.append(f"updated hooks {', '.join(dict.fromkeys(updated))}")
        return "; ".join(parts) or None

    def revert(self, data: dict[str, Any]) -> str | None:
        hooks = data.get("hooks")
        if not isinstance(hooks, dict):
            return None
        removed = []
        for event, argument, _ in self.events:
            groups = hooks.get(event)
            if not isinstance(groups, list):
                continue
            kept_groups = []
            for group in groups:
                items = group.get("hooks") if isinstance(group, dict) else None
                if not isinstance(items, list):
                    kept_groups.append(group)
                    continue
                kept = [
                    h
                    for h in items
                    if not (isinstance(h, dict) and self.ours(h.get("command"), argument))
                ]
                if len(kept) == len(items):
                    kept_groups.append(group)
                    continue
                removed.append(event)
                if kept:
                    group["hooks"] = kept
                    kept_groups.append(group)
            groups[:] = kept_groups
        if not removed:
            return None
        return f"removed hooks {', '.join(dict.fromkeys(removed))}"

    def found(self, data: dict[str, Any]) -> dict[str, list[str]]:
        """Event → the relaybus hook commands it has."""
        hooks = data.get("hooks")
        found: dict[str, list[str]] = {}
        for event, argument, _ in self.events:
            groups = hooks.get(event) if isinstance(hooks, dict) else None
            commands = [
                item["command"]
                for items in _hook_lists(groups if isinstance(groups, list) else [])
                for item in items
                if isinstance(item, dict) and self.ours(item.get("command"), argument)
            ]
            found[event] = commands
        return found


def _hook_lists(groups: list[Any]) -> list[list[Any]]:
    return [g["hooks"] for g in groups if isinstance(g, dict) and isinstance(g.get("hooks"), list)]


class SettingsFile(JsonFile):
    """A Claude Code settings file with relaybus's hooks."""

    def __init__(self, path: Path, hooks: ClaudeHooks) -> None:
        super().__init__(path, [hooks])
        self.hooks = hooks

    def hook_commands(self, text: str) -> dict[str, list[str]] | None:
        return self.hooks.found(self.parse(text))

    def other_hooks(self, text: str) -> list[tuple[str, str]]:
        """(event, command) of every command hook in ``text`` that is not relaybus's."""
        hooks = self.parse(text).get("hooks")
        if not isinstance(hooks, dict):
            return []
        ours = {(event, argument) for event, argument, _ in self.hooks.events}
        found = []
        for event, groups in hooks.items():
            for items in _hook_lists(groups if isinstance(groups, list) else []):
                for item in items:
                    command = item.get("command") if isinstance(item, dict) else None
                    if not isinstance(command, str) or any(
                        e == event and self.hooks.ours(command, a) for e, a in ours
                    ):
                        continue
                    found.append((event, command))
        return found


def config_home(ctx: Context) -> Path:
    """Where ``.claude.json`` lives: ``CLAUDE_CONFIG_DIR``, else the home folder."""
    return ctx.env_path("CLAUDE_CONFIG_DIR", ctx.home)


def settings_home(ctx: Context) -> Path:
    """Where the user's ``settings.json`` lives: ``CLAUDE_CONFIG_DIR``, else ``~/.claude``."""
    return ctx.env_path("CLAUDE_CONFIG_DIR", ctx.home / ".claude")


class ClaudeTool(Tool):
    """Claude Code."""

    name = "claude"
    title = "Claude Code"
    scopes = ("local", "project", "user")
    default_scope = "local"

    def server(self, ctx: Context) -> dict[str, Any]:
        return {"type": "stdio", **super().server(ctx)}

    def files(self, scope: str, ctx: Context) -> list[ConfigFile]:
        server = self.server(ctx)
        hooks = ClaudeHooks(ctx.executable)
        project = ctx.project
        if scope == "local":
            label = f"MCP server relaybus for {project}"
            keys: KeyPath = ("projects", str(project), "mcpServers")
            mcp = JsonFile(config_home(ctx) / ".claude.json", [ServerEntry(keys, server, label)])
            settings = project / ".claude" / "settings.local.json"
        elif scope == "project":
            entry = ServerEntry(("mcpServers",), server, "MCP server relaybus")
            mcp = JsonFile(project / ".mcp.json", [entry])
            settings = project / ".claude" / "settings.json"
        else:
            entry = ServerEntry(("mcpServers",), server, "MCP server relaybus (all projects)")
            mcp = JsonFile(config_home(ctx) / ".claude.json", [entry])
            settings = settings_home(ctx) / "settings.json"
        return [mcp, SettingsFile(settings, hooks)]

    def next_steps(self, scope: str, ctx: Context) -> list[str]:
        if scope == "project":
            return [
                f"Claude Code asks before it connects servers from a project's .mcp.json: start "
                f"`claude` in {ctx.project} and accept relaybus when asked (or approve it in "
                "/mcp); the hooks run from then on",
                f"commit .mcp.json and .claude/settings.json to share them: they start "
                f"{ctx.executable}, so teammates need relaybus at that path (or run "
                "`relaybus install claude` themselves)",
            ]
        where = f"in {ctx.project}" if scope == "local" else "in any project"
        return [
            f"start a new Claude Code session {where} (`claude`): relaybus connects at start "
            "(see /mcp) and the hooks deliver messages"
        ]


Approval = Literal["approved", "declined", "pending"]


def project_approval(ctx: Context) -> Approval:
    """Whether the user approved relaybus from the project's ``.mcp.json``.

    Claude Code records the choice in the settings files
    (``enabledMcpjsonServers``, ``disabledMcpjsonServers``,
    ``enableAllProjectMcpServers``) or, in older versions, under the
    project in ``~/.claude.json``.
    """
    places: list[dict[str, Any]] = []
    for path in (
        settings_home(ctx) / "settings.json",
        ctx.project / ".claude" / "settings.json",
        ctx.project / ".claude" / "settings.local.json",
    ):
        places.append(_read_object(path))
    claude_json = _read_object(config_home(ctx) / ".claude.json")
    project = lookup(claude_json, ("projects", str(ctx.project)))
    if isinstance(project, dict):
        places.append(project)
    for place in places:
        declined = place.get("disabledMcpjsonServers")
        if isinstance(declined, list) and "relaybus" in declined:
            return "declined"
    for place in places:
        enabled = place.get("enabledMcpjsonServers")
        if place.get("enableAllProjectMcpServers") is True or (
            isinstance(enabled, list) and "relaybus" in enabled
        ):
            return "approved"
    return "pending"


def _read_object(path: Path) -> dict[str, Any]:
    try:
        text = read_text(path)
        return parse_json(text, path) if text else {}
    except (ConfigError, OSError):
        return {}  # the doctor reports unreadable files where it checks them
