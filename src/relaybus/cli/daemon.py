"""``relaybus daemon``: the warm local relay of this relay folder (see
:mod:`relaybus.client.warm`)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from . import render
from .app import HelpGroup, get_app, json_option


def _relay_dir() -> Path:
    """The relay folder of this call (``--dir`` / ``RELAYBUS_DIR``, else found like
    git).

    Raises:
        InvalidInput: the call names a database or a relay server: the warm relay
            serves an embedded relay folder only.
        NoRelay: there is no relay here.
    """
    from ..errors import InvalidInput, NoRelay
    from ..settings import find_relay_dir

    settings = get_app().settings
    if settings.database or settings.url:
        raise InvalidInput(
            "the warm relay serves a relay folder (--dir), not a database or a relay server"
        )
    folder = Path(settings.dir) if settings.dir else find_relay_dir()
    if not (folder / "relay.db").exists():
        raise NoRelay(f"no relay here ({folder}): run `relaybus init`")
    return folder


@click.group(cls=HelpGroup)
def daemon() -> None:
    """The warm local relay: one relay process per relay folder that commands,
    hooks and MCP sessions share, on a Unix socket in the folder (0600).

    It starts when a command first needs it and exits after
    RELAYBUS_DAEMON_IDLE_SECONDS (600) with no request; RELAYBUS_DAEMON=0 turns
    it off (each command then opens the store itself). Its log is relay.log in
    the relay folder. status, start and stop take --json.

    \b
    Examples:
      relaybus daemon status
      relaybus daemon stop
      relaybus daemon logs -n 20
    """


@daemon.command()
@json_option
def status() -> None:
    """Whether the warm relay runs: its pid, version and socket (exit 3 when not)."""
    from ..client import warm

    app = get_app()
    folder = _relay_dir()
    info = warm.probe(folder)
    if app.json:
        render.emit_json({"running": info is not None, **(info.to_json() if info else {})})
    elif info is None:
        click.echo(f"not running ({warm.socket_path(folder)})")
    else:
        click.echo(f"running: pid {info.pid}, relaybus {info.version}, {info.socket}")
    if info is None:
        click.get_current_context().exit(3)


@daemon.command()
@json_option
def start() -> None:
    """Start the warm relay now (nothing to do when it runs)."""
    from ..client import warm

    info = warm.ensure(_relay_dir())
    if get_app().json:
        render.emit_json({"running": True, **info.to_json()})
    else:
        click.echo(f"running: pid {info.pid}, relaybus {info.version}, {info.socket}")


@daemon.command()
@json_option
def stop() -> None:
    """Stop the warm relay (SIGTERM; in-flight requests finish first)."""
    from ..client import warm

    was_running = warm.stop(_relay_dir())
    if get_app().json:
        render.emit_json({"stopped": was_running})
    else:
        click.echo("stopped" if was_running else "not running")


@daemon.command()
@click.option("-n", "--lines", type=click.IntRange(1), default=50, show_default=True)
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines.")
def logs(lines: int, follow: bool) -> None:
    """Print the end of the warm relay's log (relay.log, rotated at 1 MiB)."""
    from ..client import warm

    log = warm.log_path(_relay_dir())
    if not log.exists():
        click.echo(f"no log yet ({log})")
        return
    command = ["tail", "-n", str(lines), *(["-f"] if follow else []), str(log)]
    sys.stdout.flush()
    os.execvp(command[0], command)
