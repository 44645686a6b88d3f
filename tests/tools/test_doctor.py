"""relaybus doctor: the relay (embedded store or live server) and every installed
tool, checked end to end, each failure with the command that fixes it."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from relaybus import __version__
from relaybus.settings import Settings
from relaybus.store import Store, sqlite_url
from relaybus.store.migrate import HEAD
from relaybus.tools.doctor import Check, run_checks
from relaybus.tools.install import TOOLS, install
from tests.support.live import live_server
from tests.tools.setuputil import RELAYBUS, Home
from tests.tools.setuputil import home_fixture as home_fixture  # noqa: F401  (the home fixture)


def relay_at(home: Home) -> Path:
    """A migrated embedded relay in the project; returns its folder."""
    folder = home.project / ".relay"
    Store(sqlite_url(folder)).close()
    return folder


def fake_relaybus(tmp_path: Path, version: str) -> str:
    """An executable called relaybus that only answers --version, with ``version``."""
    path = tmp_path / "fake" / "bin" / "relaybus"
    path.parent.mkdir(parents=True)
    path.write_text(f'#!/bin/sh\necho "relaybus, version {version}"\n', encoding="utf-8")
    path.chmod(0o755)
    return str(path)


def statuses(checks: list[Check]) -> list[tuple[str, str]]:
    return [(c.name, c.status) for c in checks]


def test_all_good_with_an_embedded_relay_and_claude_code_installed(home: Home) -> None:
    folder = relay_at(home)
    install(TOOLS["claude"], home.context())
    result = home("doctor", env={"RELAYBUS_DIR": str(folder)})

    assert result.code == 0, result
    claude_json, settings = home.home / ".claude.json", home.project / ".claude"
    assert result.out.splitlines() == [
        f"✓ relay: embedded relay at {folder / 'relay.db'}: schema {HEAD} (current)",
        f"✓ Claude Code (local): MCP server in {claude_json}: {RELAYBUS} mcp "
        f"(relaybus {__version__})",
        f"✓ Claude Code (local): hooks for 6 events in {settings / 'settings.local.json'}",
        "all good",
    ]


def test_a_missing_command_and_an_old_schema_fail_with_their_fixes(home: Home) -> None:
    folder = relay_at(home)
    with sqlite3.connect(folder / "relay.db") as db:
        db.execute("UPDATE alembic_version SET version_num = '0001'")
    db.close()
    install(TOOLS["claude"], home.context())
    config = home.load("home/.claude.json")
    config["projects"][str(home.project)]["mcpServers"]["relaybus"]["command"] = "/gone/relaybus"
    home.write("home/.claude.json", json.dumps(config, indent=2))

    result = home("doctor", env={"RELAYBUS_DIR": str(folder)})

    assert result.code == 1, result
    lines = result.out.splitlines()
    db_path = folder / "relay.db"
    assert lines[:2] == [
        f"✗ relay: the relay at {db_path} is at schema 0001, this relaybus needs {HEAD}",
        "    fix: relaybus migrate",
    ]
    assert lines[2:4] == [
        f"✗ Claude Code (local): the MCP server in {home.home / '.claude.json'} starts "
        "/gone/relaybus, which does not exist",
        "    fix: relaybus install claude --scope local",
    ]
    assert lines[-1] == "2 problem(s) to fix"


def test_a_live_server_is_checked_for_version_and_token(home: Home, tmp_path: Path) -> None:
    install(TOOLS["codex"], home.context())
    with live_server(tmp_path / "server", admin_token="admin-secret") as srv:
        good = home(
            "doctor --json", env={"RELAYBUS_URL": srv.url, "RELAYBUS_TOKEN": "admin-secret"}
        )
        bad = home("doctor --json", env={"RELAYBUS_URL": srv.url, "RELAYBUS_TOKEN": "wrong"})

    assert good.code == 0, good
    report = good.json()
    assert report["ok"] is True
    assert report["checks"][0] == {
        "name": "relay",
        "status": "ok",
        "detail": f"relay server at {srv.url}: relaybus {__version__}, sqlite, auth token",
        "fix": None,
    }
    assert [c["name"] for c in report["checks"]] == ["relay", "Codex (user)", "Codex (user)"]
    assert bad.code == 1, bad
    relay = bad.json()["checks"][0]
    assert relay["status"] == "fail"
    assert relay["detail"] == f"the relay server at {srv.url} refused the token in RELAYBUS_TOKEN"
    assert relay["fix"].startswith("export RELAYBUS_TOKEN=")


def test_a_server_named_in_a_tools_config_is_checked_too(home: Home, tmp_path: Path) -> None:
    relay_at(home)
    with live_server(tmp_path / "server") as srv:
        install(TOOLS["gemini"], home.context(url=srv.url))
        checks = run_checks(Settings(dir=home.project / ".relay"), home.context())
    stopped = run_checks(Settings(dir=home.project / ".relay"), home.context())

    assert statuses(checks) == [
        ("relay", "ok"),
        ("relay for Gemini CLI (project)", "ok"),
        ("Gemini CLI (project)", "ok"),
        ("Gemini CLI (folder trust)", "warn"),
    ]
    assert checks[1].detail.startswith(f"relay server at {srv.url}: relaybus {__version__}")
    unreachable = stopped[1]
    assert unreachable.status == "fail"
    assert unreachable.detail.startswith(f"cannot reach the relay server at {srv.url}")
    assert unreachable.fix == (
        "start it with `relaybus serve`, or `unset RELAYBUS_URL` for the embedded relay"
    )


def test_another_version_and_missing_hooks_are_failures(home: Home, tmp_path: Path) -> None:
    old = fake_relaybus(tmp_path, "0.0.1")
    install(TOOLS["cursor"], home.context(executable=old))
    install(TOOLS["claude"], home.context())
    settings = home.load("home/src/app/.claude/settings.local.json")
    del settings["hooks"]["Stop"]
    home.write("home/src/app/.claude/settings.local.json", json.dumps(settings, indent=2))

    checks = run_checks(Settings(dir=home.project / ".relay"), home.context())

    cursor = next(c for c in checks if c.name == "Cursor (project)")
    assert cursor.status == "fail"
    assert cursor.detail.endswith(f"starts {old}, which is relaybus 0.0.1, not {__version__}")
    assert cursor.fix == "relaybus install cursor --scope project --project " + str(home.project)
    hooks = next(c for c in checks if c.detail.startswith("hooks missing"))
    assert hooks.status == "fail" and hooks.detail.endswith(": Stop")
    assert hooks.name == "Claude Code (local)"


def test_a_project_mcp_json_warns_until_claude_code_has_approved_it(home: Home) -> None:
    install(TOOLS["claude"], home.context(), scope="project")
    settings = Settings(dir=home.project / ".relay")
    pending = run_checks(settings, home.context())
    home.write(
        "home/src/app/.claude/settings.local.json", '{"enabledMcpjsonServers": ["relaybus"]}'
    )
    approved = run_checks(settings, home.context())
    home.write(
        "home/src/app/.claude/settings.local.json", '{"disabledMcpjsonServers": ["relaybus"]}'
    )
    declined = run_checks(settings, home.context())

    assert [c.status for c in pending] == ["ok", "ok", "ok", "warn"]
    assert pending[-1].fix == (
        f"start `claude` in {home.project} and accept relaybus when asked (or approve it in /mcp)"
    )
    assert approved[-1].status == "ok" and "is approved" in approved[-1].detail
    assert declined[-1].status == "fail"


def test_nothing_installed_is_a_warning_not_a_failure(home: Home) -> None:
    result = home("doctor", env={"RELAYBUS_DIR": str(home.project / ".relay")})

    assert result.code == 0, result
    assert result.out.splitlines() == [
        f"✓ relay: no relay at {home.project / '.relay' / 'relay.db'} yet: `relaybus init` "
        "creates it (as do register, run, mcp and serve)",
        f"! tools: relaybus is not set up in any coding tool for {home.project}",
        "    fix: relaybus install claude (or codex, gemini, cursor)",
        "all good (1 warning(s))",
    ]
    assert not (home.project / ".relay").exists()


def test_a_malformed_file_fails_with_or_without_relaybus_in_it(home: Home) -> None:
    settings = Settings(dir=home.project / ".relay")
    home.write("home/.gemini/settings.json", '// mine\n{"theme": "GitHub"}\n')
    commented = run_checks(settings, home.context())
    home.write("home/.cursor/mcp.json", '{"mcpServers": {"relaybus": {"command": }}}')
    ours = run_checks(settings, home.context())

    assert [c.status for c in commented] == ["ok", "warn"]  # Gemini CLI reads comments
    broken = next(c for c in ours if c.status == "fail")
    assert broken.name == "Cursor"
    assert broken.detail == (
        f"{home.home / '.cursor' / 'mcp.json'} is not valid JSON (line 1, column 41: "
        "Expecting value): Cursor cannot read it"
    )
    assert broken.fix == (
        f"fix {home.home / '.cursor' / 'mcp.json'} by hand, then run `relaybus doctor` again"
    )


def test_invalid_json_in_claude_codes_user_settings_is_a_failure(home: Home) -> None:
    install(TOOLS["claude"], home.context())
    home.write("home/.claude/settings.json", '{\n  "model": "opus",\n}\n')
    home.write("home/.claude.json", '{"numStartups": 1,}')
    result = home("doctor", env={"RELAYBUS_DIR": str(home.project / ".relay")})

    assert result.code == 1, result
    lines = result.out.splitlines()
    settings, claude_json = home.home / ".claude" / "settings.json", home.home / ".claude.json"
    assert (
        f"✗ Claude Code: {settings} is not valid JSON (line 3, column 1: Expecting property "
        "name enclosed in double quotes): Claude Code cannot read it"
    ) in lines
    assert f"    fix: fix {settings} by hand, then run `relaybus doctor` again" in lines
    assert sum(str(claude_json) in line and "✗" in line for line in lines) == 1  # once
    assert "all good" not in result.out


def test_hooks_that_start_a_missing_program_are_reported(home: Home) -> None:
    install(TOOLS["claude"], home.context(), scope="user")
    path = "home/.claude/settings.json"
    data = home.load(path)
    [start] = data["hooks"]["SessionStart"][0]["hooks"]
    start["command"] = "/gone/bin/relaybus hook session-start"
    data["hooks"]["Stop"].append(
        {"hooks": [{"type": "command", "command": "$HOME/bin/notify --done"}]}
    )
    data["hooks"]["Stop"].append({"hooks": [{"type": "command", "command": "echo done"}]})
    home.write(path, json.dumps(data, indent=2))

    checks = run_checks(Settings(dir=home.project / ".relay"), home.context())

    settings = home.home / ".claude" / "settings.json"
    found = [(c.status, c.detail) for c in checks if c.name == "Claude Code (user)"]
    assert found[1:] == [
        ("fail", f"a hook in {settings} starts /gone/bin/relaybus, which does not exist"),
        ("warn", f"a Stop hook in {settings} starts {home.home}/bin/notify, which does not exist"),
    ]


def test_a_command_that_is_not_relaybus_is_named_for_what_it_is(home: Home, tmp_path: Path) -> None:
    failing = tmp_path / "bin" / "failing"
    failing.parent.mkdir()
    failing.write_text("#!/bin/sh\necho 'usage: failing' >&2\nexit 3\n", encoding="utf-8")
    failing.chmod(0o755)
    install(TOOLS["cursor"], home.context(executable="/usr/bin/true"))
    install(TOOLS["gemini"], home.context(executable=str(failing)), scope="user")

    checks = run_checks(Settings(dir=home.project / ".relay"), home.context())

    cursor = next(c for c in checks if c.name == "Cursor (project)")
    gemini = next(c for c in checks if c.name == "Gemini CLI (user)")
    assert cursor.status == gemini.status == "fail"
    assert cursor.detail.startswith(
        f"the MCP server in {home.project / '.cursor' / 'mcp.json'} starts /usr/bin/true, "
        "which is not relaybus (`/usr/bin/true --version` says: true (GNU coreutils) "
    )
    assert "which is relaybus" not in cursor.detail
    assert gemini.detail.endswith(
        f"starts {failing}, which is not relaybus (`{failing} --version` failed (exit 3): "
        "usage: failing)"
    )


def test_gemini_cli_folder_trust_is_a_warning_until_the_folder_is_trusted(home: Home) -> None:
    env = {"RELAYBUS_DIR": str(home.project / ".relay")}
    install(TOOLS["gemini"], home.context())
    untrusted = home("doctor", env=env)
    trust = home("install gemini --trust")
    trusted = home("doctor", env=env)

    assert untrusted.code == 0, untrusted
    assert (
        f"! Gemini CLI (folder trust): Gemini CLI starts MCP servers only in trusted folders, "
        f"and {home.project} is not trusted yet (`gemini mcp list` shows relaybus as "
        'Disabled): run `relaybus install gemini --trust`, or choose "Trust folder" when '
        "gemini asks"
    ) in untrusted.out.splitlines()
    assert "    fix: relaybus install gemini --scope project --trust" in untrusted.out
    assert trust.code == 0, trust
    assert (
        f"✓ Gemini CLI (folder trust): Gemini CLI starts MCP servers in {home.project}"
    ) in trusted.out.splitlines()
    assert trusted.out.endswith("all good\n")


def test_a_hook_command_under_home_is_found_as_the_shell_would_find_it(home: Home) -> None:
    install(TOOLS["claude"], home.context(), scope="user")
    link = home.home / ".local" / "bin" / "relaybus"
    link.parent.mkdir(parents=True)
    link.symlink_to(RELAYBUS)
    path = "home/.claude/settings.json"
    text = home.read(path).replace(f"{RELAYBUS} hook", "$HOME/.local/bin/relaybus hook")
    home.write(path, text)

    checks = run_checks(Settings(dir=home.project / ".relay"), home.context())

    assert "$HOME/.local/bin/relaybus hook session-start" in home.read(path)
    hooks = next(c for c in checks if c.detail.startswith("hooks for"))
    assert hooks.status == "ok", hooks
