"""One message on its way in: the checks that need no database (:func:`make_draft`,
a :class:`MessageDraft`) and the rows that storing it writes (:func:`store_message`: the
message, its deliveries, its task, its event), for every send of
:class:`~relaybus.service.messages.MessageOps`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .. import bounds
from ..errors import InvalidInput, NotFound, TooLarge
from ..models import Message, Priority
from ..store.schema import deliveries, messages
from ..store.statements import register, run, run_many
from .common import (
    append_event,
    check_choice,
    check_id,
    check_meta,
    check_name,
    check_text,
    message_from_row,
)
from .targets import Target, deliver, is_set, parse_target, resolve
from .tasks import TaskOrigin, create_task
from .visibility import no_message, visible_to

MAX_SUBJECT_CHARS = bounds.MAX_SUBJECT_CHARS


class MessageDraft(NamedTuple):
    """A checked message not yet stored."""

    target: Target | None
    body: str
    subject: str | None
    channel: str | None
    reply_to: int | None
    priority: str
    meta: dict[str, Any]
    claimable: bool


_INSERT_MESSAGE = register("messages.insert", messages.insert().returning(messages.c.id))
_INSERT_DELIVERY = register("deliveries.insert", deliveries.insert())


def make_draft(
    to: str | None,
    body: str,
    subject: str | None,
    channel: str | None,
    reply_to: int | None,
    priority: Priority | str,
    meta: Mapping[str, Any] | None,
    claimable: bool,
    *,
    limit: int,
) -> MessageDraft:
    """A message checked for everything that needs no database (so before the write
    lock is taken): :meth:`~relaybus.service.messages.MessageOps.send`'s arguments,
    ``limit`` its ``settings.max_body_bytes``.

    Raises:
        InvalidInput: a malformed target, channel, priority, subject, ``reply_to``
            or text, a meta that is not a JSON object, or neither target nor
            ``reply_to``.
        TooLarge: ``body`` or ``meta`` over ``limit`` bytes.
    """
    check_text("the message body", body)
    size = len(body.encode("utf-8"))
    if size > limit:
        raise TooLarge(f"message body is {size} bytes; the limit is {limit}", limit=limit)
    if subject is not None and len(check_text("the subject", subject)) > MAX_SUBJECT_CHARS:
        raise InvalidInput(f"a subject has at most {MAX_SUBJECT_CHARS} characters")
    prio = check_choice(Priority, "priority", priority).value
    meta_obj = check_meta(meta, limit)
    if reply_to is not None:
        check_id("reply_to", reply_to)
    if channel is not None:
        check_name("channel", channel)
    target = parse_target(to) if to is not None else None
    if target is None and reply_to is None:
        raise InvalidInput("a message needs a target (--to) or a message to reply to")
    return MessageDraft(target, body, subject, channel, reply_to, prio, meta_obj, claimable)


def _reply_target(reply_to: int, parent: Any, sender: str) -> str:
    """Whom a reply without a target goes to: the parent's sender; the parent's target
    when one replies to one's own message, or to a message from an integration or the
    operator (``integration:NAME``, ``relaybus``: no inbox), so the reply reaches the
    audience the parent had.

    Raises:
        InvalidInput: that audience is the replier alone.
    """
    if parent.sender == sender:
        return str(parent.target)
    if bounds.NAME_RE.fullmatch(parent.sender) and parent.sender != OPERATOR_SENDER:
        return str(parent.sender)
    if parent.target == sender:
        raise InvalidInput(
            f"message {reply_to} came from {parent.sender}, which has no inbox: "
            "name whom the reply is for (to)"
        )
    return str(parent.target)


#: The sender of what an admin opens without an agent (see relaybus.service.ingress).
OPERATOR_SENDER = "relaybus"

#: Direct targets resolved in one transaction: (workspace, agent id, channel, sender)
#: -> the recipients (see :func:`store_message`'s ``reached``).
Reached = dict[tuple[str, str, str | None, str], list[str]]


def store_message(
    conn: Connection,
    workspace: str,
    sender: str,
    draft: MessageDraft,
    now: float,
    reached: Reached | None = None,
    origin: TaskOrigin | None = None,
) -> Message:
    """Store ``draft`` from ``sender`` at ``now`` in the caller's write transaction:
    the message, a delivery per recipient, its task if claimable, its
    ``message.sent`` event.

    Args:
        reached: the direct targets already resolved in this transaction, used and
            filled (a group of sends resolves each once: sends change no agent's
            id, workspace or channels, all a direct target depends on).
        origin: for a claimable message, where its task comes from (see
            :class:`~relaybus.service.tasks.TaskOrigin`).

    Returns:
        the stored message with ``recipients`` (sorted).

    Raises:
        NotFound: the target or ``reply_to`` does not exist, or ``reply_to`` is a
            message ``sender`` may not see (the same answer); nothing is left written.
    """
    target, body, subject, channel, reply_to, prio, meta_obj, claimable = draft
    thread_id: int | None = None
    if reply_to is not None:
        # Only to a message the sender may see; a hidden one is answered as missing.
        parent = conn.execute(
            sa.select(messages.c.sender, messages.c.target, messages.c.thread_id).where(
                messages.c.workspace == workspace,
                messages.c.id == reply_to,
                visible_to(sender),
            )
        ).first()
        if parent is None:
            raise no_message(reply_to, "to reply to")
        thread_id = parent.thread_id if parent.thread_id is not None else reply_to
        if target is None:
            target = parse_target(_reply_target(reply_to, parent, sender))
    assert target is not None
    # A direct message resolves its one row first; a set-based target writes its
    # deliveries with one INSERT ... SELECT once the message has an id.
    direct = None
    if not is_set(target):
        key = (workspace, target.value, channel, sender)
        found = None if reached is None else reached.get(key)
        if found is None:
            found = resolve(conn, workspace, target, channel, sender)
            if reached is not None:
                reached[key] = found
        direct = list(found)
    row = {
        "workspace": workspace,
        "sender": sender,
        "target": str(target),
        "channel": channel,
        "subject": subject,
        "body": body,
        "reply_to": reply_to,
        "thread_id": thread_id,
        "priority": prio,
        "meta": meta_obj,
        "task_id": None,
        "created_at": now,
    }
    message_id = int(run(conn, _INSERT_MESSAGE, row)[0][0])
    row["id"] = message_id
    if direct is None:
        try:
            recipients = deliver(conn, workspace, target, channel, sender, message_id)
        except NotFound:
            # Nothing else is written yet: leave no message row behind, even for a
            # caller that goes on with its transaction.
            conn.execute(messages.delete().where(messages.c.id == message_id))
            raise
    else:
        recipients = direct
        run_many(
            conn,
            _INSERT_DELIVERY,
            [
                {
                    "workspace": workspace,
                    "agent_id": a,
                    "message_id": message_id,
                    "read_at": None,
                }
                for a in recipients
            ],
        )
    if claimable:
        title = subject or (body.strip().splitlines() or ["(untitled task)"])[0][:200]
        task_id = create_task(
            conn,
            workspace,
            now,
            title=title,
            body=body,
            target=str(target),
            channel=channel,
            message_id=message_id,
            creator=sender,
            meta=meta_obj,
            priority=prio,
            origin=origin,
        )
        conn.execute(messages.update().where(messages.c.id == message_id).values(task_id=task_id))
        row["task_id"] = task_id
    append_event(
        conn,
        workspace,
        "message.sent",
        now,
        sender,
        message_id=message_id,
        to=str(target),
        recipients=recipients,
        thread_id=thread_id or message_id,
        channel=channel,
        subject=subject,
        priority=prio,
        task_id=row["task_id"],
    )
    return message_from_row(row, recipients=recipients)
