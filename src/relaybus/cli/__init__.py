"""The ``relaybus`` command line: a thin click group over :class:`relaybus.Relay`.

Each command parses its options, calls one SDK method and renders the result
(:mod:`.render`). :func:`main` is the console script: it turns every
:class:`~relaybus.errors.RelayError` and click usage error into one line on
stderr and an exit code (2 for bad input or not found, 1 otherwise).

Each command is imported only when it runs (or when help lists it,
:class:`LazyCommands`): every call is a whole process, so ``relaybus agents`` must
not pay for ``watch``, ``serve``, ``run`` or the hooks.
"""

from __future__ import annotations

import errno
import json
import os
import sys
from collections.abc import Iterator, MutableMapping, Sequence
from pathlib import Path

import click

from .. import __version__
from ..errors import RelayError
from .app import App, HelpGroup, database_option, get_app, json_option, one_line

#: Every command, in the order help lists them (a workflow), with where it lives:
#: ``module:attribute`` under this package.
COMMANDS = {
    "init": "admin:init",
    "migrate": "admin:migrate",
    "register": "agents:register",
    "agents": "agents:agents",
    "whoami": "me:whoami",
    "label": "me:label",
    "tags": "me:tags",
    "caps": "me:caps",
    "channels": "me:channels",
    "approval": "me:approval",
    "send": "messages:send",
    "reply": "messages:reply",
    "inbox": "messages:inbox",
    "thread": "messages:thread",
    "history": "messages:history",
    "messages": "messages:list_messages",
    "status": "status:status",
    "tasks": "tasks:tasks",
    "task": "tasks:task",
    "claim": "tasks:claim",
    "release": "tasks:release",
    "pair": "pairs:pair",
    "heartbeat": "agents:heartbeat",
    "unregister": "agents:unregister",
    "prune": "admin:prune",
    "events": "admin:events",
    "integration": "integrations:integration",
    "watch": "watch:watch",
    "ui": "ui:ui",
    "spawn": "spawn:spawn",
    "input": "spawn:input",
    "screen": "spawn:screen",
    "logs": "spawn:logs",
    "demo": "admin:demo",
    "workflow": "workflow:workflow",
    "serve": "server:serve",
    "service": "service:service",
    "daemon": "daemon:daemon",
    "hook": "hook:hook",
    "mcp": "mcp:mcp",
    "install": "setup:install",
    "uninstall": "setup:uninstall",
    "doctor": "setup:doctor",
    "run": "run:run",
    "tmux": "tmux:tmux",
}

HELP = """Messaging between AI coding agents: inboxes, threads, claimable tasks.

Agents register, send each other messages, read their inboxes (or wait for
mail), and claim tasks that exactly one agent gets.

\b
Targets (send --to):
  alice               the agent with id alice
  tag:backend         every agent tagged backend
  cap:review          every agent with the capability review
  "label:test writer" every agent with that label
  broadcast           every other agent
  --channel NAME narrows any target to agents that hear NAME.

\b
Who am I: send, reply, inbox, claim, release, heartbeat, unregister (and task
updates) act as the agent named by --as NAME or RELAYBUS_AGENT=NAME; whoami,
label, tags, caps, channels and approval also find a coding session's own agent.

\b
The relay lives in .relay/relay.db at the repository root (found like git,
never above the folder holding .git; outside a repository, in the current
folder), private to you. 'relaybus init' creates it (register, run, mcp and
serve do too); until then other commands say "no relay here" (exit 2).
--dir / RELAYBUS_DIR picks another folder; --database / RELAYBUS_DATABASE
a SQLAlchemy URL (sqlite:///... or postgresql://...).

\b
Over the network: with --url / RELAYBUS_URL set to the address of a
'relaybus serve', every command talks to that server instead, as
RELAYBUS_TOKEN: the server's admin token, or an agent's own token (register
prints it). 'relaybus watch' shows what happens, live; 'relaybus ui' opens
the dashboard in the browser.

\b
Examples:
  relaybus register alice --cap review && export RELAYBUS_AGENT=alice
  relaybus --as bob send --to cap:review --claimable --subject "Review PR 7" "ready"
  relaybus --as alice inbox --wait 60
  relaybus --as alice claim 3 && relaybus --as alice task 3 --status done

Every command takes --json. Errors are one line on stderr; the exit code is 2
for bad input or an unknown name, 1 for other failures.
"""


