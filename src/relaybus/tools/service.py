"""``relaybus service``: the relay server as an always-on user service.

On Linux a systemd user unit (``~/.config/systemd/user/relaybus.service``), on
macOS a launchd agent (``~/Library/LaunchAgents/dev.relaybus.serve.plist``),
each running ``relaybus serve`` with the settings of an environment file
(``~/.config/relaybus/service.env``, mode 0600) that holds a generated admin
token, the address (loopback unless ``--host`` says otherwise) and the store.

Every file carries :data:`MARKER`, so :func:`uninstall` removes exactly the
files :func:`install` wrote and refuses to touch one it did not write. The
plan (:class:`Plan`) is built first and only then carried out, so
``--dry-run`` prints exactly the files and commands a real run would write and
run.

The service managers' own tools do the work: ``systemctl --user`` and
``journalctl --user`` (systemd.unit(5), systemd.exec(5)), ``launchctl``
(launchd.plist(5)).
"""

from __future__ import annotations

import os
import plistlib
import re
import secrets
import shlex
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .. import __version__
from ..errors import InvalidInput, RelayError
from ..settings import user_config_path
from .install.files import delete_file, read_text, write_text

Manager = Literal["systemd", "launchd"]
MANAGERS: tuple[Manager, ...] = ("systemd", "launchd")

#: In every file :func:`install` writes; :func:`uninstall` removes only files with it.
MARKER = "written by relaybus service install"
UNIT_NAME = "relaybus.service"
LAUNCHD_LABEL = "dev.relaybus.serve"
#: Environment file values are written bare: no quoting rules differ between
#: systemd's ``EnvironmentFile=`` and a POSIX shell's ``.`` for these characters.
_BARE = re.compile(r"[A-Za-z0-9_@%+=:,./~-]+")
#: Seconds ``status`` waits for ``/healthz``.
HEALTH_TIMEOUT = 2.0


class ServiceError(RelayError):
    """The service manager refused or is not reachable (``systemctl --user``
    without a user session, ``launchctl`` failing): the message says which
    command and why."""


@dataclass(frozen=True)
class PlannedFile:
    """A file :func:`install` writes: ``path``, ``text`` and permission ``mode``;
    ``secret`` files are shown masked."""

    path: Path
    text: str
    mode: int
    secret: bool = False

    def shown(self, token: str) -> str:
        """The text as printed: the token replaced by a placeholder."""
        return self.text.replace(token, "<token>") if self.secret else self.text


@dataclass(frozen=True)
class Plan:
    """What :func:`install` (or :func:`uninstall`) will do, in order: write (or
    remove) ``files``, then run ``commands``."""

    manager: Manager
    files: list[PlannedFile]
    commands: list[list[str]]
    url: str
    token: str
    #: Whether the token was generated now (else kept from the installed file).
    new_token: bool = False
    removes: list[Path] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The plan for ``--json``: files without their secret values."""
        return {
            "manager": self.manager,
            "url": self.url,
            "files": [
                {"path": str(f.path), "mode": f"{f.mode:04o}", "text": f.shown(self.token)}
                for f in self.files
            ],
            "removes": [str(p) for p in self.removes],
            "commands": [shlex.join(c) for c in self.commands],
        }


@dataclass(frozen=True)
class Paths:
    """Where the service's files live for one manager (``env``: environment)."""

    manager: Manager
    unit: Path
    env_file: Path
    log: Path | None

    @classmethod
    def of(cls, manager: Manager, env: Mapping[str, str] | None = None) -> Paths:
        """The paths under ``$XDG_CONFIG_HOME`` (systemd) or ``~/Library`` (launchd)."""
        env = os.environ if env is None else env
        config = user_config_path(env).parent
        home = Path(env.get("HOME") or os.path.expanduser("~"))
        if manager == "systemd":
            unit = config.parent / "systemd" / "user" / UNIT_NAME
            return cls(manager, unit, config / "service.env", None)
        agents = home / "Library" / "LaunchAgents" / f"{LAUNCHD_LABEL}.plist"
        return cls(manager, agents, config / "service.env", home / "Library/Logs/relaybus.log")


