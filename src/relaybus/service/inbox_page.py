"""An inbox page: the four registered statements that read one, and the messages built
from their rows.

:mod:`relaybus.service.inbox` runs them (``PAGES``) and hands the rows to
:func:`viewed`, which builds the messages without validating each one;
:func:`validated` is the same by validation, which ``tests/service/test_inbox.py``
proves equal. Positions in a row: the ``messages`` columns of :data:`_MESSAGE_COLUMNS`,
then :data:`READ_AT`, :data:`DELIVERED_AT` and the recipients.
"""

from __future__ import annotations

import gc
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, TypeAdapter

from ..models import Message, Priority
from ..store.schema import deliveries, joined_ids, load_json, messages
from ..store.statements import register
from .common import message_fields


def _inbox_query(unread_only: bool, newest_first: bool) -> sa.Select[Any]:
    """An inbox page: the :data:`_MESSAGE_COLUMNS`, the reader's delivery state and the
    comma-joined recipients (ids hold no comma), by the ids above ``since``, at
    most ``limit``, in delivery-index order so the newest N need no sort.

    A delivery is in one of two agent-ordered indexes (see ``store/schema.py``): an
    unread page walks ``ix_deliveries_unread``; a page of read and unread merges the
    first ``limit`` of each index and keeps the first ``limit`` of the two.

    A direct message to the reader (its target is the reader's id) has one delivery,
    the reader's own: a direct target resolves to one agent and a message's deliveries
    are written only when it is sent (``service/drafts.py``), while agent ids hold no
    ``:`` and none is ``broadcast``. Its recipients column is NULL (the reader's
    id, which is its target: see :func:`_recipients`), without the correlated lookup
    of the message's deliveries that every other message takes (that lookup was a
    quarter of a 1,000-message page's SQL). Any other message's lookup finds at
    least the reader's delivery, so it is never NULL."""
    other = deliveries.alias("recipient")
    reader = sa.bindparam("aid", type_=sa.String)
    recipients = sa.case(
        (sa.and_(messages.c.target == reader, messages.c.target != "broadcast"), sa.null()),
        else_=(
            sa.select(joined_ids(other.c.agent_id))
            .where(other.c.message_id == messages.c.id)
            .scalar_subquery()
        ),
    )
    limit = sa.bindparam("limit", type_=sa.Integer)

    def page(*state: sa.ColumnElement[bool]) -> sa.Select[Any]:
        # One index's first ``limit`` deliveries of the reader above the cursor.
        return (
            sa.select(deliveries.c.message_id, deliveries.c.read_at, deliveries.c.delivered_at)
            .where(
                deliveries.c.workspace == sa.bindparam("ws"),
                deliveries.c.agent_id == reader,
                deliveries.c.message_id > sa.bindparam("since"),
                *state,
            )
            .order_by(deliveries.c.message_id.desc() if newest_first else deliveries.c.message_id)
            .limit(limit)
        )

    unread = deliveries.c.read_at.is_(None)
    if unread_only:
        # One index, joined straight to messages: no subquery to materialise.
        return (
            sa.select(
                *_MESSAGE_COLUMNS,
                deliveries.c.read_at.label("delivery_read_at"),
                deliveries.c.delivered_at.label("delivery_delivered_at"),
                recipients.label("recipient_ids"),
            )
            .join(deliveries, deliveries.c.message_id == messages.c.id)
            .where(
                deliveries.c.workspace == sa.bindparam("ws"),
                deliveries.c.agent_id == reader,
                deliveries.c.message_id > sa.bindparam("since"),
                unread,
            )
            .order_by(deliveries.c.message_id.desc() if newest_first else deliveries.c.message_id)
            .limit(limit)
        )
    both = [
        page(unread).subquery("unread"),
        page(deliveries.c.read_at.is_not(None)).subquery("read"),
    ]
    chosen = sa.union_all(*(sa.select(p) for p in both)).subquery("chosen")
    return (
        sa.select(
            *_MESSAGE_COLUMNS,
            chosen.c.read_at.label("delivery_read_at"),
            chosen.c.delivered_at.label("delivery_delivered_at"),
            recipients.label("recipient_ids"),
        )
        .join(chosen, chosen.c.message_id == messages.c.id)
        .order_by(chosen.c.message_id.desc() if newest_first else chosen.c.message_id)
        .limit(limit)
    )


#: The ``messages`` columns of an inbox row, in this order (:func:`viewed` unpacks
#: them by position), then the reader's ``read_at``, ``delivered_at`` and recipients.
_MESSAGE_COLUMNS = tuple(
    messages.c[name]
    for name in (
        "id",
        "workspace",
        "sender",
        "target",
        "channel",
        "subject",
        "body",
        "reply_to",
        "thread_id",
        "priority",
        "meta",
        "task_id",
        "created_at",
    )
)


#: The four inbox pages by (unread only, newest first), run on the fast path.
PAGES = {
    (unread, newest): register(
        f"inbox.{'unread' if unread else 'all'}.{'newest' if newest else 'oldest'}",
        _inbox_query(unread, newest),
    )
    for unread in (True, False)
    for newest in (True, False)
}
_COLUMNS = [c.name for c in _MESSAGE_COLUMNS]
#: Positions in an inbox row (the ``messages`` columns, then the added ones).
ID = _COLUMNS.index("id")
READ_AT, DELIVERED_AT, _RECIPIENTS_AT = range(len(_COLUMNS), len(_COLUMNS) + 3)


