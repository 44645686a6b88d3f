"""``relaybus tmux attach|look``: an agent bound to a tmux pane (see
:mod:`relaybus.runtime.tmux`)."""

from __future__ import annotations

import json
import signal
import sys
from types import FrameType

import click

from . import render
from .app import HelpGroup, creates_relay, get_app, json_option
from .terminal import terminal_agent_options


def _socket_options(func: click.decorators.FC) -> click.decorators.FC:
    func = click.option(
        "-L",
        "--socket-name",
        metavar="NAME",
        help="The tmux server named NAME (tmux -L).",
    )(func)
    return click.option(
        "-S",
        "--socket",
        "socket_path",
        metavar="PATH",
        help="The tmux server at socket PATH (tmux -S); default: the one of $TMUX, "
        "else tmux's default server.",
    )(func)


@click.group(
    "tmux", cls=HelpGroup, short_help="Bind an agent to a tmux pane; show the pane's screen."
)
@json_option
def tmux() -> None:
    """Agents that live in tmux panes.

    'attach' binds an agent to a pane and types its messages into the pane
    whenever the pane has been quiet for a moment; 'look' shows the pane's
    screen, found from the agent's name alone.

    \b
    Examples:
      relaybus tmux attach %3 --name reviewer --cap review
      relaybus tmux attach work:0.1 --name builder --prompt '\\$$'
      relaybus tmux attach %4 --name py --format raw --prompt '^>>> '
      relaybus tmux look reviewer --lines 20
    """


@tmux.command("attach")
@click.argument("pane")
@click.option("--name", required=True, metavar="NAME", help="The agent's id.")
@terminal_agent_options
@_socket_options
@json_option
@creates_relay
def attach(
    pane: str,
    name: str,
    label: str | None,
    tags: tuple[str, ...],
    caps: tuple[str, ...],
    channels: tuple[str, ...],
    quiet: float,
    prompt: str | None,
    inject: str,
    message_format: str,
    claim_first: bool,
    quiet_claims: bool,
    socket_path: str | None,
    socket_name: str | None,
) -> None:
    """Bind agent NAME to tmux pane PANE and type its messages into the pane.

    PANE is any tmux target: %3, work:0.1, work (its active pane). The agent is
    registered with the pane's stable id and server socket in its meta, so
    'relaybus tmux look NAME' finds the pane later.

    Each message is typed when the pane has printed nothing for --quiet
    seconds (and its prompt line matches --prompt, if given), one at a time,
    oldest first: a one-line message with send-keys, a longer one as a paste
    (bracketed when the program asked for it), then Enter; --format raw types
    the body alone (for a REPL or a shell), framed (default) with who sent it
    and how to reply. It is delivered once typed and read when the pane goes
    quiet again (with --prompt: back at its prompt). Messages never get
    lost: whatever was not typed stays unread for the next attach.

    While attached, the tasks the agent holds are renewed, each by the lease
    it was claimed with; --claim-first claims a claimable message's task
    before typing it (the others get a one-line notice, or nothing with
    --quiet-claims).

    Runs in the foreground until the pane closes or Ctrl-C / SIGTERM, then
    marks the agent offline. With --json it prints one JSON line when bound
    (agent, epoch, pane, socket, target) and one when it ends (agent, ended).
    """
    from ..errors import RelayError
    from ..runtime import IdleGate, parse_format, parse_mode
    from ..runtime.tmux import Binding, PaneAgent, TmuxServer, bind

    app = get_app()
    gate = IdleGate(quiet, prompt)
    mode = parse_mode(inject)
    server = TmuxServer.choose(socket_path=socket_path, socket_name=socket_name)
    found = server.pane(pane)
    fmt = parse_format(message_format)
    handle = bind(
        app.relay,
        name,
        found,
        label=label,
        tags=tags,
        capabilities=caps,
        channels=channels,
        message_format=fmt.value,
    )
    binding = Binding.of_pane(found)
    agent = PaneAgent(
        handle,
        server,
        found,
        gate=gate,
        mode=mode,
        message_format=fmt,
        claim_first=claim_first,
        claim_notices=not quiet_claims,
    )

    def stop(signum: int, frame: FrameType | None) -> None:
        agent.stop()

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, stop)
    if app.json:
        _json_line({"agent": handle.id, "epoch": handle.epoch, **binding.meta()})
    else:
        render.note(
            f"{handle.id} is bound to tmux pane {found.id} ({found.target}); messages are "
            f"typed after {gate.quiet:g} s of quiet. Ctrl-C stops."
        )
    ending = agent.run()
    if ending.failed:
        raise RelayError(ending.reason)
    if app.json:
        _json_line({"agent": handle.id, "ended": ending.reason})
    else:
        render.note(f"{ending.reason}; {handle.id} is offline")


def _json_line(data: dict[str, object]) -> None:
    """One JSON object on one line (attach prints a stream of them: bound, ended)."""
    click.echo(json.dumps(data, ensure_ascii=False), nl=True)
    sys.stdout.flush()


@tmux.command("look")
@click.argument("name")
@click.option(
    "--lines",
    type=int,
    metavar="N",
    help="The last N lines, reaching into the scrollback; default: the visible screen.",
)
@json_option
def look(name: str, lines: int | None) -> None:
    """Print the screen of the tmux pane agent NAME is bound to.

    Text only (no colours); trailing blank lines are left out.
    """
    from ..runtime.tmux import Binding
    from ..runtime.tmux import look as look_at

    app = get_app()
    agent = app.relay.get_agent(name)
    shown = look_at(agent, lines)
    if app.json:
        binding = Binding.of_agent(agent)
        render.emit_json({"agent": agent.id, **binding.meta(), "lines": shown})
        return
    for line in shown:
        click.echo(line)


__all__ = ["attach", "look", "tmux"]