def this_manager(platform: str | None = None) -> Manager:
    """``systemd`` on Linux, ``launchd`` on macOS.

    Raises:
        InvalidInput: another platform (run ``relaybus serve`` under its own manager).
    """
    platform = platform or sys.platform
    if platform.startswith("linux"):
        return "systemd"
    if platform == "darwin":
        return "launchd"
    raise InvalidInput(
        f"relaybus service knows systemd (Linux) and launchd (macOS), not {platform}: "
        "run `relaybus serve` under your platform's service manager",
        platform=platform,
    )


def plan_install(
    *,
    manager: Manager,
    host: str,
    port: int,
    store: tuple[str, str],
    token: str | None = None,
    python: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Plan:
    """The files and commands that install the service.

    ``store`` is ``("RELAYBUS_DIR", absolute folder)`` or ``("RELAYBUS_DATABASE",
    url)``. Without ``token``, the installed file's token is kept (clients keep
    working after a re-install), else one is generated (``secrets.token_urlsafe``).

    Raises:
        InvalidInput: a value the environment file cannot hold as written, or a
            file at the unit's path that relaybus did not write.
    """
    paths = Paths.of(manager, env)
    for path in (paths.unit, paths.env_file):
        _refuse_foreign(path)
    kept = _installed_token(paths.env_file)
    new_token = token is None and kept is None
    token = token or kept or secrets.token_urlsafe(32)
    if not token.strip():
        raise InvalidInput("the admin token is empty")
    python = python or sys.executable
    values = {"RELAYBUS_TOKEN": token, "RELAYBUS_HOST": host, "RELAYBUS_PORT": str(port)}
    values[store[0]] = store[1]
    env_text = _env_file(values)
    shown_host = f"[{host}]" if ":" in host else host
    url = f"http://{shown_host}:{port}"
    env_file = PlannedFile(paths.env_file, env_text, 0o600, secret=True)
    if manager == "systemd":
        unit = PlannedFile(paths.unit, _systemd_unit(python, paths.env_file, url), 0o644)
        commands = [
            ["systemctl", "--user", "daemon-reload"],
            ["systemctl", "--user", "enable", "--now", UNIT_NAME],
        ]
    else:
        assert paths.log is not None
        plist = _launchd_plist(python, paths.env_file, paths.log, paths.env_file.parent)
        unit = PlannedFile(paths.unit, plist, 0o644)
        commands = [["launchctl", "bootstrap", f"gui/{os.getuid()}", str(paths.unit)]]
    return Plan(manager, [env_file, unit], commands, url, token, new_token)


def plan_uninstall(manager: Manager, env: Mapping[str, str] | None = None) -> Plan:
    """Stop and disable the service, then remove the files :func:`install` wrote
    (those that carry :data:`MARKER`; the others are left and named).

    Raises:
        InvalidInput: nothing is installed, or a file at one of the paths was not
            written by relaybus.
    """
    paths = Paths.of(manager, env)
    removes = [p for p in (paths.unit, paths.env_file) if p.exists()]
    if not removes:
        raise InvalidInput(
            f"no relaybus service is installed ({paths.unit} does not exist)",
            path=str(paths.unit),
        )
    for path in removes:
        _refuse_foreign(path)
    if manager == "systemd":
        commands = [["systemctl", "--user", "disable", "--now", UNIT_NAME]]
        commands.append(["systemctl", "--user", "daemon-reload"])
    else:
        commands = [["launchctl", "bootout", f"gui/{os.getuid()}/{LAUNCHD_LABEL}"]]
    token = _installed_token(paths.env_file) or ""
    return Plan(manager, [], commands, "", token, removes=removes)


def install(plan: Plan, *, start: bool = True) -> list[str]:
    """Write the plan's files (atomically; the environment file 0600 from its
    first byte), then run its commands when ``start``. Returns the commands run.

    Raises:
        ServiceError: the service manager is not reachable (checked before any
            file is written) or a command failed.
        OSError: a file cannot be written.
    """
    if start:
        check_manager(plan.manager)
    for planned in plan.files:
        write_text(planned.path, planned.text, mode=planned.mode)
    if not start:
        return []
    return [_run(command) for command in plan.commands]


def uninstall(plan: Plan, *, stop: bool = True) -> list[str]:
    """Run the plan's commands (when ``stop``; a unit that is already stopped or
    unknown is fine), then remove its files. Returns the commands run."""
    ran = []
    if stop and manager_reachable(plan.manager):
        for command in plan.commands:
            subprocess.run(command, capture_output=True, text=True, check=False)
            ran.append(shlex.join(command))
    for path in plan.removes:
        delete_file(path)
    return ran


def control(manager: Manager, action: str, env: Mapping[str, str] | None = None) -> str:
    """``start``, ``stop`` or ``restart`` the installed service; returns the command.

    Raises:
        InvalidInput: not installed. ServiceError: the manager refused.
    """
    paths = Paths.of(manager, env)
    if not paths.unit.exists():
        raise InvalidInput(
            "no relaybus service is installed: run `relaybus service install`",
            path=str(paths.unit),
        )
    check_manager(manager)
    if manager == "systemd":
        return _run(["systemctl", "--user", action, UNIT_NAME])
    domain = f"gui/{os.getuid()}"
    command = {
        "start": ["launchctl", "bootstrap", domain, str(paths.unit)],
        "stop": ["launchctl", "bootout", f"{domain}/{LAUNCHD_LABEL}"],
        "restart": ["launchctl", "kickstart", "-k", f"{domain}/{LAUNCHD_LABEL}"],
    }[action]
    return _run(command)


def status(manager: Manager, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """What is installed and whether it answers.

    Returns:
        ``{"manager", "installed", "unit", "env_file", "url", "state", "healthy"}``:
        ``state`` is the manager's word (``active``, ``inactive``, ``failed``,
        ``running`` …) or ``"unknown"`` when the manager cannot be asked;
        ``healthy`` whether ``GET /healthz`` answered 200 within
        :data:`HEALTH_TIMEOUT` seconds.
    """
    paths = Paths.of(manager, env)
    values = _read_env(paths.env_file)
    installed = paths.unit.exists()
    host = values.get("RELAYBUS_HOST", "127.0.0.1")
    url = f"http://{host}:{values['RELAYBUS_PORT']}" if "RELAYBUS_PORT" in values else None
    state = "not installed"
    if installed:
        state = _state(manager)
    return {
        "manager": manager,
        "installed": installed,
        "unit": str(paths.unit),
        "env_file": str(paths.env_file),
        "url": url,
        "state": state,
        "healthy": url is not None and healthy(url),
    }


def logs_command(
    manager: Manager, *, lines: int, follow: bool, env: Mapping[str, str] | None = None
) -> list[str]:
    """The command that shows the service's log: ``journalctl --user`` for
    systemd, ``tail`` of the log file for launchd."""
    if manager == "systemd":
        command = ["journalctl", "--user", "-u", UNIT_NAME, "-n", str(lines), "--no-pager"]
        return [*command, "-f"] if follow else command
    log = Paths.of(manager, env).log
    return ["tail", "-n", str(lines), *(["-f"] if follow else []), str(log)]


def healthy(url: str, timeout: float = HEALTH_TIMEOUT) -> bool:
    """Whether ``GET url/healthz`` answers 200 (the standard library's client: a
    status check stays cheap)."""
    import urllib.request

    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=timeout) as response:
            return bool(response.status == 200)
    except (OSError, ValueError):
        return False


def manager_reachable(manager: Manager) -> bool:
    """Whether the service manager answers: ``systemctl --user`` has a user
    session bus, or ``launchctl`` exists."""
    try:
        check_manager(manager)
    except ServiceError:
        return False
    return True


def check_manager(manager: Manager) -> None:
    """Raises :class:`ServiceError` naming why the manager cannot be used."""
    probe = ["systemctl", "--user", "show-environment"] if manager == "systemd" else None
    if probe is None:
        probe = ["launchctl", "version"]
    try:
        done = subprocess.run(probe, capture_output=True, text=True, check=False, timeout=10)
    except FileNotFoundError:
        raise ServiceError(f"{probe[0]} is not installed on this machine") from None
    if done.returncode != 0:
        why = (done.stderr or done.stdout).strip().splitlines()
        raise ServiceError(
            f"`{shlex.join(probe)}` failed ({why[-1] if why else done.returncode}): "
            "this session has no service manager to talk to; pass --no-start to only "
            "write the files",
            command=shlex.join(probe),
        )


# -- the files ---------------------------------------------------------------------


def _header(comment: str) -> str:
    return f"{comment} {MARKER} (relaybus {__version__}); `relaybus service uninstall` removes it"


def _env_file(values: Mapping[str, str]) -> str:
    lines = [_header("#")]
    for name, value in values.items():
        if not _BARE.fullmatch(value):
            raise InvalidInput(
                f"{name}={value!r} has characters the service's environment file cannot "
                "hold as written (spaces, quotes, $, newlines): choose a plainer value",
                setting=name,
            )
        lines.append(f"{name}={value}")
    return "\n".join(lines) + "\n"


def _systemd_unit(python: str, env_file: Path, url: str) -> str:
    # systemd.service(5): ExecStart's first word is an absolute path, quoted with
    # double quotes when it has spaces; % starts a specifier, so it is doubled.
    def quoted(value: str) -> str:
        value = value.replace("%", "%%")
        return f'"{value}"' if " " in value else value

    return "\n".join(
        [
            _header("#"),
            "[Unit]",
            f"Description=relaybus relay server ({url})",
            "After=network-online.target",
            "",
            "[Service]",
            "Type=exec",
            f"EnvironmentFile={quoted(str(env_file))}",
            f"ExecStart={quoted(python)} -m relaybus serve",
            "Restart=on-failure",
            "RestartSec=2",
            "",
            "[Install]",
            "WantedBy=default.target",
            "",
        ]
    )


def _launchd_plist(python: str, env_file: Path, log: Path, workdir: Path) -> str:
    # launchd has no environment file: a POSIX shell reads it (set -a exports
    # every assignment), then becomes relaybus serve.
    body = plistlib.dumps(
        {
            "Label": LAUNCHD_LABEL,
            "ProgramArguments": [
                "/bin/sh",
                "-c",
                'set -a && . "$0" && exec "$1" -m relaybus serve',
                str(env_file),
                python,
            ],
            "RunAtLoad": True,
            "KeepAlive": {"SuccessfulExit": False},
            "WorkingDirectory": str(workdir),
            "StandardOutPath": str(log),
            "StandardErrorPath": str(log),
        }
    ).decode("utf-8")
    head, _, rest = body.partition("<plist")
    return f"{head}<!-- {MARKER} (relaybus {__version__}) -->\n<plist{rest}"


def _refuse_foreign(path: Path) -> None:
    text = read_text(path)
    if text is not None and MARKER not in text:
        raise InvalidInput(
            f"{path} exists and was not written by relaybus service install: "
            "move it away or remove it first; nothing was changed",
            path=str(path),
        )


def _read_env(path: Path) -> dict[str, str]:
    text = read_text(path) or ""
    pairs = (line.partition("=") for line in text.splitlines() if not line.startswith("#"))
    return {name: value for name, sep, value in pairs if sep}


def _installed_token(path: Path) -> str | None:
    return _read_env(path).get("RELAYBUS_TOKEN") or None


def _state(manager: Manager) -> str:
    if manager == "systemd":
        command = ["systemctl", "--user", "is-active", UNIT_NAME]
    else:
        command = ["launchctl", "print", f"gui/{os.getuid()}/{LAUNCHD_LABEL}"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=10)
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return "unknown"
    if manager == "systemd":
        word = done.stdout.strip()
        return word if word and done.returncode in (0, 3) else "unknown"
    match = re.search(r"state = (\w+)", done.stdout)
    return match.group(1) if match else ("unknown" if done.returncode else "loaded")


def _run(command: Sequence[str]) -> str:
    done = subprocess.run(list(command), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        why = (done.stderr or done.stdout).strip().splitlines()
        raise ServiceError(
            f"`{shlex.join(command)}` failed: {why[-1] if why else f'exit {done.returncode}'}",
            command=shlex.join(command),
        )
    return shlex.join(command)
