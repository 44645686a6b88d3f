"""``relaybus service``: the files it writes run a real relay server, with the token.

Every test runs in a temporary home (:mod:`tests.tools.setuputil`) with no user
session bus (``DBUS_SESSION_BUS_ADDRESS`` and ``XDG_RUNTIME_DIR`` point at
nothing), so ``systemctl --user`` can never reach this machine's own manager:
``install`` without ``--no-start`` must then refuse before writing anything.
The unit is checked by ``systemd-analyze verify`` (Debian's systemd package) and
then run the way systemd runs it: its ``ExecStart`` with its ``EnvironmentFile``.
The launchd plist is parsed by ``plistlib`` and its ``ProgramArguments`` (a POSIX
shell line) run as launchd would.
"""

from __future__ import annotations

import contextlib
import os
import plistlib
import shlex
import shutil
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.server.test_serve_cli import ANNOUNCE, Serve
from tests.support.live import UNUSED_TLS, free_port
from tests.tools.setuputil import Home, changed
from tests.tools.setuputil import home_fixture as home_fixture

UNIT = "home/.config/systemd/user/relaybus.service"
ENV_FILE = "home/.config/relaybus/service.env"
PLIST = "home/Library/LaunchAgents/dev.relaybus.serve.plist"
NO_BUS = {"DBUS_SESSION_BUS_ADDRESS": "unix:path=/nonexistent", "XDG_RUNTIME_DIR": "/nonexistent"}


@pytest.fixture
def home(home: Home) -> Home:
    home.env.update(NO_BUS)
    subprocess.run(["git", "init", "-q", str(home.project)], check=True)
    return home


def env_values(text: str) -> dict[str, str]:
    pairs = (line.partition("=") for line in text.splitlines() if not line.startswith("#"))
    return {name: value for name, sep, value in pairs if sep}


@contextlib.contextmanager
def running(argv: list[str], env: dict[str, str], cwd: Path) -> Iterator[Serve]:
    """Run ``argv`` as the service manager would: ``env`` is the whole environment
    (the home's, which has no ``RELAYBUS_*``, plus what the manager adds)."""
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        encoding="utf-8",
    )
    server = Serve(proc)
    try:
        yield server
    finally:
        if proc.poll() is None:
            server.stop()
        assert proc.stdout is not None
        proc.stdout.close()


def test_dry_run_prints_every_file_and_command_with_the_token_masked_and_writes_nothing(
    home: Home,
) -> None:
    before = home.tree()
    result = home("service install --dry-run --port 4999")
    assert result.code == 0, result
    assert changed(before, home.tree()) == set()
    out = result.out
    assert f"# would write {home.root / ENV_FILE} (0600)" in out
    assert f"# would write {home.root / UNIT} (0644)" in out
    assert "RELAYBUS_TOKEN=<token>" in out
    assert "RELAYBUS_PORT=4999" in out
    assert f"RELAYBUS_DIR={home.project / '.relay'}" in out
    assert "ExecStart=" in out and "-m relaybus serve" in out
    assert out.rstrip().endswith(
        "systemctl --user daemon-reload\nsystemctl --user enable --now relaybus.service"
    )
    as_json = home("service install --dry-run --json").json()
    assert [f["mode"] for f in as_json["files"]] == ["0600", "0644"]
    assert "<token>" in as_json["files"][0]["text"]


def test_without_a_service_manager_install_refuses_in_one_line_and_writes_nothing(
    home: Home,
) -> None:
    before = home.tree()
    result = home("service install")
    assert result.code == 1, result
    assert result.err.startswith("relaybus: error: `systemctl --user show-environment` failed")
    assert "--no-start" in result.err and len(result.err.splitlines()) == 1
    assert changed(before, home.tree()) == set()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs Debian's systemd")
def test_the_installed_unit_verifies_and_runs_a_server_that_needs_the_token(home: Home) -> None:
    port = free_port()
    result = home(f"service install --no-start --port {port}")
    assert result.code == 0, result
    assert f"export RELAYBUS_URL=http://127.0.0.1:{port}" in result.out
    env_file, unit = home.root / ENV_FILE, home.root / UNIT
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(unit.stat().st_mode) == 0o644
    verify = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, check=False
    )
    assert verify.returncode == 0 and verify.stderr == "", verify.stderr

    values = env_values(env_file.read_text(encoding="utf-8"))
    assert len(values["RELAYBUS_TOKEN"]) >= 32
    lines = dict(
        line.split("=", 1) for line in unit.read_text(encoding="utf-8").splitlines() if "=" in line
    )
    assert lines["EnvironmentFile"] == str(env_file)
    argv = shlex.split(lines["ExecStart"])
    with running(argv, {**home.env, **values}, home.home) as server:
        url = server.expect(ANNOUNCE).removeprefix(ANNOUNCE).split()[0]
        assert url == f"http://127.0.0.1:{port}"
        assert httpx.get(f"{url}/v1/agents", verify=UNUSED_TLS).status_code == 401
        token = {"Authorization": f"Bearer {values['RELAYBUS_TOKEN']}"}
        assert httpx.get(f"{url}/v1/agents", headers=token, verify=UNUSED_TLS).status_code == 200
    assert (home.project / ".relay" / "relay.db").exists()