class LazyCommands(MutableMapping[str, click.Command]):
    """A group's commands by name, each imported from ``module:attribute`` (under this
    package) when it is first looked up; iterating gives the names in the order given.

    Click's lazy subcommands
    (https://click.palletsprojects.com/en/stable/complex/#lazily-loading-subcommands)
    override ``get_command`` and ``list_commands``; this does the same one level down,
    as the ``commands`` mapping click's ``Group`` accepts, so that every reader of
    ``Group.commands`` (click's "Did you mean ...?" for a mistyped command, the docs
    tests) sees every name without importing any command.
    """

    def __init__(self, paths: dict[str, str]) -> None:
        self._paths = dict(paths)
        self._loaded: dict[str, click.Command] = {}

    def __getitem__(self, name: str) -> click.Command:
        command = self._loaded.get(name)
        if command is None:
            module, attribute = self._paths[name].split(":")
            # __import__, not importlib.import_module: ``python -X importtime`` only
            # shows imports made through __import__, and tests/cli/test_imports.py
            # reads the chain of a forbidden import from it.
            loaded = __import__(f"{__name__}.{module}", fromlist=[attribute])
            command = getattr(loaded, attribute)
            if not isinstance(command, click.Command):
                raise TypeError(f"{self._paths[name]} is not a click command")
            self._loaded[name] = command
        return command

    def __setitem__(self, name: str, command: click.Command) -> None:
        self._loaded[name] = command
        self._paths.setdefault(name, "")

    def __delitem__(self, name: str) -> None:
        del self._paths[name]
        self._loaded.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        return iter(self._paths)

    def __len__(self) -> int:
        return len(self._paths)


class RelayGroup(HelpGroup):
    """Lists commands in the order they were added (a workflow), not alphabetically."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)


@click.group(
    cls=RelayGroup,
    commands=LazyCommands(COMMANDS),
    help=HELP,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.option(
    "--dir",
    "relay_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="The relay folder holding relay.db (RELAYBUS_DIR).",
)
@database_option
@click.option(
    "--url",
    metavar="URL",
    help="A relay server to talk to, e.g. http://127.0.0.1:4850 (RELAYBUS_URL).",
)
@click.option("--as", "as_", metavar="NAME", help="The agent to act as (RELAYBUS_AGENT).")
@click.option(
    "--epoch",
    type=int,
    envvar="RELAYBUS_EPOCH",
    help="Act only while NAME is still at this registration epoch (RELAYBUS_EPOCH).",
)
@click.option("--workspace", metavar="NAME", help="The workspace (RELAYBUS_WORKSPACE; default).")
@click.version_option(__version__, "-V", "--version", prog_name="relaybus")
@json_option
def cli(
    relay_dir: Path | None,
    database: str | None,
    url: str | None,
    as_: str | None,
    epoch: int | None,
    workspace: str | None,
) -> None:
    app = get_app()
    app.overrides = {
        "dir": relay_dir,
        "database": database,
        "url": url,
        "agent": as_,
        "workspace": workspace,
    }
    app.epoch = epoch
    ctx = click.get_current_context()
    app.command = ctx.invoked_subcommand
    ctx.call_on_close(app.close)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the CLI and exit: 0 on success, the error's exit code otherwise.

    Never shows a traceback unless ``RELAYBUS_DEBUG`` is set. Without ``argv`` (the
    console script) the command is taken to be the whole process (see
    :attr:`App.own_process`).
    """
    app = App(own_process=argv is None)
    try:
        _run(app, argv)
    except SystemExit as exc:
        if app.leave_at_once:
            leave(exc.code)
        raise


def _run(app: App, argv: Sequence[str] | None) -> None:
    try:
        code = cli.main(args=argv, prog_name="relaybus", obj=app, standalone_mode=False)
    except RelayError as err:
        sys.exit(app.fail(err))
    except click.ClickException as err:
        sys.exit(app.fail_usage(err))
    except click.Abort:
        click.echo("relaybus: interrupted", err=True)
        sys.exit(130)
    except OSError as exc:
        if exc.errno != errno.EPIPE:
            _crash(app, exc)
        # The reader went away (`relaybus inbox | head -1`): exit quietly, as the
        # Python docs advise, without a second error when stdout is flushed at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
    except Exception as exc:  # the top-level boundary: one line, not a traceback
        _crash(app, exc)
    sys.exit(code if isinstance(code, int) else 0)


def leave(code: object) -> None:
    """End this process now with ``code`` (``None`` is 0), as ``sys.exit`` would once the
    command has finished: stdout and stderr flushed, logging's handlers flushed and
    closed (what its exit hook does), then ``os._exit``, without the interpreter's
    teardown (deleting every module and object it loaded: about 5 % of an in-process hot
    command's CPU time). Returns, leaving the exit to ``sys.exit``, when ``code`` is a
    message to print or stdout cannot be flushed.

    For a hot command run as the console script (:attr:`App.leave_at_once`): its relay
    is closed by then (click closes the context first, :meth:`App.close`, which stops
    the store's threads), and the only exit hooks it registered are logging's (above)
    and ``weakref.finalize``'s, with no finalizer marked to run at exit.
    """
    if code is None:
        code = 0
    if not isinstance(code, int):
        return
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        return
    if "logging" in sys.modules:
        import logging

        logging.shutdown()
    os._exit(code)


def _crash(app: App, exc: Exception) -> None:
    if os.environ.get("RELAYBUS_DEBUG"):
        raise exc
    message = f"internal error: {type(exc).__name__}: {one_line(str(exc))}"
    if app.json:
        click.echo(json.dumps({"error": "internal error", "message": message}), err=True)
    else:
        click.echo(f"relaybus: {message} (RELAYBUS_DEBUG=1 shows the traceback)", err=True)
    sys.exit(1)


__all__ = ["COMMANDS", "cli", "main"]
