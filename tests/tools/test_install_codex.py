"""relaybus install/uninstall codex: ``[mcp_servers.relaybus]`` in
``$CODEX_HOME/config.toml``, with comments and layout of the rest kept, and
the session hooks in ``$CODEX_HOME/hooks.json``."""

from __future__ import annotations

import json
import tomllib

import pytest

from relaybus.tools.install import TOOLS, ConfigError, install, uninstall
from relaybus.tools.install.codex import FORWARDED_ENV
from tests.tools.setuputil import RELAYBUS, Home, changed
from tests.tools.setuputil import home_fixture as home_fixture  # noqa: F401  (the home fixture)

CODEX = TOOLS["codex"]
CONFIG = "home/.codex/config.toml"
HOOKS = "home/.codex/hooks.json"
EVENTS = {
    "SessionStart": "session-start",
    "UserPromptSubmit": "user-prompt-submit",
    "PostToolUse": "post-tool-use",
    "Stop": "stop",
    "SessionEnd": "session-end",
}

ORIGINAL = """\
# Codex settings
model = "o3"  # the default model
approval_policy = "on-request"

[mcp_servers.github]
command = "npx"
args = ["-y", "@modelcontextprotocol/server-github"]
env = { GITHUB_TOKEN = "ghp_example" }

# a profile for quick questions
[profiles.fast]
model = "o4-mini"
"""

TABLE = f"""\
[mcp_servers.relaybus]
command = "{RELAYBUS}"
args = ["mcp"]
env = {{RELAYBUS_TOOL = "codex"}}
env_vars = [{", ".join(f'"{name}"' for name in FORWARDED_ENV)}]
"""


def test_install_appends_the_table_reinstall_changes_nothing_and_uninstall_restores(
    home: Home,
) -> None:
    home.write(CONFIG, ORIGINAL)
    before = home.tree()
    first = home("install codex")
    installed = home.tree()
    again = home("install codex")
    after_again = home.tree()
    preview = home("uninstall codex --dry-run")
    previewed = home.tree()
    removed = home("uninstall codex")

    assert first.code == 0, first
    assert changed(before, installed) == {CONFIG, HOOKS}
    assert installed[CONFIG].decode() == ORIGINAL + "\n" + TABLE
    servers = tomllib.loads(installed[CONFIG].decode())["mcp_servers"]
    assert servers["relaybus"] == {
        "command": RELAYBUS,
        "args": ["mcp"],
        "env": {"RELAYBUS_TOOL": "codex"},
        # Codex starts MCP servers with a filtered environment, its hooks with all of it
        "env_vars": list(FORWARDED_ENV),
    }
    assert {"RELAYBUS_DIR", "RELAYBUS_AGENT", "XDG_RUNTIME_DIR"} <= set(FORWARDED_ENV)
    assert set(servers) == {"github", "relaybus"}
    assert "next: start a new Codex session (`codex`): /mcp lists relaybus" in first.out
    assert again.code == 0, again
    assert after_again == installed
    assert "nothing changed" in again.out
    assert preview.code == 0, preview
    assert previewed == installed
    assert f'-[mcp_servers.relaybus]\n-command = "{RELAYBUS}"\n' in preview.out
    assert preview.out.endswith("dry run: nothing written; 2 file(s) would change\n")
    assert removed.code == 0, removed
    assert home.tree() == before


def test_a_scope_codex_does_not_have_is_refused_naming_the_one_it_has(home: Home) -> None:
    before = home.tree()
    result = home("install codex --scope project")

    assert result.code == 2, result
    assert result.err.splitlines() == [
        "relaybus: error: Codex has no project scope: use --scope user (the default)"
    ]
    assert home.tree() == before


