"""Settings: arguments > RELAYBUS_* > the relay folder's config.toml > the user's > defaults.

Real files in tmp folders, the real environment (monkeypatched), the real cwd.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from relaybus.errors import InvalidInput
from relaybus.settings import Settings, find_relay_dir, user_config_path


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project folder as the cwd (no repository around it) and an empty user config
    folder (``XDG_CONFIG_HOME``); returns the project folder."""
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(project)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    return project


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def user_file(text: str) -> Path:
    return write(user_config_path(), text)


def test_without_files_or_variables_every_setting_has_its_default(home: Path) -> None:
    settings = Settings()
    assert settings.stale_ttl == 90.0
    assert settings.sweep_interval == 5.0
    assert settings.prune_interval == 3600.0
    assert settings.dir is None
    assert settings.admin_token is None


def test_each_source_beats_the_ones_below_it(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    user_file("lease_seconds = 11\nstale_ttl = 12\nstuck_after = 13\npool_size = 14\n")
    write(home / ".relay" / "config.toml", "stale_ttl = 22\nstuck_after = 23\npool_size = 24\n")
    monkeypatch.setenv("RELAYBUS_STUCK_AFTER", "33")
    monkeypatch.setenv("RELAYBUS_POOL_SIZE", "34")

    settings = Settings(pool_size=44)

    assert settings.lease_seconds == 11  # the user's file
    assert settings.stale_ttl == 22  # the relay folder's file beats the user's
    assert settings.stuck_after == 33  # the environment beats both files
    assert settings.pool_size == 44  # an argument beats everything
    assert settings.retention_days == 30  # nobody set it: the default


def test_the_relay_folder_file_is_found_like_git_from_a_subfolder(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (home / ".git").mkdir()
    write(home / ".relay" / "config.toml", 'workspace = "payments"\n')
    deep = home / "src" / "pkg"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)

    assert find_relay_dir() == home / ".relay"
    assert Settings().workspace == "payments"


def test_relaybus_dir_picks_the_relay_folder_whose_file_is_read(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(home / ".relay" / "config.toml", 'workspace = "here"\n')
    write(home / "elsewhere" / "config.toml", 'workspace = "there"\n')
    monkeypatch.setenv("RELAYBUS_DIR", str(home / "elsewhere"))

    assert Settings().workspace == "there"
    assert Settings(dir=home / ".relay").workspace == "here"  # the argument's folder


def test_the_user_file_may_name_the_relay_folder_and_that_folder_s_file_is_read(
    home: Path, tmp_path: Path
) -> None:
    shared = tmp_path / "shared-relay"
    write(shared / "config.toml", "stale_ttl = 45\n")
    user_file(f'dir = "{shared}"\n')

    settings = Settings()

    assert settings.dir == shared
    assert settings.stale_ttl == 45


def test_a_tilde_in_a_path_from_a_file_is_the_home_folder(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "me"))
    user_file('dir = "~/relays/main"\n')

    assert Settings().dir == tmp_path / "me" / "relays" / "main"


def test_without_xdg_config_home_the_user_file_is_in_dot_config(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("XDG_CONFIG_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "me"))
    write(tmp_path / "me" / ".config" / "relaybus" / "config.toml", "rate_burst = 7\n")

    assert Settings().rate_burst == 7


def test_server_settings_come_from_the_environment_too(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RELAYBUS_MCP_IDLE_SECONDS", "60")
    monkeypatch.setenv("RELAYBUS_REQUEST_BODY_BYTES", "4096")
    monkeypatch.setenv("RELAYBUS_TOKEN_CACHE_SECONDS", "0")

    settings = Settings()

    assert settings.mcp_idle_seconds == 60.0
    assert settings.body_limit() == 4096
    assert settings.token_cache_seconds == 0.0


def test_an_empty_variable_unsets_a_setting_whose_default_is_none(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(home / ".relay" / "config.toml", 'url = "http://127.0.0.1:4850"\nrate_limit = 5\n')
    monkeypatch.setenv("RELAYBUS_URL", "")
    monkeypatch.setenv("RELAYBUS_RATE_LIMIT", "")

    settings = Settings()

    assert settings.url is None
    assert settings.rate_limit is None


def test_model_copy_replaces_fields_and_reads_nothing_again(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings()
    monkeypatch.setenv("RELAYBUS_STALE_TTL", "5")

    copy = settings.model_copy(update={"port": 0, "token": "secret"})

    assert (copy.port, copy.admin_token, copy.stale_ttl) == (0, "secret", 90.0)
    assert (settings.port, settings.token) == (4850, None)
    assert "secret" not in repr(copy)


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("RELAYBUS_STALE_TTL", "soon", "invalid RELAYBUS_STALE_TTL: expected a number, got 'soon'"),
        ("RELAYBUS_STALE_TTL", "0", "invalid RELAYBUS_STALE_TTL: 0 is not above 0 seconds"),
        ("RELAYBUS_PORT", "70000", "invalid RELAYBUS_PORT: 70000 is above 65535"),
        ("RELAYBUS_PORT", "80.5", "invalid RELAYBUS_PORT: expected a whole number, got '80.5'"),
        ("RELAYBUS_SWEEP_INTERVAL", "nan", "invalid RELAYBUS_SWEEP_INTERVAL: expected a number"),
        ("RELAYBUS_RATE_BURST", "0", "invalid RELAYBUS_RATE_BURST: 0 is below 1 requests"),
        ("RELAYBUS_LEASE_SECONDS", "", "invalid RELAYBUS_LEASE_SECONDS: expected a number"),
    ],
)
def test_a_bad_variable_is_one_error_naming_it(
    home: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(InvalidInput) as caught:
        Settings()
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('stale_ttl = "90"', "invalid stale_ttl in {file}: expected a number, got '90'"),
        ("pool_size = 2.5", "invalid pool_size in {file}: expected a whole number, got 2.5"),
        ("port = true", "invalid port in {file}: expected a number, got True"),
        ("workspace = 3", "invalid workspace in {file}: expected text, got 3"),
        ("stale_tll = 90", "unknown setting 'stale_tll' in {file}"),
        ("[server]\nport = 1", "unknown setting 'server' in {file}"),
        ("stale_ttl = ", "{file} is not valid TOML: "),
        ('dir = "/elsewhere"', "{file} cannot set dir"),
    ],
)
def test_a_bad_relay_folder_file_is_one_error_naming_the_file_and_key(
    home: Path, text: str, message: str
) -> None:
    file = write(home / ".relay" / "config.toml", text + "\n")
    with pytest.raises(InvalidInput) as caught:
        Settings()
    assert str(caught.value).startswith(message.format(file=file))


def test_an_unknown_key_in_the_user_file_is_an_error_naming_it(home: Path) -> None:
    file = user_file('colour = "blue"\n')
    with pytest.raises(InvalidInput, match=f"unknown setting 'colour' in {file}"):
        Settings()


def test_a_bad_value_in_the_user_file_is_an_error_even_when_the_environment_sets_it(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A broken file is reported at once, not only on the day nothing overrides it.
    file = user_file("stale_ttl = -1\n")
    monkeypatch.setenv("RELAYBUS_STALE_TTL", "30")
    with pytest.raises(InvalidInput, match=f"invalid stale_ttl in {file}: -1 is not above 0"):
        Settings()


def test_bad_arguments_are_errors_naming_the_setting(home: Path) -> None:
    with pytest.raises(InvalidInput, match="invalid setting stale_ttl: -1 is not above 0"):
        Settings(stale_ttl=-1)
    with pytest.raises(InvalidInput, match="unknown setting 'colour'"):
        Settings().model_copy(update={"colour": "blue"})
    with pytest.raises(InvalidInput, match="invalid setting port: expected a number"):
        Settings().model_copy(update={"port": "4850"})


def test_a_non_loopback_host_without_an_admin_token_is_refused(home: Path) -> None:
    Settings(host="127.0.0.1").check_bind()
    Settings(host="0.0.0.0", token="t").check_bind()
    with pytest.raises(InvalidInput, match="refusing to listen on 0.0.0.0 without an admin"):
        Settings(host="0.0.0.0", token="").check_bind()
