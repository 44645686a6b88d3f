"""Pair commands: ``relaybus pair invite TARGET OBJECTIVE | accept ID | reject ID |
send ID BODY | hangup ID | status [ID]``.

They act as the agent of ``--as`` / ``RELAYBUS_AGENT`` or, inside a coding session,
the session's own agent (:func:`~relaybus.cli.me.acting_agent`), through the SDK's
pair calls (:class:`~relaybus.client.pairs.PairActions`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from ..errors import InvalidInput
from . import render
from .app import HelpGroup, get_app, json_option
from .me import acting_agent

if TYPE_CHECKING:
    from .render import JSON

#: ``relaybus.models.PairStatus`` values (literal so ``--help`` needs no pydantic; a test
#: keeps them equal).
PAIR_STATUSES = ("pending", "active", "rejected", "expired", "ended")


@click.group(cls=HelpGroup)
def pair() -> None:
    """Pair with another agent: an exclusive two-agent session on one objective.

    One agent invites another; the invitee accepts or rejects (an invite nobody
    answers expires); while the pair is active either side sends pair messages,
    which go on the pair's own thread; either side hangs up. An agent is in at
    most one pending or active pair. A pair also ends when one of its agents
    stays offline past a grace period.

    \b
    Examples:
      relaybus --as alice pair invite bob "fix the flaky login test"
      relaybus --as bob pair accept 7
      relaybus --as alice pair send 7 "I take the parser, you take the tests"
      relaybus --as bob pair status --json
      relaybus --as alice pair hangup 7
    """


def _done(pair: Any, line: str) -> None:
    render.result(render.dump(pair), line, as_json=get_app().json)


@pair.command("invite")
@click.argument("target")
@click.argument("objective")
@json_option
def pair_invite(target: str, objective: str) -> None:
    """Invite agent TARGET to pair on OBJECTIVE (the invite lands in its inbox)."""
    found = acting_agent().pair_invite(target, objective)
    expires = render.dump(found)["expires_at"]
    until = f"{render.clock(expires)} ({render.ago(expires)})"
    _done(found, f"pair {found.id}: invited {target}; pending until {until}")


@pair.command("accept")
@click.argument("pair_id", metavar="ID", type=int)
@json_option
def pair_accept(pair_id: int) -> None:
    """Accept the invite of pair ID (you are its invitee)."""
    found = acting_agent().pair_accept(pair_id)
    _done(found, f"pair {found.id}: active with {found.inviter}")


@pair.command("reject")
@click.argument("pair_id", metavar="ID", type=int)
@json_option
def pair_reject(pair_id: int) -> None:
    """Reject the invite of pair ID (you are its invitee)."""
    found = acting_agent().pair_reject(pair_id)
    _done(found, f"pair {found.id}: rejected")


@pair.command("send")
@click.argument("pair_id", metavar="ID", type=int)
@click.argument("body")
@json_option
def pair_send(pair_id: int, body: str) -> None:
    """Send BODY to the other side of active pair ID, on the pair's thread."""
    sent = acting_agent().pair_send(pair_id, body)
    render.result(
        render.dump(sent),
        f"sent #{sent.id} to {', '.join(sent.recipients)} on pair {pair_id}",
        as_json=get_app().json,
    )


@pair.command("hangup")
@click.argument("pair_id", metavar="ID", type=int)
@json_option
def pair_hangup(pair_id: int) -> None:
    """End pair ID (either side; takes back an invite not yet answered)."""
    found = acting_agent().pair_hangup(pair_id)
    _done(found, f"pair {found.id}: ended")


@pair.command("status")
@click.argument("pair_id", metavar="[ID]", type=int, required=False)
@click.option("--status", type=click.Choice(PAIR_STATUSES), help="Only pairs with this status.")
@click.option(
    "--limit", type=int, default=20, show_default=True, help="At most N (1-1000), newest first."
)
@json_option
def pair_status(pair_id: int | None, status: str | None, limit: int) -> None:
    """Show your pairs, newest first (or pair ID).

    As an agent (--as, RELAYBUS_AGENT, or the coding session's), its own pairs;
    without one, every pair of the workspace.
    """
    app = get_app()
    try:
        reader: Any = acting_agent()
    except InvalidInput:
        reader = app.relay
    if pair_id is not None:
        one = render.dump(reader.pair(pair_id))
        if app.json:
            render.emit_json(one)
            return
        _show(one)
        return
    found = [render.dump(p) for p in reader.pairs(status=status, limit=limit)]
    if app.json:
        render.emit_json(found)
        return
    if not found:
        render.note("no pairs" + (f" {status}" if status else ""))
        return
    render.table(
        ["id", "status", "inviter", "invitee", "objective", "since"],
        [
            [
                str(p["id"]),
                _status_text(p),
                p["inviter"],
                p["invitee"],
                p["objective"],
                render.ago(p["updated_at"]),
            ]
            for p in found
        ],
    )


def _status_text(found: JSON) -> str:
    # ``pending (expires in 9m)``, ``ended (offline)``, ``active``.
    text: str = found["status"]
    if text == "pending" and found.get("expires_at"):
        return f"{text} (expires {render.ago(found['expires_at'])})"
    if found.get("reason") and found["reason"] != text:
        return f"{text} ({found['reason']})"
    return text


def _show(found: JSON) -> None:
    render.fields(
        [
            ("pair", str(found["id"])),
            ("status", _status_text(found)),
            ("inviter", found["inviter"]),
            ("invitee", found["invitee"]),
            ("objective", found["objective"]),
            ("thread", f"#{found['thread_id']}" if found.get("thread_id") else "-"),
            ("since", render.ago(found["created_at"])),
        ]
        + ([("ended by", found["ended_by"])] if found.get("ended_by") else [])
    )
