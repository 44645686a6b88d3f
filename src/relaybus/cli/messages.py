"""Message commands: send, reply, inbox, thread, history, messages (the listing)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from ..errors import InvalidInput
from . import render
from .app import get_app, json_option, parse_meta, read_body

if TYPE_CHECKING:
    from .render import JSON

#: ``relaybus.models.Priority`` values (literal so ``--help`` needs no pydantic; a test
#: keeps them equal).
PRIORITIES = ("low", "normal", "high", "urgent")


def confirm(verb: str, msg: JSON) -> str:
    """``sent #12 to cap:review → bob, carol (task #3)``, of a message's wire shape."""
    recipients = msg.get("recipients", [])
    line = f"{verb} #{msg['id']} to {msg['to']}"
    if recipients != [msg["to"]]:
        line += f" → {render.names(recipients)}"
    if msg["thread_id"] != msg["id"]:
        line += f" in thread #{msg['thread_id']}"
    if msg.get("task_id") is not None:
        line += f" (task #{msg['task_id']})"
    return line


@click.command()
@click.option(
    "--to", "to", required=True, metavar="TARGET", help="alice, tag:x, cap:x, label:x or broadcast."
)
@click.option("--subject", help="A subject line (the task title with --claimable).")
@click.option("--channel", help="Only recipients that hear this channel.")
@click.option("--reply-to", type=int, metavar="ID", help="Answer message ID in its thread.")
@click.option("--priority", type=click.Choice(PRIORITIES), default="normal", show_default=True)
@click.option(
    "--claimable", is_flag=True, help="Also create a task that exactly one recipient can claim."
)
@click.option("--meta", metavar="JSON", help="A JSON object, e.g. '{\"pr\": 7}'.")
@click.option(
    "--idempotency-key",
    metavar="KEY",
    help="Send at most once: the same KEY again within 24 h returns the first message "
    "instead of sending another (1-255 printable ASCII, e.g. a uuid).",
)
@click.argument("body")
@json_option
def send(
    to: str,
    subject: str | None,
    channel: str | None,
    reply_to: int | None,
    priority: str,
    claimable: bool,
    meta: str | None,
    idempotency_key: str | None,
    body: str,
) -> None:
    """Send BODY (- reads stdin) to a target.

    The target is resolved now: every agent it matches gets the message in its
    inbox; a target that matches nobody is an error and nothing is sent.

    \b
    Examples:
      relaybus --as alice send --to bob "stay out of src/auth for an hour"
      relaybus --as alice send --to cap:review --claimable --subject "Review PR 7" "diff: ..."
      git diff | relaybus --as alice send --to tag:backend --channel api -
      relaybus --as ci send --to bob --idempotency-key "build-$BUILD_ID" "build is green"
    """
    app = get_app()
    meta_obj = parse_meta(meta)
    me = app.hot_me()
    msg = me.send(
        to,
        read_body(body),
        subject=subject,
        channel=channel,
        priority=priority,
        meta=meta_obj,
        claimable=claimable,
        reply_to=reply_to,
        idempotency_key=idempotency_key,
    )
    render.result(msg, confirm("sent", msg), as_json=app.json)


@click.command()
@click.argument("message_id", metavar="ID", type=int)
@click.argument("body")
@click.option("--subject", help="A subject line.")
@click.option("--priority", type=click.Choice(PRIORITIES), default="normal", show_default=True)
@json_option
def reply(message_id: int, body: str, subject: str | None, priority: str) -> None:
    """Reply to message ID in its thread.

    BODY '-' reads stdin. The reply goes to the message's sender (to its target, if you sent it).

    \b
    Example:
      relaybus --as bob reply 12 "LGTM, two nits inline"
    """
    app = get_app()
    me = app.hot_me()
    msg = me.reply(message_id, read_body(body), subject=subject, priority=priority)
    render.result(msg, confirm("replied", msg), as_json=app.json)


@click.command()
@click.option("--all", "all_", is_flag=True, help="Read messages too, not only unread ones.")
@click.option("--peek", is_flag=True, help="Only look: do not mark anything read.")
@click.option("--oldest-first", is_flag=True, help="Oldest first (default: newest first).")
@click.option("--since", type=int, metavar="ID", help="Only messages with an id above ID.")
@click.option("--limit", type=int, default=50, show_default=True, help="At most N (1-1000).")
@click.option(
    "--wait",
    type=float,
    metavar="SECONDS",
    help="Block up to SECONDS until unread mail exists; on timeout print nothing and exit 0.",
)
@json_option
def inbox(
    all_: bool,
    peek: bool,
    oldest_first: bool,
    since: int | None,
    limit: int,
    wait: float | None,
) -> None:
    """Show unread messages and mark them read.

    --peek leaves them unread. With --wait the command blocks until mail
    arrives (returning at once if there is unread mail already) and exits 0
    either way: on timeout it prints "no new messages" on stderr, or an empty
    JSON array with --json.

    \b
    Examples:
      relaybus --as bob inbox
      relaybus --as bob inbox --peek --json
      relaybus --as bob inbox --wait 60 --oldest-first
    """
    app = get_app()
    if wait is not None and all_:
        raise InvalidInput("--wait waits for unread mail; it does not combine with --all")
    if not 1 <= limit <= 1000:
        raise InvalidInput(f"--limit must be between 1 and 1000, not {limit}")
    me = app.hot_me()
    if wait is not None:
        # Only wait here; the read below takes (and marks) at most --limit of it.
        me.wait(max(wait, 0.0), since=since)
    found = me.inbox(
        unread_only=not all_,
        newest_first=not oldest_first,
        since=since,
        limit=limit,
        mark_read=not peek,
    )
    if app.json:
        render.emit_json(found)
        return
    if not found:
        if wait is not None:
            render.note("no new messages")
        else:
            render.note("no messages" if all_ else "no unread messages")
        return
    render.messages(found, show_read=all_)


