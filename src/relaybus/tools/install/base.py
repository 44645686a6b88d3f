"""The parts every tool's installer shares: who runs the install (:class:`Context`),
a config file and the edits relaybus makes to it (:class:`ConfigFile`,
:class:`JsonFile`, :class:`ServerEntry`), and a coding tool (:class:`Tool`).

An edit knows how to add exactly its part to a parsed document, how to take
exactly that part out again, and how to find it (for ``relaybus doctor``). A
file applies its edits to the text it finds and returns the new text; nothing
here touches the disk (see :mod:`.run`).
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from ...errors import InvalidInput
from .files import ConfigError, JsonStyle, dump_json, json_kind, lookup, parse_json
from .manifest import KeyPath

#: The name of relaybus's MCP server in every tool's config.
SERVER_NAME = "relaybus"
SCOPES = ("local", "project", "user")
#: The entry's environment variables that install owns; others (``RELAYBUS_PROFILE``,
#: ``RELAYBUS_LABEL``…) are the user's and survive a reinstall.
MANAGED_ENV = ("RELAYBUS_TOOL", "RELAYBUS_URL")


def merge_entry(old: Mapping[str, Any], ours: Mapping[str, Any]) -> dict[str, Any]:
    """``old`` with relaybus's fields set to ``ours``: keys the user added stay,
    and so do environment variables outside :data:`MANAGED_ENV`, in their order."""
    merged = dict(old)
    for key, value in ours.items():
        current = old.get(key)
        if key == "env" and isinstance(current, Mapping) and isinstance(value, Mapping):
            env = {
                k: value[k] if k in MANAGED_ENV else v
                for k, v in current.items()
                if k not in MANAGED_ENV or k in value
            }
            env.update({k: v for k, v in value.items() if k not in env})
            merged[key] = env
        else:
            merged[key] = value
    return merged


@dataclass(frozen=True)
class Context:
    """Where an install happens: the home folder, the project folder, the
    environment (``CODEX_HOME``, ``CLAUDE_CONFIG_DIR``…), the relaybus
    executable the tools should start, and the relay server URL, if any."""

    home: Path
    project: Path
    env: Mapping[str, str]
    executable: str
    url: str | None = None
    #: ``install gemini --trust``: also mark the project trusted in Gemini CLI.
    trust: bool = False

    @classmethod
    def create(
        cls,
        *,
        project: Path | None = None,
        env: Mapping[str, str] | None = None,
        executable: str | None = None,
        url: str | None = None,
        trust: bool = False,
    ) -> Context:
        """A context from the environment: ``HOME``, the project (default: the
        current folder, resolved, as ``claude mcp add`` keys it) and the
        installed ``relaybus`` (:func:`relaybus.identity.executable`)."""
        from ...identity import executable as relaybus_executable

        env = dict(os.environ if env is None else env)
        home = Path(env.get("HOME") or os.path.expanduser("~"))
        return cls(
            home=home,
            project=(project or Path.cwd()).resolve(),
            env=env,
            executable=executable or relaybus_executable(),
            url=url,
            trust=trust,
        )

    def env_path(self, variable: str, default: Path) -> Path:
        """The path the environment variable ``variable`` names (a tool's
        ``CODEX_HOME``, ``CLAUDE_CONFIG_DIR``…), else ``default`` (unset or empty)."""
        given = self.env.get(variable)
        return Path(given) if given else default

    def server_env(self, tool: str) -> dict[str, str]:
        """The environment of the MCP server entry: ``RELAYBUS_TOOL`` and, when
        installing against a relay server, ``RELAYBUS_URL`` (never a token)."""
        env = {"RELAYBUS_TOOL": tool}
        if self.url:
            env["RELAYBUS_URL"] = self.url
        return env


@dataclass
class EditOutcome:
    """What applying (or reverting) a file's edits gives: the new ``text`` (None:
    no file), one line per ``changes`` made, and the containers ``created``."""

    text: str | None
    changes: list[str] = field(default_factory=list)
    created: list[KeyPath] = field(default_factory=list)


class ConfigFile(ABC):
    """One config file and relaybus's part of it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @abstractmethod
    def install(self, text: str | None) -> EditOutcome:
        """Add relaybus's part to ``text`` (None: the file does not exist).

        Raises:
            ConfigError: the file is malformed or has a key of the wrong type.
        """

    @abstractmethod
    def uninstall(self, text: str, created: list[KeyPath]) -> EditOutcome:
        """Take relaybus's part out of ``text``, and the ``created`` containers
        that are then empty.

        Raises:
            ConfigError: the file is malformed.
        """

    @abstractmethod
    def parse(self, text: str) -> Any:
        """The file's content as plain Python values (for comparisons).

        Raises:
            ConfigError: the file is malformed.
        """

    def is_empty(self, text: str) -> bool:
        """The file holds nothing (so a file install created can go)."""
        return not self.parse(text)

    def server_entry(self, text: str) -> dict[str, Any] | None:
        """relaybus's MCP server entry in ``text``, if the file has one."""
        return None

    def hook_commands(self, text: str) -> dict[str, list[str]] | None:
        """For a file that holds hooks: event → relaybus hook commands found."""
        return None


