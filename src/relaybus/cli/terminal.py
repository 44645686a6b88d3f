"""Options shared by the commands that register an agent (``relaybus register``,
``relaybus run``, ``relaybus tmux attach``): its profile; and for those that make
a terminal program an agent (run, tmux attach), when messages are typed in and how."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import click

#: Values of :class:`relaybus.runtime.InjectMode` (literal: ``--help``
#: imports nothing heavy; a test keeps them equal).
INJECT_MODES = ("wait", "steer")
#: Values of :class:`relaybus.runtime.MessageFormat` (literal, likewise).
MESSAGE_FORMATS = ("framed", "raw")
#: The runtime's default quiet window, seconds (``runtime.QUIET_SECONDS``).
QUIET_DEFAULT = 0.75

F = TypeVar("F", bound=Callable[..., object])

#: ``relaybus.models.Approval`` values (``relaybus.profiles.APPROVAL_MODES``).
APPROVAL_HELP = (
    "The session's approval mode: open, guarded (a person approves each tool call that "
    "changes files or runs commands) or read-only (such calls are denied) "
    "[default: RELAYBUS_APPROVAL, else the RELAYBUS_PROFILE's, else open]."
)


def approval_option(func: F) -> F:
    """``--approval MODE`` (passed as ``approval``; checked by :func:`approval_mode`)."""
    return click.option("--approval", metavar="MODE", help=APPROVAL_HELP)(func)


def approval_mode(given: str | None, what: str = "--approval") -> str | None:
    """The approval mode a command registers with: ``given`` (``--approval``), else
    ``RELAYBUS_APPROVAL``, else the ``RELAYBUS_PROFILE``'s; None when none says.
    ``what`` names ``given`` in the error.

    Raises:
        InvalidInput: not one of open, guarded, read-only; a bad profile.
    """
    from ..errors import InvalidInput
    from ..profiles import Profile, ProfileError, check_approval

    try:
        return check_approval(what, given) if given else Profile.from_env().approval
    except ProfileError as exc:
        raise InvalidInput(str(exc)) from None


def profile_options(func: F) -> F:
    """``--label``, ``--tag``, ``--cap``, ``--channel``: the profile of an agent the
    command registers (passed as ``label``, ``tags``, ``caps``, ``channels``)."""
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
    ]
    for option in reversed(options):
        func = option(func)
    return func


def terminal_agent_options(func: F) -> F:
    """Add the agent's profile (:func:`profile_options`: ``--label``, ``--tag``,
    ``--cap``, ``--channel``), ``--quiet``, ``--prompt``, ``--inject``
    (when a message is typed in), ``--format`` (how: passed to the command as
    ``message_format``), ``--claim-first`` and ``--quiet-claims`` (claimable
    messages: ``claim_first``, ``quiet_claims``)."""
    options = [
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
            help="Idle only when the prompt line (the last non-blank screen line, up "
            "to the cursor) matches REGEX too (e.g. '\\$ $' or '^>>> ').",
        ),
        click.option(
            "--inject",
            type=click.Choice(INJECT_MODES),
            default="wait",
            show_default=True,
            help="wait: type at the next idle moment; steer: type at once. "
            "Urgent messages always go at once.",
        ),
        click.option(
            "--format",
            "message_format",
            type=click.Choice(MESSAGE_FORMATS),
            default="framed",
            show_default=True,
            help="framed: '[relaybus #ID from SENDER] body (reply: ...)', for agent CLIs; "
            "raw: the body alone, as typed by a person, for REPLs, shells, programs.",
        ),
        click.option(
            "--claim-first",
            is_flag=True,
            help="Claim a claimable message's task before typing it: only the agent that "
            "wins the claim sees the task; the others are typed a one-line notice "
            "('task 7 was claimed by bob').",
        ),
        click.option(
            "--quiet-claims",
            is_flag=True,
            help="With --claim-first: type nothing for a task another agent won (the "
            "message is marked read).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return profile_options(func)
