"""relaybus install/uninstall gemini and cursor: ``mcpServers`` → ``relaybus`` in
``.gemini/settings.json`` and ``.cursor/mcp.json``, project or user scope."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from relaybus.tools.install import TOOLS, install, uninstall
from tests.tools.setuputil import RELAYBUS, Home, changed
from tests.tools.setuputil import home_fixture as home_fixture  # noqa: F401  (the home fixture)

FILES = {
    ("gemini", "project"): "home/src/app/.gemini/settings.json",
    ("gemini", "user"): "home/.gemini/settings.json",
    ("cursor", "project"): "home/src/app/.cursor/mcp.json",
    ("cursor", "user"): "home/.cursor/mcp.json",
}

#: Hand-written: 4 spaces, CRLF line ends, a key the user added to our own entry later.
EXISTING = (
    "{\r\n"
    '    "theme": "GitHub",\r\n'
    '    "mcpServers": {\r\n'
    '        "docs": {\r\n'
    '            "command": "docs-mcp",\r\n'
    '            "args": [],\r\n'
    '            "trust": true\r\n'
    "        }\r\n"
    "    }\r\n"
    "}\r\n"
)


@pytest.mark.parametrize(("tool", "scope"), sorted(FILES))
def test_install_merges_in_the_files_style_and_uninstall_restores_it(
    home: Home, tool: str, scope: str
) -> None:
    path = FILES[(tool, scope)]
    home.write(path, EXISTING)
    before = home.tree()
    first = install(TOOLS[tool], home.context(), scope=scope)
    installed = home.tree()
    again = install(TOOLS[tool], home.context(), scope=scope)
    uninstall(TOOLS[tool], home.context(), scope=scope)

    assert [f.action for f in first.files] == ["updated"]
    assert changed(before, installed) == {path}
    text = installed[path].decode()
    assert text.startswith('{\r\n    "theme": "GitHub",\r\n') and "\n" not in text.replace(
        "\r\n", ""
    )
    servers = json.loads(text)["mcpServers"]
    assert list(servers) == ["docs", "relaybus"]
    assert servers["relaybus"] == {
        "command": RELAYBUS,
        "args": ["mcp"],
        "env": {"RELAYBUS_TOOL": tool},
    }
    assert not again.changed
    assert home.tree() == before


@pytest.mark.parametrize("tool", ["gemini", "cursor"])
def test_the_default_scope_is_the_project_and_a_new_file_goes_again(home: Home, tool: str) -> None:
    before = home.tree()
    result = home(f"--json install {tool}")
    installed = home.tree()
    removed = home(f"uninstall {tool} --json")

    assert result.code == 0, result
    report = result.json()
    path = FILES[(tool, "project")]
    assert report["scope"] == "project" and report["project"] == str(home.project)
    assert report["files"] == [
        {
            "path": str(home.root / path),
            "action": "created",
            "changes": ["added MCP server relaybus"],
            "backup": None,
        }
    ]
    assert installed[path].decode().startswith('{\n  "mcpServers": {\n    "relaybus": {\n')
    assert removed.code == 0, removed
    assert removed.json()["files"][0]["action"] == "deleted"
    assert home.tree() == before


def test_what_the_user_added_to_the_entry_survives_reinstalls(home: Home) -> None:
    path = FILES[("gemini", "user")]
    install(TOOLS["gemini"], home.context(), scope="user")
    data = home.load(path)
    data["mcpServers"]["relaybus"]["trust"] = True
    data["mcpServers"]["relaybus"]["env"]["RELAYBUS_PROFILE"] = "reviewer"
    home.write(path, json.dumps(data, indent=2) + "\n")
    again = install(TOOLS["gemini"], home.context(), scope="user")
    remote = install(TOOLS["gemini"], home.context(url="http://127.0.0.1:4850"), scope="user")
    with_url = home.load(path)["mcpServers"]["relaybus"]
    local = install(TOOLS["gemini"], home.context(), scope="user")
    without_url = home.load(path)["mcpServers"]["relaybus"]

    assert not again.changed
    assert remote.files[0].changes == ["updated MCP server relaybus"]
    assert with_url["trust"] is True
    assert with_url["env"] == {
        "RELAYBUS_TOOL": "gemini",
        "RELAYBUS_PROFILE": "reviewer",
        "RELAYBUS_URL": "http://127.0.0.1:4850",
    }
    assert local.changed
    assert without_url["env"] == {"RELAYBUS_TOOL": "gemini", "RELAYBUS_PROFILE": "reviewer"}


#: A hand-kept Gemini CLI settings file: comments as Gemini CLI allows them.
COMMENTED = (
    "// Gemini CLI settings for this project\n"
    "{\n"
    '  "theme": "GitHub", // the light one\n'
    "  /* servers we share */\n"
    '  "mcpServers": {\n'
    '    "docs": {"command": "docs-mcp", "args": []}\n'
    "  }\n"
    "}\n"
)


def test_gemini_settings_with_comments_keep_them_and_come_back_byte_for_byte(
    home: Home,
) -> None:
    path = FILES[("gemini", "project")]
    home.write(path, COMMENTED)
    before = home.tree()
    added = home("install gemini")
    text = home.read(path)
    removed = home("uninstall gemini")

    assert added.code == 0, added
    assert text.startswith(
        "// Gemini CLI settings for this project\n{\n"
        '  "theme": "GitHub", // the light one\n  /* servers we share */\n'
        '  "mcpServers": {\n    "docs": {"command": "docs-mcp", "args": []},\n'
        '    "relaybus": {\n      "command": '
    )
    assert removed.code == 0, removed
    assert home.tree() == before


def test_a_trailing_comma_is_refused_as_gemini_cli_refuses_it(home: Home) -> None:
    path = FILES[("gemini", "project")]
    home.write(path, '{\n  // ok\n  "theme": "GitHub",\n}\n')
    before = home.tree()
    result = home("install gemini")

    assert result.code == 2, result
    assert result.err.splitlines() == [
        f"relaybus: error: {home.root / path} is not valid JSON (comments allowed) (line 4, "
        "column 1: Trailing comma); fix it by hand and run the command again: nothing was "
        "written"
    ]
    assert home.tree() == before


TRUSTED = "home/.gemini/trustedFolders.json"
#: Rules Gemini CLI wrote (JSON.stringify, 2 spaces) plus a comment the user added.
RULES = '{\n  // work\n  "/srv/other": "TRUST_FOLDER",\n  "/srv/untrusted": "DO_NOT_TRUST"\n}'


def test_install_says_when_gemini_cli_needs_the_folder_trusted_and_trust_does_it(
    home: Home,
) -> None:
    home.write(TRUSTED, RULES)
    before = home.tree()
    plain = home("install gemini")
    trusted = home("install gemini --trust")
    rules = home.read(TRUSTED)
    again = home("install gemini --trust")
    removed = home("uninstall gemini")

    assert plain.code == 0, plain
    assert (
        f"next: Gemini CLI starts MCP servers only in trusted folders, and {home.project} is "
        "not trusted yet (`gemini mcp list` shows relaybus as Disabled): run `relaybus install "
        'gemini --trust`, or choose "Trust folder" when gemini asks'
    ) in plain.out.splitlines()
    assert trusted.code == 0, trusted
    assert f"trusted {home.project} for Gemini CLI" in trusted.out
    assert "not trusted yet" not in trusted.out
    assert rules == RULES.replace(
        '"DO_NOT_TRUST"', f'"DO_NOT_TRUST",\n  "{home.project}": "TRUST_FOLDER"'
    )
    assert again.out.startswith("unchanged ") and "trusted " not in again.out
    assert removed.code == 0, removed
    assert f"removed the trust in {home.project}" in removed.out
    assert home.tree() == before


def test_trust_adds_nothing_where_a_rule_trusts_the_folder_or_trust_is_off(home: Home) -> None:
    home.write(TRUSTED, json.dumps({str(home.project.parent / "x"): "TRUST_PARENT"}))
    covered = install(TOOLS["gemini"], replace(home.context(), trust=True))
    home.write(TRUSTED, "{}")
    home.write("home/.gemini/settings.json", '{"security": {"folderTrust": {"enabled": false}}}')
    off = install(TOOLS["gemini"], home.context(), scope="project")

    assert [f.action for f in covered.files] == ["created", "unchanged"]
    assert not any("trusted folders" in step for step in covered.next + off.next)


def test_trust_is_refused_for_a_folder_marked_do_not_trust_and_for_other_tools(
    home: Home,
) -> None:
    home.write(TRUSTED, json.dumps({str(home.project): "DO_NOT_TRUST"}))
    before = home.tree()
    refused = home("install gemini --trust")
    hint = home("install gemini --dry-run")
    claude = home("install claude --trust")

    assert refused.code == 2, refused
    assert f"'DO_NOT_TRUST' for {home.project}" in refused.err
    assert "/permissions trust" in refused.err
    assert claude.code == 2 and "--trust is for Gemini CLI's folder trust" in claude.err
    assert home.tree() == before
    assert hint.code == 0


@pytest.mark.parametrize("uninstalls", [["project", "user"], ["user", "project"]])
def test_both_scopes_with_trust_uninstall_in_either_order_to_the_original_bytes(
    home: Home, uninstalls: list[str]
) -> None:
    home.write(FILES[("gemini", "project")], COMMENTED)
    home.write("home/.gemini/settings.json", '{\n    // mine\n    "theme": "Dracula"\n}\n')
    home.write(TRUSTED, RULES)
    before = home.tree()
    trusting = replace(home.context(), trust=True)
    first = install(TOOLS["gemini"], trusting, scope="project")
    second = install(TOOLS["gemini"], trusting, scope="user")
    for scope in uninstalls:
        uninstall(TOOLS["gemini"], home.context(), scope=scope)

    assert [f.action for f in first.files] == ["updated", "updated"]
    assert [f.action for f in second.files] == ["updated", "unchanged"]  # trusted already
    assert home.tree() == before
