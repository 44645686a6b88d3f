"""Spawned agents: ``relaybus spawn``, ``input``, ``screen``, ``logs``.

The warm local relay starts and supervises the program (:mod:`relaybus.runtime.spawn`),
so it outlives the command; these commands are thin calls of the SDK's spawn methods
(``Relay.spawn``, ``send_input``, ``screen``, ``logs``). ``relaybus release NAME``
(:mod:`.tasks`) stops one, ``relaybus agents`` marks them.
"""

from __future__ import annotations

import os
import shlex
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from . import render
from .app import creates_relay, get_app, json_option
from .terminal import approval_mode

if TYPE_CHECKING:
    from ..client import Relay
    from ..models import Preflight, SpawnedAgent

#: ``relaybus.presets.CLIS`` (literal: ``--help`` imports nothing heavy; a
#: test keeps them equal).
CLIS = ("claude", "codex", "gemini", "opencode")
#: ``relaybus.models.RestartPolicy`` values (literal, likewise).
RESTART_POLICIES = ("no", "on-failure", "always")
#: Lines ``relaybus logs`` shows without ``-n``.
LOG_LINES = 200
#: Seconds between two looks at the log with ``logs --follow``.
FOLLOW_EVERY = 0.25


@click.command()
@click.argument("name")
@click.option("--cli", type=click.Choice(CLIS), help="Start this agent CLI (a preset).")
@click.option("--model", metavar="MODEL", help="The model, as the CLI names it (with --cli).")
@click.option(
    "--task",
    metavar="TEXT",
    help="The first task. With --cli: the CLI's prompt (headless: the prompt it runs "
    "once). A command gets it typed in at its first idle moment, or headless in "
    "$RELAYBUS_TASK.",
)
@click.option(
    "--task-id",
    type=int,
    metavar="ID",
    help="Headless: finish task ID when the program exits without doing so "
    "(exit 0: done with its output as the result; else failed).",
)
@click.option(
    "--cwd",
    type=click.Path(file_okay=False, path_type=Path),
    help="The folder it runs in [default: this one].",
)
@click.option("--tag", "tags", multiple=True, metavar="TAG", help="Reachable as tag:TAG (repeat).")
@click.option("--cap", "caps", multiple=True, metavar="CAP", help="A capability, cap:CAP (repeat).")
@click.option(
    "--channel",
    "channels",
    multiple=True,
    metavar="NAME",
    help="Subscribe to a channel (repeat); none = hear every channel.",
)
@click.option(
    "--restart",
    type=click.Choice(RESTART_POLICIES),
    default="no",
    show_default=True,
    help="Start it again after it exits: on-failure (non-zero exit or a signal), always.",
)
@click.option(
    "--headless",
    is_flag=True,
    help="No terminal: run once (a preset's non-interactive form, --task as the prompt), "
    "output to the log.",
)
@click.option(
    "--approval",
    metavar="MODE",
    help="open, guarded or read-only: stored with the agent, and a --cli preset gets its "
    "CLI's permission flags for it (guarded: asks a person; read-only: reads and plans) "
    "[default: RELAYBUS_APPROVAL, else the RELAYBUS_PROFILE's, else open].",
)
@click.argument("command", nargs=-1, metavar="[-- CMD [ARGS]...]")
@json_option
@creates_relay
def spawn(
    name: str,
    cli: str | None,
    model: str | None,
    task: str | None,
    task_id: int | None,
    cwd: Path | None,
    tags: tuple[str, ...],
    caps: tuple[str, ...],
    channels: tuple[str, ...],
    restart: str,
    headless: bool,
    approval: str | None,
    command: tuple[str, ...],
) -> None:
    """Start an agent program NAME that the warm local relay supervises.

    Give --cli (claude, codex, gemini, opencode: a preset that knows the
    CLI's flags for --model, --approval, --task and --headless) or a command
    after --. It keeps running after this command returns; 'relaybus agents'
    marks it, 'relaybus release NAME' stops it.

    \b
    In a terminal (the default) it runs under 'relaybus run --name NAME', which
    registers it and types its mail in when it is idle; 'relaybus screen NAME'
    shows the terminal, 'relaybus input NAME TEXT' types into it. Headless it
    runs with no terminal and stdin closed, registered as NAME until it exits;
    with --task-id, its exit finishes that task. Output of both goes to the log
    ('relaybus logs NAME').

    \b
    With --cli the CLI is looked up on PATH first and its version printed; a
    missing CLI is an error (exit 2) and nothing starts. The program gets this
    environment (PATH, API keys) with RELAYBUS_AGENT=NAME and the relay folder.

    \b
    Examples:
      relaybus spawn reviewer --cli claude --model sonnet --cap review
      relaybus spawn fixer --cli codex --approval guarded --task "Fix the failing test"
      relaybus spawn summary --cli claude --headless --task "Summarise CHANGES.md"
      relaybus spawn worker --restart on-failure --tag backend -- python3 worker.py
      relaybus spawn bot --json -- ./bot.sh --verbose
    """
    from ..errors import InvalidInput

    app = get_app()
    if (cli is None) == (not command):
        raise InvalidInput(
            "give --cli NAME or a command after --, not both"
            if command
            else "what to run? give --cli claude|codex|gemini|opencode or -- CMD ARGS..."
        )
    if cli is None and model is not None:
        raise InvalidInput("--model is for a preset CLI: give --cli, or put it in the command")
    if task_id is not None and not headless:
        raise InvalidInput("--task-id needs --headless (its exit finishes the task)")
    mode = approval_mode(approval)
    folder = (cwd or Path.cwd()).resolve()
    if not folder.is_dir():
        raise InvalidInput(f"--cwd {cwd}: no such folder")
    if cli is not None:
        found = _preflight(cli)
        if not app.json:
            render.note(f"found {cli} {found.version} at {found.path}")
    agent = app.relay.spawn(
        name,
        cli=cli,
        command=list(command) or None,
        model=model,
        task=task,
        cwd=str(folder),
        tags=tags,
        capabilities=caps,
        channels=channels,
        restart=restart,
        headless=headless,
        approval=mode,
        env=dict(os.environ),
        task_id=task_id,
        preflight=False,
    )
    if app.json:
        render.emit_json(render.dump(agent))
        return
    how = "headless" if agent.headless else "in a terminal"
    click.echo(f"spawned {agent.name} (pid {agent.pid or '-'}, {how})")
    click.echo(f"  command: {shlex.join(agent.command)}")
    click.echo(f"  in: {agent.cwd}")
    looks = "relaybus logs " + agent.name
    if not agent.headless:
        looks += f", relaybus screen {agent.name}"
    click.echo(f"  see: {looks}; stop: relaybus release {agent.name}")


