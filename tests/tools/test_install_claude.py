"""relaybus install/uninstall claude: the MCP server where Claude Code keeps each
scope, the five hooks, and round trips that leave every other byte alone."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from relaybus.errors import InvalidInput
from relaybus.tools.install import TOOLS, ConfigError, install, uninstall
from relaybus.tools.install.claude import HOOK_EVENTS
from tests.tools.setuputil import RELAYBUS, Home, changed
from tests.tools.setuputil import home_fixture as home_fixture  # noqa: F401  (the home fixture)

CLAUDE = TOOLS["claude"]
SERVER = {"type": "stdio", "command": RELAYBUS, "args": ["mcp"], "env": {"RELAYBUS_TOOL": "claude"}}
PRETTIER = 'npx prettier --write "$CLAUDE_FILE_PATHS"'


def claude_json(project: Path) -> str:
    """A ~/.claude.json as Claude Code writes it (JSON.stringify, 2 spaces, no
    final newline), with a user server, another project and this project."""
    key = json.dumps(str(project))
    return (
        "{\n"
        '  "numStartups": 12,\n'
        '  "theme": "dark",\n'
        '  "lastCost": 0.00005,\n'
        '  "mcpServers": {\n'
        '    "github": {\n'
        '      "type": "stdio",\n'
        '      "command": "npx",\n'
        '      "args": [\n'
        '        "-y",\n'
        '        "@modelcontextprotocol/server-github"\n'
        "      ],\n"
        '      "env": {}\n'
        "    }\n"
        "  },\n"
        '  "projects": {\n'
        '    "/elsewhere": {\n'
        '      "allowedTools": [],\n'
        '      "mcpServers": {}\n'
        "    },\n"
        f"    {key}: {{\n"
        '      "allowedTools": [\n'
        '        "Bash(git status)"\n'
        "      ],\n"
        '      "mcpServers": {\n'
        '        "sentry": {\n'
        '          "type": "http",\n'
        '          "url": "https://mcp.sentry.dev/mcp"\n'
        "        }\n"
        "      }\n"
        "    }\n"
        "  }\n"
        "}"
    )


SETTINGS: dict[str, Any] = {
    "permissions": {"allow": ["Bash(npm test)"]},
    "hooks": {
        "PostToolUse": [
            {"matcher": "Edit|Write", "hooks": [{"type": "command", "command": PRETTIER}]}
        ],
        "Notification": [{"hooks": [{"type": "command", "command": "notify-send claude"}]}],
    },
}


def hooked(settings: dict[str, Any], executable: str = RELAYBUS) -> dict[str, list[str]]:
    """Event → every hook command in ``settings``."""
    return {
        event: [h["command"] for group in groups for h in group["hooks"]]
        for event, groups in settings["hooks"].items()
    }


@pytest.fixture
def existing(home: Home) -> Home:
    """A home where Claude Code is set up already: other servers, projects, hooks."""
    home.write("home/.claude.json", claude_json(home.project))
    home.write("home/src/app/.claude/settings.local.json", json.dumps(SETTINGS, indent=2) + "\n")
    return home


def test_dry_run_prints_a_diff_of_each_file_and_writes_nothing(existing: Home) -> None:
    before = existing.tree()
    result = existing("install claude --dry-run")

    assert result.code == 0, result
    assert existing.tree() == before
    assert not existing.state.exists()
    out = result.out
    assert f"--- a{existing.home}/.claude.json\n+++ b{existing.home}/.claude.json\n" in out
    assert f'+          "command": "{RELAYBUS}",\n' in out
    assert f'"command": "{RELAYBUS} hook stop",' in out
    assert out.endswith("dry run: nothing written; 2 file(s) would change\n")


def test_local_install_merges_is_idempotent_and_uninstall_gives_back_every_byte(
    existing: Home,
) -> None:
    before = existing.tree()
    original = existing.read("home/.claude.json")
    first = existing("install claude")
    installed = existing.tree()
    again = existing("install claude")
    after_again = existing.tree()
    removed = existing("uninstall claude")

    assert first.code == 0, first
    config = json.loads(installed["home/.claude.json"])
    settings_path = "home/src/app/.claude/settings.local.json"
    settings = json.loads(installed[settings_path])
    assert changed(before, installed) == {"home/.claude.json", settings_path}
    expected = json.loads(original)
    expected["projects"][str(existing.project)]["mcpServers"]["relaybus"] = SERVER
    assert config == expected
    text = installed["home/.claude.json"].decode()
    assert '"lastCost": 0.00005' in text and not text.endswith("\n")  # its own style
    assert settings["permissions"] == SETTINGS["permissions"]
    commands = hooked(settings)
    assert commands["Notification"] == ["notify-send claude"]
    assert commands["PostToolUse"] == [PRETTIER, f"{RELAYBUS} hook post-tool-use"]
    for event, argument, matcher in HOOK_EVENTS:
        group = settings["hooks"][event][-1]
        assert group.get("matcher") == matcher
        assert group["hooks"] == [
            {"type": "command", "command": f"{RELAYBUS} hook {argument}", "timeout": 10}
        ]
    lines = first.out.splitlines()
    assert lines[0].startswith(
        f"updated {existing.home}/.claude.json: added MCP server relaybus for {existing.project}"
        f" (backup: {existing.state}/backups/"
    )
    backup = Path(lines[0].split("(backup: ")[1].rstrip(")"))
    assert backup.read_text(encoding="utf-8") == original
    assert lines[1].startswith(f"updated {existing.root / settings_path}: added hooks ")
    assert any(
        line.startswith(f"next: start a new Claude Code session in {existing.project}")
        for line in lines
    )

    assert again.code == 0, again
    assert after_again == installed
    assert "relaybus is already installed for Claude Code (local scope): nothing changed" in (
        again.out
    )

    assert removed.code == 0, removed
    assert existing.tree() == before
    assert "original bytes restored" in removed.out


def test_uninstall_keeps_what_changed_since_install_and_its_layout(home: Home) -> None:
    original = claude_json(home.project)
    home.write("home/.claude.json", original)
    ctx = home.context()
    install(CLAUDE, ctx)
    # Claude Code rewrites its config while running; the user adds a hook of their own.
    text = home.read("home/.claude.json").replace('"numStartups": 12', '"numStartups": 13')
    home.write("home/.claude.json", text)
    settings_path = "home/src/app/.claude/settings.local.json"
    settings = home.load(settings_path)
    mine = {"hooks": [{"type": "command", "command": "say done"}]}
    settings["hooks"]["Stop"].append(mine)
    home.write(settings_path, json.dumps(settings, indent=2) + "\n")

    report = uninstall(CLAUDE, ctx)

    assert [f.action for f in report.files] == ["updated", "updated"]
    assert home.read("home/.claude.json") == original.replace(
        '"numStartups": 12', '"numStartups": 13'
    )
    assert home.load(settings_path) == {"hooks": {"Stop": [mine]}}


def test_project_scope_writes_mcp_json_and_tells_about_the_approval_step(home: Home) -> None:
    mcp = {"mcpServers": {"db": {"command": "pg-mcp", "args": []}}}
    home.write("home/src/app/.mcp.json", json.dumps(mcp, indent=2) + "\n")
    before = home.tree()
    added = home("install claude --scope project")
    installed = home.tree()
    removed = home("uninstall claude")  # the one scope it was installed in

    assert added.code == 0, added
    assert changed(before, installed) == {
        "home/src/app/.mcp.json",
        "home/src/app/.claude/",
        "home/src/app/.claude/settings.json",
    }
    written = json.loads(installed["home/src/app/.mcp.json"])
    assert written == {"mcpServers": {**mcp["mcpServers"], "relaybus": SERVER}}
    assert set(json.loads(installed["home/src/app/.claude/settings.json"])["hooks"]) == {
        event for event, _, _ in HOOK_EVENTS
    }
    assert "accept relaybus when asked (or approve it in /mcp)" in added.out
    assert f"start `claude` in {home.project}" in added.out
    assert removed.code == 0, removed
    assert home.tree() == before


def test_user_scope_adds_the_top_level_server_and_the_user_hooks(existing: Home) -> None:
    before = existing.tree()
    report = install(CLAUDE, existing.context(), scope="user")
    config = existing.load("home/.claude.json")
    settings = existing.load("home/.claude/settings.json")
    uninstall(CLAUDE, existing.context(), scope="user")

    assert [f.action for f in report.files] == ["updated", "created"]
    assert config["mcpServers"] == {
        **json.loads(claude_json(existing.project))["mcpServers"],
        "relaybus": SERVER,
    }
    assert "relaybus" not in config["projects"][str(existing.project)]["mcpServers"]
    assert hooked(settings)["SessionEnd"] == [f"{RELAYBUS} hook session-end"]
    assert existing.tree() == before


def test_a_malformed_config_is_one_line_on_stderr_and_nothing_is_written(home: Home) -> None:
    home.write("home/.claude.json", '{"projects": {')
    before = home.tree()
    result = home("install claude")

    assert result.code == 2, result
    assert result.out == ""
    assert result.err.splitlines() == [
        f"relaybus: error: {home.home}/.claude.json is not valid JSON (line 1, column 15: "
        "Expecting property name enclosed in double quotes); fix it by hand and run the "
        "command again: nothing was written"
    ]
    assert home.tree() == before
    assert not home.state.exists()


def test_a_key_of_the_wrong_type_is_refused_before_any_file_changes(home: Home) -> None:
    home.write("home/.claude.json", '{"mcpServers": []}')
    before = home.tree()

    with pytest.raises(ConfigError, match=r"mcpServers holds an array, not an object"):
        install(CLAUDE, home.context(), scope="user")
    assert home.tree() == before


def test_the_relay_url_goes_into_the_entry_and_the_token_never_does(home: Home) -> None:
    secret = "rb_secret_token_value"
    env = {"RELAYBUS_URL": "http://127.0.0.1:4999", "RELAYBUS_TOKEN": secret}
    result = home("install claude", env=env)

    assert result.code == 0, result
    entry = home.load("home/.claude.json")["projects"][str(home.project)]["mcpServers"]["relaybus"]
    assert entry["env"] == {"RELAYBUS_TOOL": "claude", "RELAYBUS_URL": "http://127.0.0.1:4999"}
    for folder, _, files in os.walk(home.root):
        for name in files:
            assert secret.encode() not in Path(folder, name).read_bytes(), name


def test_an_install_from_another_path_updates_entry_and_hooks_in_place(
    existing: Home, tmp_path: Path
) -> None:
    other = tmp_path / "other" / "bin" / "relaybus"
    other.parent.mkdir(parents=True)
    other.write_text("#!/bin/sh\n", encoding="utf-8")
    other.chmod(0o755)
    before = existing.tree()
    install(CLAUDE, existing.context())
    moved = install(CLAUDE, existing.context(executable=str(other)))
    settings = existing.load("home/src/app/.claude/settings.local.json")
    config = existing.load("home/.claude.json")
    uninstall(CLAUDE, existing.context(executable=str(other)))

    assert moved.files[0].changes == [f"updated MCP server relaybus for {existing.project}"]
    assert moved.files[1].changes == [
        "updated hooks SessionStart, UserPromptSubmit, PostToolUse, Stop, SessionEnd, PreToolUse"
    ]
    entry = config["projects"][str(existing.project)]["mcpServers"]["relaybus"]
    assert entry["command"] == str(other)
    commands = hooked(settings)
    assert commands["PostToolUse"] == [PRETTIER, f"{other} hook post-tool-use"]
    assert commands["Stop"] == [f"{other} hook stop"]
    assert existing.tree() == before


def test_uninstall_without_a_record_still_removes_only_relaybus(existing: Home) -> None:
    install(CLAUDE, existing.context())
    for path in sorted(existing.state.rglob("*"), reverse=True):  # the state folder is lost
        path.unlink() if path.is_file() else path.rmdir()
    report = uninstall(CLAUDE, existing.context())
    settings = existing.load("home/src/app/.claude/settings.local.json")

    assert [f.action for f in report.files] == ["updated", "updated"]
    assert existing.load("home/.claude.json") == json.loads(claude_json(existing.project))
    assert hooked(settings)["PostToolUse"] == [PRETTIER]
    # Without the record it cannot tell which emptied arrays it made, so it keeps them.
    assert settings["hooks"]["Stop"] == []


def test_claude_config_dir_holds_claude_json_and_the_user_settings(home: Home) -> None:
    alt = home.home / "alt-claude"
    env = {**home.env, "CLAUDE_CONFIG_DIR": str(alt)}
    ctx = home.context()
    ctx = type(ctx).create(project=home.project, env=env, executable=RELAYBUS)
    install(CLAUDE, ctx, scope="user")

    assert json.loads((alt / ".claude.json").read_text("utf-8"))["mcpServers"]["relaybus"] == (
        SERVER
    )
    assert (alt / "settings.json").is_file()
    assert not (home.home / ".claude.json").exists()


def test_a_symlinked_config_is_written_through_and_stays_a_link(existing: Home) -> None:
    dotfiles = existing.home / "dotfiles" / "claude.json"
    dotfiles.parent.mkdir()
    link = existing.home / ".claude.json"
    link.rename(dotfiles)
    link.symlink_to(dotfiles)
    install(CLAUDE, existing.context())

    assert link.is_symlink()
    assert (
        "relaybus"
        in json.loads(dotfiles.read_text("utf-8"))["projects"][str(existing.project)]["mcpServers"]
    )


def test_install_refuses_when_the_relaybus_command_is_missing(home: Home) -> None:
    before = home.tree()

    with pytest.raises(InvalidInput, match=r"the relaybus command is not at /nowhere/relaybus"):
        install(CLAUDE, home.context(executable="/nowhere/relaybus"))
    assert home.tree() == before


def python_written_claude_json(project: Path) -> str:
    """A ~/.claude.json as Python's json.dumps(indent=4) writes it: 4 spaces,
    non-ASCII text as \\u escapes, this project already known to Claude Code."""
    data = {
        "userName": "Ren\u00e9 Fran\u00e7ois",
        "numStartups": 3,
        "projects": {
            str(project): {"allowedTools": ["Bash(caf\u00e9)"], "mcpServers": {}},
            "/elsewhere": {"allowedTools": []},
        },
    }
    return json.dumps(data, indent=4)


@pytest.mark.parametrize(
    ("installs", "uninstalls"),
    [
        (["user", "local"], ["user", "local"]),
        (["user", "local"], ["local", "user"]),
        (["local", "user"], ["user", "local"]),
        (["local", "user", "project"], ["project", "user", "local"]),
        (["project", "local", "user"], ["local", "project", "user"]),
    ],
)
def test_uninstall_in_any_order_of_scopes_gives_back_every_byte(
    home: Home, installs: list[str], uninstalls: list[str]
) -> None:
    text = python_written_claude_json(home.project)
    assert "\\u00e9" in text and '\n    "numStartups"' in text
    home.write("home/.claude.json", text)
    home.write("home/.claude/settings.json", '{\n    "model": "opus"\n}\n')
    before = home.tree()

    for scope in installs:
        install(CLAUDE, home.context(), scope=scope)
    installed = home.read("home/.claude.json")
    for scope in uninstalls:
        uninstall(CLAUDE, home.context(), scope=scope)

    assert "\\u00e9" in installed and "é" not in installed
    assert home.tree() == before
