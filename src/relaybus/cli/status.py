"""``relaybus status MSG_ID``: where a message is, per recipient (delivery receipts)."""

from __future__ import annotations

import click

from . import render
from .app import get_app, json_option

#: ``relaybus.models.DeliveryState`` values in order (literal: this command imports no
#: pydantic; a test keeps them equal).
STATES = ("queued", "delivered", "read")
#: The states past queued, which ``--wait`` waits for.
WAIT_STATES = STATES[1:]
#: The exit code when ``--wait`` timed out (as ``timeout(1)``).
TIMED_OUT = 124


@click.command()
@click.argument("message_id", metavar="MSG_ID", type=int)
@click.option(
    "--wait",
    "until",
    type=click.Choice(WAIT_STATES),
    help="Block until every recipient has reached this state (read counts as delivered).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=60.0,
    show_default=True,
    metavar="SECONDS",
    help="With --wait: give up after SECONDS, print where each copy is and exit 124.",
)
@json_option
def status(message_id: int, until: str | None, timeout: float) -> None:
    """Show where message MSG_ID is for each recipient.

    Each copy moves queued → delivered (it reached the agent's session: typed
    into its terminal by `relaybus run` or a tmux pane, returned by an inbox,
    MCP or hook read, or pushed on a stream and acknowledged) → read. The VIA
    column says which path delivered it.

    \b
    Examples:
      relaybus status 12
      relaybus status 12 --wait read --timeout 300 && echo "everyone has read it"
      relaybus status 12 --json | jq -r '.[] | select(.state == "queued") | .agent_id'
    """
    app = get_app()
    receipts = app.hot.deliveries(message_id, until=until, timeout=timeout)
    if app.json:
        render.emit_json(receipts)
    else:
        render.table(
            ["agent", "state", "via", "delivered", "read"],
            [
                [
                    d["agent_id"],
                    d["state"],
                    d.get("via") or "-",
                    render.ago(d.get("delivered_at")),
                    render.ago(d.get("read_at")),
                ]
                for d in receipts
            ],
        )
    if until is None:
        return
    goal = STATES.index(until)
    behind = [d["agent_id"] for d in receipts if STATES.index(d["state"]) < goal]
    if behind:
        render.note(
            f"relaybus: timed out after {timeout:g} s: not yet {until} by {render.names(behind)}"
        )
        click.get_current_context().exit(TIMED_OUT)