class JsonEdit(ABC):
    """One part relaybus adds to a JSON document."""

    @abstractmethod
    def apply(self, data: dict[str, Any], created: list[KeyPath], path: Path) -> str | None:
        """Add the part to ``data``; appends the containers it had to create to
        ``created``. Returns what changed, or None if the part was there already.

        Raises:
            ConfigError: a key on the way holds something other than an object.
        """

    @abstractmethod
    def revert(self, data: dict[str, Any]) -> str | None:
        """Remove the part from ``data``; returns what changed, or None."""


def descend(
    data: dict[str, Any], keys: KeyPath, created: list[KeyPath], path: Path
) -> dict[str, Any]:
    """``data[k1][k2]…``, creating missing objects (recorded in ``created``).

    Raises:
        ConfigError: a key on the way holds something other than an object.
    """
    node = data
    for i, key in enumerate(keys):
        if key not in node:
            node[key] = {}
            created.append(keys[: i + 1])
        child = node[key]
        if not isinstance(child, dict):
            where = " → ".join(keys[: i + 1])
            raise ConfigError(
                f"{path}: {where} holds {json_kind(child)}, not an object: fix it by hand; "
                "nothing was written",
                path=str(path),
            )
        node = child
    return node


class ServerEntry(JsonEdit):
    """The MCP server entry ``value`` under ``keys`` → ``name``.

    Only relaybus's keys are compared and written (see :func:`merge_entry`): a
    key the user added to the entry (``"disabled"``, ``"trust"``) or to its
    environment (``RELAYBUS_PROFILE``) is left alone.
    """

    def __init__(self, keys: KeyPath, value: dict[str, Any], label: str) -> None:
        self.keys = keys
        self.name = SERVER_NAME
        self.value = value
        self.label = label

    def apply(self, data: dict[str, Any], created: list[KeyPath], path: Path) -> str | None:
        box = descend(data, self.keys, created, path)
        old = box.get(self.name)
        if old is not None and not isinstance(old, dict):
            where = " → ".join((*self.keys, self.name))
            raise ConfigError(
                f"{path}: {where} holds {json_kind(old)}, not a server entry: fix or remove it "
                "by hand; nothing was written",
                path=str(path),
            )
        if isinstance(old, dict):
            merged = merge_entry(old, self.value)
            if merged == old:
                return None
            old.update(merged)
            return f"updated {self.label}"
        box[self.name] = dict(self.value)
        return f"added {self.label}"

    def revert(self, data: dict[str, Any]) -> str | None:
        box = lookup(data, self.keys)
        if not isinstance(box, dict) or self.name not in box:
            return None
        del box[self.name]
        return f"removed {self.label}"

    def find(self, data: Mapping[str, Any]) -> dict[str, Any] | None:
        """The entry, if present."""
        entry = lookup(data, (*self.keys, self.name))
        return entry if isinstance(entry, dict) else None


