"""``relaybus service``: run ``relaybus serve`` as an always-on user service
(a systemd user unit on Linux, a launchd agent on macOS); see
:mod:`relaybus.tools.service`."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from . import render
from .app import HelpGroup, get_app, json_option

if TYPE_CHECKING:
    from ..tools.service import Manager, Plan

_manager = click.option(
    "--manager",
    type=click.Choice(["systemd", "launchd"]),
    help="The service manager (default: systemd on Linux, launchd on macOS).",
)


def _pick(manager: str | None) -> Manager:
    from ..tools.service import this_manager

    return this_manager() if manager is None else manager  # type: ignore[return-value]


@click.group(cls=HelpGroup)
def service() -> None:
    """Keep a relay server running for you: a systemd user unit or a launchd agent.

    `install` writes the unit (or plist) and an environment file (0600) with a
    generated admin token, loopback by default, and starts it at login;
    `uninstall` removes exactly what install wrote. Clients reach it with
    RELAYBUS_URL and RELAYBUS_TOKEN (install prints both). install, uninstall
    and status take --json.

    \b
    Examples:
      relaybus service install --dry-run     # print every file and command
      relaybus service install --port 4850
      relaybus service status
      relaybus service logs -f
      relaybus service uninstall
    """


@service.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=4850, show_default=True)
@click.option(
    "--token",
    metavar="TOKEN",
    help="The admin token (default: the installed one, else a new random one).",
)
@click.option("--no-start", is_flag=True, help="Write the files; do not enable or start.")
@click.option("--dry-run", is_flag=True, help="Print every file and command; change nothing.")
@_manager
@json_option
def install(
    host: str, port: int, token: str | None, no_start: bool, dry_run: bool, manager: str | None
) -> None:
    """Install and start the relay server as a user service.

    It serves the store of this relay (--dir / --database, else the relay found
    from the current folder, like every command) at http://HOST:PORT with an
    admin token kept in ~/.config/relaybus/service.env (mode 0600). A host
    other than loopback is reachable from the network: the token guards it.
    Running install again keeps the token unless --token gives another.
    """
    from ..tools.service import install as run_install
    from ..tools.service import plan_install

    app = get_app()
    plan = plan_install(manager=_pick(manager), host=host, port=port, store=_store(), token=token)
    if dry_run:
        _show_plan(plan, app.json, "would write")
        return
    ran = run_install(plan, start=not no_start)
    if app.json:
        render.emit_json({**plan.to_json(), "ran": ran, "token_file": str(plan.files[0].path)})
        return
    for planned in plan.files:
        click.echo(f"wrote {planned.path} ({planned.mode:04o})")
    for command in ran:
        click.echo(f"ran   {command}")
    if no_start:
        click.echo("not started: " + "; ".join(" ".join(c) for c in plan.commands))
    click.echo(f"\nexport RELAYBUS_URL={plan.url}")
    click.echo(f"export RELAYBUS_TOKEN=$(sed -n 's/^RELAYBUS_TOKEN=//p' {plan.files[0].path})")


@service.command()
@click.option("--dry-run", is_flag=True, help="Print what it would remove; change nothing.")
@_manager
@json_option
def uninstall(dry_run: bool, manager: str | None) -> None:
    """Stop the service and remove the files `service install` wrote (only those)."""
    from ..tools.service import plan_uninstall
    from ..tools.service import uninstall as run_uninstall

    app = get_app()
    plan = plan_uninstall(_pick(manager))
    if dry_run:
        _show_plan(plan, app.json, "would remove")
        return
    ran = run_uninstall(plan)
    if app.json:
        render.emit_json({**plan.to_json(), "ran": ran})
        return
    for command in ran:
        click.echo(f"ran     {command}")
    for path in plan.removes:
        click.echo(f"removed {path}")


@service.command()
@_manager
@json_option
def status(manager: str | None) -> None:
    """Whether the service is installed, running and answering /healthz.

    Exit status 0 when it answers, 3 when it does not (like `systemctl status`).
    """
    from ..tools.service import status as read_status

    app = get_app()
    found = read_status(_pick(manager))
    if app.json:
        render.emit_json(found)
    elif not found["installed"]:
        click.echo(f"not installed ({found['unit']}): relaybus service install")
    else:
        answer = "answers /healthz" if found["healthy"] else "does not answer /healthz"
        click.echo(f"{found['state']}: {found['url']} {answer}")
        click.echo(f"unit: {found['unit']}\nenvironment: {found['env_file']}")
    if not found["healthy"]:
        click.get_current_context().exit(3)


def _control(action: str) -> click.Command:
    @click.command(name=action, help=f"{action.capitalize()} the installed service.")
    @_manager
    def command(manager: str | None) -> None:
        from ..tools.service import control

        click.echo(f"ran {control(_pick(manager), action)}")

    return command


for _action in ("start", "stop", "restart"):
    service.add_command(_control(_action))


@service.command()
@click.option("-n", "--lines", type=click.IntRange(1), default=50, show_default=True)
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines.")
@_manager
def logs(lines: int, follow: bool, manager: str | None) -> None:
    """Print the service's log (journalctl --user, or the launchd log file)."""
    from ..tools.service import logs_command

    command = logs_command(_pick(manager), lines=lines, follow=follow)
    sys.stdout.flush()
    try:
        os.execvp(command[0], command)
    except FileNotFoundError:
        from ..tools.service import ServiceError

        raise ServiceError(f"{command[0]} is not installed on this machine") from None


def _store() -> tuple[str, str]:
    """The store the service serves: ``--database`` / ``RELAYBUS_DATABASE``, else
    the relay folder (``--dir`` / ``RELAYBUS_DIR``, else found from the cwd)."""
    from ..settings import find_relay_dir

    settings = get_app().settings
    if settings.database:
        return ("RELAYBUS_DATABASE", settings.database)
    folder = Path(settings.dir) if settings.dir else find_relay_dir()
    return ("RELAYBUS_DIR", str(folder.resolve()))


def _show_plan(plan: Plan, as_json: bool, verb: str) -> None:
    if as_json:
        render.emit_json({**plan.to_json(), "dry_run": True})
        return
    for planned in plan.files:
        click.echo(f"# {verb} {planned.path} ({planned.mode:04o})")
        click.echo(planned.shown(plan.token))
    for path in plan.removes:
        click.echo(f"# {verb} {path}")
    click.echo("# would run")
    for command in plan.commands:
        click.echo(" ".join(command))