def test_install_again_keeps_the_token_and_a_given_token_replaces_it(home: Home) -> None:
    assert home("service install --no-start").code == 0
    first = env_values(home.read(ENV_FILE))["RELAYBUS_TOKEN"]
    assert home("service install --no-start --port 4851").code == 0
    again = env_values(home.read(ENV_FILE))
    assert again["RELAYBUS_TOKEN"] == first and again["RELAYBUS_PORT"] == "4851"
    assert home("service install --no-start --token s3cret-token").code == 0
    assert env_values(home.read(ENV_FILE))["RELAYBUS_TOKEN"] == "s3cret-token"


def test_uninstall_removes_exactly_what_install_wrote(home: Home) -> None:
    home.write("home/.config/relaybus/config.toml", 'workspace = "mine"\n')
    before = home.tree()
    assert home("service install --no-start").code == 0
    assert changed(before, home.tree()) >= {UNIT, ENV_FILE}
    dry = home("service uninstall --dry-run")
    assert dry.code == 0 and f"# would remove {home.root / UNIT}" in dry.out
    result = home("service uninstall")
    assert result.code == 0, result
    assert f"removed {home.root / UNIT}" in result.out
    after = home.tree()
    assert UNIT not in after and ENV_FILE not in after
    assert after["home/.config/relaybus/config.toml"] == b'workspace = "mine"\n'
    again = home("service uninstall")
    assert again.code == 2 and "no relaybus service is installed" in again.err


def test_a_unit_relaybus_did_not_write_is_never_overwritten_or_removed(home: Home) -> None:
    home.write(UNIT, "[Service]\nExecStart=/usr/bin/true\n")
    before = home.tree()
    for command in ("service install --no-start", "service uninstall"):
        result = home(command)
        assert result.code == 2, result
        assert "was not written by relaybus service install" in result.err
    assert changed(before, home.tree()) == set()


def test_a_value_the_environment_file_cannot_hold_is_refused_and_nothing_written(
    home: Home,
) -> None:
    before = home.tree()
    result = home("service install --no-start --token 'two words'")
    assert result.code == 2, result
    assert "RELAYBUS_TOKEN" in result.err and "environment file" in result.err
    assert changed(before, home.tree()) == set()


def test_status_says_not_installed_or_not_answering_with_exit_3(home: Home) -> None:
    result = home("service status")
    assert result.code == 3 and result.out.startswith("not installed"), result
    port = free_port()
    assert home(f"service install --no-start --port {port}").code == 0
    found = home("service status --json")
    assert found.code == 3
    assert found.json()["installed"] is True and found.json()["healthy"] is False
    assert found.json()["url"] == f"http://127.0.0.1:{port}"
    checks = {c["name"]: c for c in home("doctor --json").json()["checks"]}
    service = checks["relay service (systemd)"]
    assert service["status"] == "warn" and f"127.0.0.1:{port}" in service["detail"]
    assert service["fix"].startswith("relaybus service start")


def test_doctor_says_nothing_of_a_service_that_is_not_installed(home: Home) -> None:
    names = [c["name"] for c in home("doctor --json").json()["checks"]]
    assert not [name for name in names if name.startswith("relay service")]


def test_the_launchd_plist_parses_and_its_program_runs_a_server_with_the_token(
    home: Home,
) -> None:
    port = free_port()
    result = home(f"service install --manager launchd --no-start --port {port}")
    assert result.code == 0, result
    with open(home.root / PLIST, "rb") as f:
        plist = plistlib.load(f)
    assert plist["Label"] == "dev.relaybus.serve" and plist["RunAtLoad"] is True
    assert plist["ProgramArguments"][:2] == ["/bin/sh", "-c"]
    assert plist["StandardOutPath"] == str(home.home / "Library/Logs/relaybus.log")
    token = env_values(home.read(ENV_FILE))["RELAYBUS_TOKEN"]
    with running(plist["ProgramArguments"], dict(home.env), Path(plist["WorkingDirectory"])) as s:
        url = s.expect(ANNOUNCE).removeprefix(ANNOUNCE).split()[0]
        assert url == f"http://127.0.0.1:{port}"
        assert httpx.get(f"{url}/v1/agents", verify=UNUSED_TLS).status_code == 401
        ok = httpx.get(
            f"{url}/v1/agents", headers={"Authorization": f"Bearer {token}"}, verify=UNUSED_TLS
        )
        assert ok.status_code == 200
        assert home("service status --manager launchd --json").json()["healthy"] is True
    assert os.path.exists(home.project / ".relay" / "relay.db")