@click.command()
@click.argument("message_id", metavar="ID", type=int)
@click.option("--peek", is_flag=True, help="Only look: do not mark anything read.")
@json_option
def thread(message_id: int, peek: bool) -> None:
    """Show the thread of message ID, oldest first.

    As an agent (--as / RELAYBUS_AGENT), what it shows of that agent's unread
    mail is marked read, as inbox does; --peek leaves it unread.
    """
    app = get_app()
    found = app.relay.thread(message_id)
    if found and not peek and app.agent_id is not None:
        # Only the agent's own unread deliveries among these change.
        app.me().mark_read([m.id for m in found])
    shapes = [render.dump(m) for m in found]
    if app.json:
        render.emit_json(shapes)
        return
    render.messages(shapes)


@click.command()
@click.option("--channel", metavar="NAME", help="Only the broadcasts on this channel.")
@click.option(
    "--broadcast",
    is_flag=True,
    help="Only the workspace-wide broadcasts (those without a channel).",
)
@click.option("--before", type=int, metavar="ID", help="Only older messages (the next page).")
@click.option(
    "--limit", type=int, default=20, show_default=True, help="At most N (1-1000), newest first."
)
@json_option
def history(channel: str | None, broadcast: bool, before: int | None, limit: int) -> None:
    """Show broadcasts sent before you joined, newest first.

    A broadcast reaches the agents registered when it is sent; this reads the
    ones an agent that joined later missed, without putting them in its inbox.
    As an agent (--as / RELAYBUS_AGENT): the broadcasts without a channel or on
    a channel it hears; without: every broadcast of the workspace.

    \b
    Examples:
      relaybus --as dave history
      relaybus --as dave history --channel deploys --limit 50
      relaybus --as dave history --broadcast          # only those sent to everyone
      relaybus --as dave history --before 120      # the page after the one ending at #120
    """
    app = get_app()
    reader = app.relay if app.agent_id is None else app.me()
    pages = reader.history(channel=channel, broadcast=broadcast, before=before, limit=limit)
    found = [render.dump(m) for m in pages]
    if app.json:
        render.emit_json(found)
        return
    if not found:
        render.note("no broadcasts" + (f" on channel {channel}" if channel else ""))
        return
    render.messages(found)


@click.command("messages")
@click.option("--from", "sender", metavar="AGENT", help="Only those AGENT sent.")
@click.option("--to", "recipient", metavar="AGENT", help="Only those delivered to AGENT.")
@click.option("--with", "participant", metavar="AGENT", help="Only those AGENT sent or got.")
@click.option("--channel", metavar="NAME", help="Only those sent on this channel.")
@click.option("--tag", metavar="TAG", help="Only those sent to tag:TAG.")
@click.option("--thread", type=int, metavar="ID", help="Only the thread with root ID.")
@click.option("--grep", "q", metavar="TEXT", help="Only those with TEXT in subject or body.")
@click.option("--before", type=int, metavar="ID", help="Only older messages (the next page).")
@click.option(
    "--limit", type=int, default=20, show_default=True, help="At most N (1-1000), newest first."
)
@json_option
def list_messages(
    sender: str | None,
    recipient: str | None,
    participant: str | None,
    channel: str | None,
    tag: str | None,
    thread: int | None,
    q: str | None,
    before: int | None,
    limit: int,
) -> None:
    """List messages, newest first, without reading them.

    With the admin token (or embedded), every message of the workspace; as an
    agent (--as / RELAYBUS_AGENT, or an agent's token), the messages it sent
    or received. Nothing is marked read or delivered.

    \b
    Examples:
      relaybus messages --from alice --to bob
      relaybus messages --channel deploys --grep failed --json
      relaybus messages --before 120              # the page after the one ending at #120
    """
    app = get_app()
    reader = app.relay if app.agent_id is None else app.me()
    found = [
        render.dump(m)
        for m in reader.list_messages(
            sender=sender,
            recipient=recipient,
            participant=participant,
            channel=channel,
            tag=tag,
            thread=thread,
            q=q,
            before=before,
            limit=limit,
        )
    ]
    if app.json:
        render.emit_json(found)
        return
    if not found:
        render.note("no messages")
        return
    render.messages(found)