def viewed(
    rows: Sequence[tuple[Any, ...]],
    *,
    now: float | None = None,
    read: Collection[int] = (),
    json_text: bool = False,
) -> list[Message]:
    """Inbox rows as messages; with ``now``, as this call left them: the ones in
    ``read`` read, and every one delivered. With ``json_text``, the rows are the
    fast path's raw ones (``run(..., raw=True)`` on SQLite): ``meta`` is JSON text,
    decoded here as :func:`~relaybus.store.schema.load_json` decodes it.

    The rows are the store's own, written by the service: the messages are built
    without validating each one (pydantic validation was half of a 1,000-message
    page). What validation would convert is converted here: the times in one call
    into pydantic-core (so they are exactly the datetimes it makes), the priority
    by its enum. A row this does not expect (an unknown priority, a meta that is
    not an object) sends the whole page through :func:`validated`, whose result
    ``tests/service/test_inbox.py`` proves equal to this one's.
    """
    if not {r[_PRIORITY] for r in rows} <= _PRIORITIES.keys():
        return validated(rows, now=now, read=read, json_text=json_text)
    if now is None:
        stamps = [t for r in rows for t in (r[_CREATED_AT], r[READ_AT], r[DELIVERED_AT])]
    else:
        stamps = [
            t
            for r in rows
            for t in (
                r[_CREATED_AT],
                now if r[ID] in read else r[READ_AT],
                r[DELIVERED_AT] or now,
            )
        ]
    times = _STAMPS.validate_python(stamps)
    priorities = _PRIORITIES
    # Every message is given every field (as message_fields gives them to validation),
    # and one set serves the page's messages: a set per message was a third of this
    # loop. Pydantic never changes a frozen model's set in place (an assignment is
    # refused before it; model_copy copies the set first).
    fields_set = set(_FIELDS)
    new = object.__new__
    found = []
    # The row unpacked by position (see _MESSAGE_COLUMNS): a local name per column
    # is what keeps this loop at about a microsecond a message.
    for (
        (
            mid,
            workspace,
            sender,
            target,
            channel,
            subject,
            body,
            reply_to,
            thread_id,
            priority,
            meta,
            task_id,
            _,
            _,
            _,
            joined,
        ),
        created_at,
        read_at,
        delivered_at,
    ) in zip(rows, times[::3], times[1::3], times[2::3], strict=True):
        if json_text:
            meta = {} if meta == "{}" else load_json(meta)  # most messages' meta is {}
        if meta.__class__ is not dict:
            return validated(rows, now=now, read=read, json_text=json_text)
        message = new(Message)
        _set_dict(
            message,
            {
                "id": mid,
                "workspace": workspace,
                "sender": sender,
                "to": target,
                "channel": channel,
                "subject": subject,
                "body": body,
                "reply_to": reply_to,
                "thread_id": mid if thread_id is None else thread_id,
                "priority": priorities[priority],
                "meta": meta,
                "created_at": created_at,
                "task_id": task_id,
                "recipients": (
                    [target]  # a direct message to the reader (see _inbox_query)
                    if joined is None
                    else sorted(joined.split(","))
                    if "," in joined
                    else [joined]
                ),
                "delivered_at": delivered_at,
                "read_at": read_at,
            },
        )
        _set_fields_set(message, fields_set)
        _set_extra(message, None)
        _set_private(message, None)
        found.append(message)
    return found


def validated(
    rows: Sequence[tuple[Any, ...]],
    *,
    now: float | None = None,
    read: Collection[int] = (),
    json_text: bool = False,
) -> list[Message]:
    """:func:`viewed` by validating every message (one call into pydantic-core)."""
    fields = []
    for r in rows:
        row = dict(zip(_COLUMNS, r, strict=False))
        if json_text:
            row["meta"] = load_json(row["meta"])
        delivered_at = r[DELIVERED_AT]
        fields.append(
            message_fields(
                row,
                recipients=_recipients(row["target"], r[_RECIPIENTS_AT]),
                read_at=now if row["id"] in read else r[READ_AT],
                delivered_at=delivered_at if now is None else delivered_at or now,
            )
        )
    return _MESSAGES.validate_python(fields)


def _recipients(target: str, joined: str | None) -> list[str]:
    """An inbox row's recipients, sorted: from the comma-joined ids, or for NULL (a
    direct message to the reader, see :func:`_inbox_query`) the target."""
    return [target] if joined is None else sorted(joined.split(","))


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while an inbox page is read and built.

    A 1,000-message page makes thousands of container objects (rows, dicts, models,
    lists) that all live until it returns: the collections their allocations set
    off find nothing to free, and promote them so that full collections of the whole
    heap follow (about a millisecond of such a page's 5-6 ms of CPU, measured with
    ``bench/embedded.py``). Reference counting still frees everything as usual. A
    collector that is already off (the program's choice) is left off; one another
    thread turns off meanwhile is turned on again at the end, as it was at the start.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


#: Built on first use (``defer_build``): a CLI command that imports the service but
#: reads no inbox does not pay for their validators.
_LAZY = ConfigDict(defer_build=True)
#: Validates a page of messages in one call into pydantic-core.
_MESSAGES = TypeAdapter(list[Message], config=_LAZY)
#: Converts a page's times (float Unix seconds, or None) as validating them would.
_STAMPS = TypeAdapter(list[datetime | None], config=_LAZY)
_PRIORITIES = {p.value: p for p in Priority}
_FIELDS = frozenset(Message.model_fields)
# A model's four slots, set as ``BaseModel.model_construct`` sets them, by their
# descriptors (a little cheaper than ``object.__setattr__`` by name).
_set_dict, _set_fields_set, _set_extra, _set_private = (
    vars(BaseModel)[slot].__set__
    for slot in (
        "__dict__",
        "__pydantic_fields_set__",
        "__pydantic_extra__",
        "__pydantic_private__",
    )
)
_PRIORITY, _META, _CREATED_AT = (_COLUMNS.index(n) for n in ("priority", "meta", "created_at"))
