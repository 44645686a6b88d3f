"""``relaybus hook EVENT``: the Claude Code hook commands (see
:mod:`relaybus.tools.hooks`). The console script runs them without
loading click (:mod:`relaybus.entry`); this command gives them ``--help``."""

from __future__ import annotations

import sys

import click

from ..tools.hooks.command import EVENTS, TOOLS
from ..tools.hooks.command import main as hook_main


@click.command(
    "hook",
    short_help="Run a Claude Code or Codex hook (installed by 'relaybus install').",
)
@click.argument("event", type=click.Choice(list(EVENTS)))
@click.option(
    "--tool",
    type=click.Choice(list(TOOLS)),
    default=TOOLS[0],
    show_default=True,
    help="The coding tool that runs the hook (Codex's hooks take Claude Code's JSON).",
)
@click.option(
    "--inline",
    is_flag=True,
    help="Do the work in this process instead of the session's 'relaybus mcp'.",
)
@click.option(
    "--background",
    is_flag=True,
    help="The detached half a hook starts itself: read the session's identity (and "
    "the ids of the mail the hook printed) as JSON on stdin, register or change "
    "presence, mark exactly that mail read.",
)
def hook(event: str, tool: str, inline: bool, background: bool) -> None:
    """Run Claude Code hook EVENT (or Codex's, with --tool codex): read the hook
    input JSON on stdin, print the hook's output JSON.

    \b
    session-start       register the session; add its relay identity as context
    user-prompt-submit  add unread messages to the context (each shown once)
    post-tool-use       the same, after each tool call
    stop                unread messages? block the stop and hand them over
    session-end         mark the agent offline
    pre-tool-use        the approval gate: in approval mode guarded ask, in
                        read-only deny, a tool call that changes files or runs
                        commands (nothing for open, nor for read tools)

    The command hands the event to the session's own 'relaybus mcp' process
    and answers within a second: without that process it reads the unread
    mail itself (read-only), prints it after the identity (session-start),
    and a background process marks exactly that mail read and makes the
    presence change. --inline does all the work in this process instead
    (slower). It never fails the
    session: problems go to $XDG_STATE_HOME/relaybus/hooks.log and it prints
    nothing.

    \b
    Example:
      echo '{"hook_event_name": "Stop", "stop_hook_active": false}' | relaybus hook stop
    """
    if inline and background:
        raise click.UsageError("--inline and --background exclude each other")
    flags = ["--inline"] if inline else ["--background"] if background else []
    sys.exit(hook_main([event, "--tool", tool, *flags]))
