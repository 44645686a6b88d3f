"""Options shared by the commands that make a terminal program an agent
(``relaybus run``, ``relaybus tmux attach``): its profile and when messages are
typed in."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import click

#: Values of :class:`relaybus.integrations.runtime.InjectMode` (literal: ``--help``
#: imports nothing heavy; a test keeps them equal).
INJECT_MODES = ("wait", "steer")
#: The runtime's default quiet window, seconds (``runtime.QUIET_SECONDS``).
QUIET_DEFAULT = 0.75

F = TypeVar("F", bound=Callable[..., object])


def terminal_agent_options(func: F) -> F:
    """Add ``--label``, ``--tag``, ``--cap``, ``--channel`` (the agent's profile)
    and ``--quiet``, ``--prompt``, ``--inject`` (when a message is typed in)."""
    options = [
        click.option("--label", help="A human name others can target as label:TEXT."),
        click.option(
            "--tag", "tags", multiple=True, metavar="TAG", help="Reachable as tag:TAG (repeat)."
        ),
        click.option(
            "--cap", "caps", multiple=True, metavar="CAP", help="A capability, cap:CAP (repeat)."
        ),
        click.option(
            "--channel",
            "channels",
            multiple=True,
            metavar="NAME",
            help="Subscribe to a channel (repeat); none = hear every channel.",
        ),
        click.option(
            "--quiet",
            type=float,
            default=QUIET_DEFAULT,
            show_default=True,
            metavar="SECONDS",
            help="Idle after this long without output (or, under run, keystrokes).",
        ),
        click.option(
            "--prompt",
            metavar="REGEX",
            help="Idle only when the last non-blank screen line matches REGEX too "
            "(e.g. '\\$ $' or '^>>>').",
        ),
        click.option(
            "--inject",
            type=click.Choice(INJECT_MODES),
            default="wait",
            show_default=True,
            help="wait: type at the next idle moment; steer: type at once. "
            "Urgent messages always go at once.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func