class JsonFile(ConfigFile):
    """A JSON config file and the edits relaybus makes to it.

    ``comments``: the tool reads the file as JSON with comments (Gemini CLI);
    elsewhere a comment is a syntax error, as it is for the tool. Changes are
    made in place (:func:`.jsonc.patch`): comments, escapes and the layout of
    every member relaybus does not touch stay byte for byte, and uninstall
    takes out exactly the text install put in.
    """

    def __init__(self, path: Path, edits: list[JsonEdit], *, comments: bool = False) -> None:
        super().__init__(path)
        self.edits = edits
        self.comments = comments

    def parse(self, text: str) -> dict[str, Any]:
        return parse_json(text, self.path, comments=self.comments)

    def render(self, text: str | None, data: dict[str, Any]) -> str:
        """``text`` changed to hold ``data`` (a new file in the default style)."""
        style = JsonStyle.detect(text)
        if text is None or "\n" not in text.strip():
            return dump_json(data, style)
        from .jsonc import patch

        return patch(text, data, style, comments=self.comments)

    def install(self, text: str | None) -> EditOutcome:
        data = self.parse(text or "")
        created: list[KeyPath] = []
        changes = [c for edit in self.edits if (c := edit.apply(data, created, self.path))]
        if not changes:
            return EditOutcome(text)
        return EditOutcome(self.render(text, data), changes, created)

    def uninstall(self, text: str, created: list[KeyPath]) -> EditOutcome:
        data = self.parse(text)
        changes = [c for edit in self.edits if (c := edit.revert(data))]
        if prune(data, created) and not changes:
            changes.append("removed the empty containers relaybus had added")
        if not changes:
            return EditOutcome(text)
        return EditOutcome(self.render(text, data), changes)

    def server_entry(self, text: str) -> dict[str, Any] | None:
        data = self.parse(text)
        for edit in self.edits:
            if isinstance(edit, ServerEntry):
                return edit.find(data)
        return None


def prune(data: dict[str, Any], created: list[KeyPath]) -> int:
    """Delete the ``created`` containers that are now empty, innermost first;
    returns how many went."""
    removed = 0
    for keys in sorted(created, key=len, reverse=True):
        parent = lookup(data, keys[:-1])
        if isinstance(parent, dict) and parent.get(keys[-1], None) in ({}, []):
            del parent[keys[-1]]
            removed += 1
    return removed


class Tool(ABC):
    """A coding tool relaybus can be installed into."""

    #: The name on the command line (``relaybus install NAME``) and in ``RELAYBUS_TOOL``.
    name: ClassVar[str]
    #: How people call it.
    title: ClassVar[str]
    #: The scopes it has, and the one used when ``--scope`` is not given.
    scopes: ClassVar[tuple[str, ...]]
    default_scope: ClassVar[str]

    def check_scope(self, scope: str | None) -> str:
        """``scope``, or the default one.

        Raises:
            InvalidInput: the tool has no such scope.
        """
        if scope is None:
            return self.default_scope
        if scope not in self.scopes:
            valid = " or ".join(f"--scope {s}" for s in self.scopes)
            raise InvalidInput(
                f"{self.title} has no {scope} scope: use {valid}"
                + (" (the default)" if len(self.scopes) == 1 else ""),
                scope=scope,
                scopes=list(self.scopes),
            )
        return scope

    def server(self, ctx: Context) -> dict[str, Any]:
        """The MCP server entry: stdio, ``relaybus mcp``, ``RELAYBUS_TOOL``."""
        return {"command": ctx.executable, "args": ["mcp"], "env": ctx.server_env(self.name)}

    @abstractmethod
    def files(self, scope: str, ctx: Context) -> list[ConfigFile]:
        """The files an install in ``scope`` changes."""

    def optional_files(self, scope: str, ctx: Context) -> list[ConfigFile]:
        """Files an install changes only when asked to (Gemini CLI's trusted
        folders with ``--trust``); uninstall visits the ones its record lists."""
        return []

    @abstractmethod
    def next_steps(self, scope: str, ctx: Context) -> list[str]:
        """What the user does after installing, one sentence each."""

    def uses_project(self, scope: str) -> bool:
        """Whether ``scope`` depends on the project folder."""
        return scope != "user"


class McpJsonTool(Tool):
    """A tool that reads ``mcpServers`` from ``FOLDER/FILE`` in the project
    (scope ``project``, the default) or in the home folder (scope ``user``)."""

    scopes = ("project", "user")
    default_scope = "project"
    #: The tool's folder (``.cursor``) and its file in there (``mcp.json``).
    folder: ClassVar[str]
    file: ClassVar[str]
    #: Whether the tool reads the file as JSON with comments.
    comments: ClassVar[bool] = False

    def files(self, scope: str, ctx: Context) -> list[ConfigFile]:
        base = ctx.project if scope == "project" else ctx.home
        entry = ServerEntry(("mcpServers",), self.server(ctx), "MCP server relaybus")
        return [JsonFile(base / self.folder / self.file, [entry], comments=self.comments)]
