"""relaybus install/uninstall gemini and cursor: ``mcpServers`` → ``relaybus`` in
``.gemini/settings.json`` and ``.cursor/mcp.json``, project or user scope."""

from __future__ import annotations

import json

import pytest
from setuputil import RELAYBUS, Home, changed
from setuputil import home_fixture as home_fixture  # noqa: F401  (the home fixture)

from relaybus.integrations.install import TOOLS, install, uninstall

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