def _preflight(cli: str) -> Preflight:
    """The preflight of ``cli`` on this environment's PATH.

    Raises:
        InvalidInput: it is missing or does not answer ``--version``.
    """
    from ..errors import InvalidInput
    from ..presets import preflight

    [found] = preflight([cli])
    if not found.ok:
        raise InvalidInput(f"preflight: {found.error}", cli=cli)
    return found


@click.command()
@click.argument("name")
@click.argument("text")
@click.option("--enter", is_flag=True, help="Press Enter after TEXT.")
@json_option
def input(name: str, text: str, enter: bool) -> None:  # noqa: A001 (the command's name)
    """Type TEXT into spawned agent NAME's terminal, as keystrokes.

    TEXT goes in as it is (\\r is Enter, \\x03 Ctrl-C, \\x1b Escape when your
    shell passes them, e.g. $'...' in bash); --enter presses Enter after it.
    For mail that waits until the agent is idle, use 'relaybus send' instead.

    \b
    Examples:
      relaybus input reviewer "/clear" --enter
      relaybus input reviewer $'\\x1b'
      relaybus input worker "yes" --enter --json
    """
    app = get_app()
    app.relay.send_input(name, text, enter=enter)
    if app.json:
        render.emit_json({"name": name, "typed": len(text), "enter": enter})
        return
    click.echo(f"typed {len(text)} character(s) into {name}" + (" and Enter" if enter else ""))


@click.command()
@click.argument("name")
@json_option
def screen(name: str) -> None:
    """Show what spawned agent NAME's terminal shows now.

    As 'tmux capture-pane' gives a pane: the visible rows as text, trailing
    blanks trimmed; --json adds the size and the cursor.

    \b
    Examples:
      relaybus screen reviewer
      relaybus screen reviewer --json | jq -r '.lines[]'
    """
    app = get_app()
    shown = app.relay.screen(name)
    if app.json:
        render.emit_json(render.dump(shown))
        return
    lines = list(shown.lines)
    while lines and not lines[-1].strip():
        lines.pop()
    for line in lines:
        click.echo(line)


@click.command()
@click.argument("name")
@click.option(
    "-n",
    "--lines",
    type=click.IntRange(min=1),
    default=LOG_LINES,
    show_default=True,
    help="The last N lines.",
)
@click.option(
    "-f", "--follow", is_flag=True, help="Keep printing new output until the program ends."
)
@json_option
def logs(name: str, lines: int, follow: bool) -> None:
    """Print the output of spawned agent NAME (its log), last lines first.

    The log holds everything the program wrote, across restarts. --follow
    prints new lines as they come until the program has ended for good
    (exited or released; Ctrl-C stops following). --json prints
    {"name", "lines"}; with --follow, a JSON object {"name", "line"} for
    each line, as they come.

    \b
    Examples:
      relaybus logs reviewer
      relaybus logs worker -n 50 --follow
      relaybus logs summary --json
    """
    app = get_app()
    relay = app.relay
    if follow:
        _follow(relay, name, lines, as_json=app.json)
        return
    shown = relay.logs(name, lines=lines)
    if app.json:
        render.emit_json({"name": name, "lines": shown})
        return
    for line in shown:
        click.echo(line)


def _follow(relay: Relay, name: str, lines: int, *, as_json: bool) -> None:
    """Print the last ``lines`` lines of NAME's log, then each new one as it comes
    (a look every :data:`FOLLOW_EVERY` seconds, as ``tail -f`` does), until the agent
    has ended for good: then what its log gained meanwhile, and return. With
    ``as_json`` each line is a JSON object ``{"name", "line"}`` of its own."""
    import json

    seen: list[str] = []
    window = max(lines, LOG_LINES)
    first = True
    while True:
        ended = _ended(relay.spawned_agent(name))
        current = relay.logs(name, lines=lines if first else window)
        for line in _after(seen, current):
            click.echo(json.dumps({"name": name, "line": line}) if as_json else line)
        sys.stdout.flush()
        seen, first = current, False
        if ended:
            return
        time.sleep(FOLLOW_EVERY)


def _ended(agent: SpawnedAgent) -> bool:
    return str(agent.state) in ("exited", "released")


def _after(seen: list[str], current: list[str]) -> list[str]:
    """The lines of ``current`` (the log's last lines now) after those of ``seen`` (its
    last lines before): ``current`` past the longest end of ``seen`` it starts with."""
    for start in range(len(seen)):
        tail = seen[start:]
        if current[: len(tail)] == tail:
            return current[len(tail) :]
    return current