def test_uninstall_cuts_only_its_table_when_the_file_changed_since(home: Home) -> None:
    home.write(CONFIG, ORIGINAL)
    install(CODEX, home.context())
    later = '\n[profiles.deep]\nmodel = "o3-pro"\n'
    edited = home.read(CONFIG).replace('model = "o3"', 'model = "o4"') + later
    home.write(CONFIG, edited)

    report = uninstall(CODEX, home.context())

    assert report.files[0].changes == ["removed MCP server relaybus"]
    assert not report.files[0].restored
    assert home.read(CONFIG) == ORIGINAL.replace('model = "o3"', 'model = "o4"') + later


def test_a_new_config_and_its_folder_are_created_and_removed_again(home: Home) -> None:
    before = home.tree()
    report = install(CODEX, home.context())
    created = home.tree()
    uninstall(CODEX, home.context())

    assert report.files[0].action == "created"
    assert created[CONFIG].decode() == TABLE
    assert changed(before, created) == {"home/.codex/", CONFIG, HOOKS}
    assert home.tree() == before


def test_the_hooks_run_relaybus_hook_for_codex_and_other_hooks_stay(home: Home) -> None:
    theirs = {"type": "command", "command": "/usr/bin/notify-send done"}
    original = {"hooks": {"Stop": [{"hooks": [theirs]}]}}
    home.write(HOOKS, json.dumps(original, indent=2) + "\n")
    report = install(CODEX, home.context())
    installed = json.loads(home.read(HOOKS))
    again = install(CODEX, home.context())
    uninstall(CODEX, home.context())

    assert report.files[1].changes == [f"added hooks {', '.join(EVENTS)}"]
    for event, argument in EVENTS.items():
        ours = installed["hooks"][event][-1]
        assert ours == {
            "hooks": [
                {
                    "type": "command",
                    "command": f"{RELAYBUS} hook {argument} --tool codex",
                    "timeout": 10,
                }
            ]
        }, event  # no matcher: Codex's are regular expressions, and none matches all tools
    assert installed["hooks"]["Stop"][0] == {"hooks": [theirs]}
    assert not again.changed
    assert json.loads(home.read(HOOKS)) == original


def test_an_inline_servers_table_is_merged_with_tomlkit(home: Home) -> None:
    original = 'mcp_servers = { github = { command = "npx" } }  # inline\n'
    home.write(CONFIG, original)
    install(CODEX, home.context())
    merged = tomllib.loads(home.read(CONFIG))
    uninstall(CODEX, home.context())

    assert set(merged["mcp_servers"]) == {"github", "relaybus"}
    assert merged["mcp_servers"]["relaybus"]["command"] == RELAYBUS
    assert "# inline" in home.read(CONFIG)
    assert home.read(CONFIG) == original


def test_malformed_toml_is_refused_and_nothing_is_written(home: Home) -> None:
    home.write(CONFIG, '[mcp_servers.github\ncommand = "npx"\n')
    before = home.tree()

    with pytest.raises(ConfigError, match=r"config\.toml is not valid TOML"):
        install(CODEX, home.context())
    assert home.tree() == before


def test_an_environment_variable_the_user_added_is_kept_by_a_reinstall(home: Home) -> None:
    install(CODEX, home.context())
    ours = '{RELAYBUS_TOOL = "codex"}'
    mine = home.read(CONFIG).replace(ours, '{RELAYBUS_TOOL = "codex", RELAYBUS_PROFILE = "dev"}')
    home.write(CONFIG, mine)
    again = install(CODEX, home.context())
    kept = home.read(CONFIG)
    remote = install(CODEX, home.context(url="http://127.0.0.1:4850"))

    assert not again.changed and kept == mine
    assert remote.files[0].changes == ["updated MCP server relaybus"]
    remote_entry = tomllib.loads(home.read(CONFIG))["mcp_servers"]["relaybus"]
    assert remote_entry["env"] == {
        "RELAYBUS_TOOL": "codex",
        "RELAYBUS_PROFILE": "dev",
        "RELAYBUS_URL": "http://127.0.0.1:4850",
    }
    # what env sets is not forwarded too
    assert remote_entry["env_vars"] == [n for n in FORWARDED_ENV if n != "RELAYBUS_URL"]
