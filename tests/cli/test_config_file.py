"""The real ``relaybus`` reads ``.relay/config.toml`` and the user's config file; an
option beats them; a bad value is one line on stderr and exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.conftest import Cli


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


@pytest.fixture
def found_cli(tmp_path: Path) -> Cli:
    """The CLI in a subfolder of a repository, finding its relay like git (no
    ``RELAYBUS_DIR``), with an empty user config folder."""
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / "src").mkdir()
    cli = Cli(repo / ".relay", repo / "src")
    del cli.env["RELAYBUS_DIR"]
    cli.env["XDG_CONFIG_HOME"] = str(tmp_path / "xdg")
    return cli


def agent_ids(cli: Cli, command: str) -> list[str]:
    result = cli(command)
    assert result.code == 0, result
    return [agent["id"] for agent in result.json()]


@pytest.mark.slow
def test_a_command_acts_in_the_workspace_the_relay_folder_file_names(found_cli: Cli) -> None:
    write(found_cli.relay_dir / "config.toml", 'workspace = "team"\n')

    registered = found_cli("register alice")

    assert registered.code == 0, registered
    assert agent_ids(found_cli, "agents --json") == ["alice"]
    # An option beats the file; the agent is in the file's workspace only.
    assert agent_ids(found_cli, "--workspace default agents --json") == []


def test_the_user_file_applies_where_nothing_else_sets_a_value(
    found_cli: Cli, tmp_path: Path
) -> None:
    write(tmp_path / "xdg" / "relaybus" / "config.toml", 'workspace = "mine"\nagent = "alice"\n')
    write(found_cli.relay_dir / "config.toml", 'workspace = "team"\n')

    registered = found_cli("register")  # the agent id comes from the user's file

    assert registered.code == 0, registered
    assert agent_ids(found_cli, "agents --json") == ["alice"]  # in "team", the relay's file
    assert agent_ids(found_cli, "--workspace mine agents --json") == []


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        ('stale_ttl = "soon"', {}, "invalid stale_ttl in {file}: expected a number, got 'soon'"),
        ("colour = 1", {}, "unknown setting 'colour' in {file}"),
        ("", {"RELAYBUS_STALE_TTL": "soon"}, "invalid RELAYBUS_STALE_TTL: expected a number"),
    ],
)
def test_a_bad_setting_is_one_line_naming_it_and_exit_2(
    cli: Cli, text: str, env: dict[str, str], expected: str
) -> None:
    file = cli.relay_dir / "config.toml"
    write(file, text + "\n")

    result = cli("agents", env=env)

    assert result.code == 2, result
    assert len(result.err_lines) == 1
    assert result.err.startswith(f"relaybus: error: {expected.format(file=file)}")


def test_serve_takes_its_address_from_the_config_file(cli: Cli) -> None:
    write(cli.relay_dir / "config.toml", 'host = "0.0.0.0"\n')

    result = cli("serve")

    assert result.code == 2, result
    assert len(result.err_lines) == 1
    assert "refusing to listen on 0.0.0.0 without an admin token" in result.err
