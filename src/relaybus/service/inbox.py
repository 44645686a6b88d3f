"""Inboxes: an agent's deliveries, read state, unread counts and waiting for mail.

A read that hands messages to the agent's session may record them as
delivered (``via``); marking read also records delivery (read implies
delivered). Receipts themselves are :mod:`relaybus.service.deliveries`.
"""

from __future__ import annotations

import gc
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, TypeAdapter

from ..bounds import UNREAD_COUNT_LIMIT
from ..errors import InvalidInput
from ..models import Message, Priority, Via
from ..store.schema import deliveries, joined_ids, load_json, messages
from ..store.statements import cache_of, register, run
from .common import (
    append_event,
    check_id,
    check_ids,
    check_limit,
    check_timeout,
    message_fields,
    require_agent,
    touch_agent,
)
from .deliveries import DeliveryOps, parse_via, record_delivered


class InboxOps(DeliveryOps):
    """Reading an agent's inbox."""

    def inbox(
        self,
        agent_id: str,
        *,
        workspace: str = "default",
        unread_only: bool = True,
        newest_first: bool = True,
        since: int | None = None,
        limit: int = 50,
        mark_read: bool = False,
        epoch: int | None = None,
        via: Via | str | None = None,
    ) -> list[Message]:
        """Messages delivered to ``agent_id``.

        Args:
            unread_only: only deliveries not yet marked read.
            since: a cursor: only messages with an id above it.
            limit: at most this many (1–1000).
            mark_read: mark the returned messages read (``read``); the default
                only looks (``peek``).
            via: this read hands the messages to the agent's session: record
                the queued ones delivered by this path (see :class:`Via`). A
                look by someone else (a dashboard, an admin) leaves it ``None``.
                Marking read records delivery by ``via`` or, by default, ``inbox``.

        Returns:
            messages with their ``recipients``, and ``delivered_at`` and
            ``read_at`` as they are after this call (set by it when it marked).

        Raises:
            NotFound: unknown agent (with close ids). Conflict: stale ``epoch``.
            InvalidInput: ``limit`` outside 1-1000, ``since`` outside 0-``MAX_ID``,
                an unknown ``via``.
        """
        check_limit(limit)
        if since is not None:
            check_id("since", since, minimum=0)
        path = None if via is None else parse_via(via)
        query = _INBOX[unread_only, newest_first]
        params = {"ws": workspace, "aid": agent_id, "since": since or 0, "limit": limit}
        with _collector_paused():
            if not mark_read:
                # Only take the write lock when the look hands over something new.
                with self.store.read() as conn:
                    rows = run(conn, query, params, raw=True)
                    text = cache_of(conn) is not None
                    if not rows:  # deliveries go with their agent: rows prove it exists
                        require_agent(conn, workspace, agent_id)
                if path is None or all(r[_DELIVERED_AT] is not None for r in rows):
                    return _viewed(rows, json_text=text)
            read: list[int] = []
            with self.store.write() as conn:
                now = self.now()
                touch_agent(conn, workspace, agent_id, epoch, now)
                rows = run(conn, query, params, raw=True)
                text = cache_of(conn) is not None
                if mark_read:
                    read = [r[_ID] for r in rows if r[_READ_AT] is None]
                    self._mark(conn, workspace, agent_id, read, now, path or Via.INBOX)
                else:
                    assert path is not None
                    ids = [r[_ID] for r in rows if r[_DELIVERED_AT] is None]
                    record_delivered(conn, workspace, agent_id, ids, path, now)
            return _viewed(rows, now=now, read=set(read), json_text=text)

    def hand_over(
        self,
        agent_id: str,
        found: Sequence[Message],
        *,
        workspace: str = "default",
        mark_read: bool = False,
        via: Via | str | None = None,
        epoch: int | None = None,
    ) -> list[Message]:
        """After a wait found ``found`` (looked at, not marked): mark them read
        (``mark_read``, recorded delivered by ``via`` or ``inbox``) or only
        delivered by ``via``; neither, they stay as they are.

        Returns:
            ``found`` as this call left it (``read_at``, ``delivered_at`` set).

        Raises:
            InvalidInput: an unknown ``via``. NotFound: unknown agent.
            Conflict: stale ``epoch``.
        """
        path = None if via is None else parse_via(via)
        ids = [m.id for m in found]
        if not ids or (not mark_read and path is None):
            return list(found)
        with self.store.write() as conn:
            now = self.now()
            touch_agent(conn, workspace, agent_id, epoch, now)
            if mark_read:
                self._mark(conn, workspace, agent_id, ids, now, path or Via.INBOX)
            else:
                assert path is not None
                record_delivered(conn, workspace, agent_id, ids, path, now)
        when = datetime.fromtimestamp(now, UTC)
        return [
            m.model_copy(
                update={
                    "read_at": m.read_at or (when if mark_read else None),
                    "delivered_at": m.delivered_at or when,
                }
            )
            for m in found
        ]

    def mark_read(
        self,
        agent_id: str,
        *,
        workspace: str = "default",
        ids: Sequence[int] | None = None,
        up_to: int | None = None,
        epoch: int | None = None,
        via: Via | str = Via.INBOX,
    ) -> int:
        """Mark deliveries read: the given message ``ids``, or every one up to
        and including the cursor ``up_to``. Returns how many changed.

        A delivery still queued is recorded delivered at the same time, by ``via``.

        Raises:
            InvalidInput: neither or both of ``ids`` and ``up_to``; an unknown ``via``.
            NotFound: unknown agent. Conflict: stale ``epoch``.
        """
        if (ids is None) == (up_to is None):
            raise InvalidInput("mark read either by message ids or up to a cursor")
        if ids is not None:
            ids = check_ids("message ids", ids)
        if up_to is not None:
            check_id("up_to", up_to, minimum=0)
        path = parse_via(via)
        with self.store.write() as conn:
            now = self.now()
            touch_agent(conn, workspace, agent_id, epoch, now)
            if ids is None:
                assert up_to is not None
                ids = (
                    conn.execute(
                        sa.select(deliveries.c.message_id).where(
                            deliveries.c.workspace == workspace,
                            deliveries.c.agent_id == agent_id,
                            deliveries.c.read_at.is_(None),
                            deliveries.c.message_id <= up_to,
                        )
                    )
                    .scalars()
                    .all()
                )
            return self._mark(conn, workspace, agent_id, list(ids), now, path)

    def unread_count(self, agent_id: str, *, workspace: str = "default") -> int:
        """How many deliveries of ``agent_id`` are unread, counted up to
        :data:`~relaybus.bounds.UNREAD_COUNT_LIMIT` (1,000): the count walks the
        partial index of unread deliveries and stops there, so it costs the same
        at any backlog; a result equal to the limit means that many or more.

        Raises:
            NotFound: unknown agent (with close ids).
        """
        with self.store.read() as conn:
            count = int(run(conn, _UNREAD_COUNT, {"ws": workspace, "aid": agent_id})[0][0])
            if not count:
                require_agent(conn, workspace, agent_id)
        return count

    def wait(
        self,
        agent_id: str,
        timeout: float,
        *,
        workspace: str = "default",
        since: int | None = None,
        limit: int = 50,
        mark_read: bool = False,
        epoch: int | None = None,
        via: Via | str | None = None,
    ) -> list[Message]:
        """Block until ``agent_id`` has unread mail above the cursor ``since``,
        or ``timeout`` seconds pass.

        Another process writing the same store wakes the waiter at once (see
        :mod:`relaybus.store.notify`); an idle waiter does not poll.

        Args:
            mark_read, via: as for :meth:`inbox`, applied to what the wait returns.

        Returns:
            the unread messages, oldest first (empty on timeout).

        Raises:
            NotFound: unknown agent. InvalidInput: as :meth:`inbox`, or a
                ``timeout`` that is not a number.
        """
        path = None if via is None else parse_via(via)
        timeout = check_timeout(timeout)

        def check() -> list[Message]:
            return self.inbox(
                agent_id,
                workspace=workspace,
                unread_only=True,
                newest_first=False,
                since=since,
                limit=limit,
            )

        found: list[Message] = self.store.wait_for(check, timeout)
        return self.hand_over(
            agent_id, found, workspace=workspace, mark_read=mark_read, via=path, epoch=epoch
        )

    def _mark(
        self,
        conn: sa.Connection,
        workspace: str,
        agent_id: str,
        ids: list[int],
        now: float,
        via: Via,
    ) -> int:
        if not ids:
            return 0
        record_delivered(conn, workspace, agent_id, ids, via, now, log=False)
        changed = conn.execute(
            deliveries.update()
            .where(
                deliveries.c.workspace == workspace,
                deliveries.c.agent_id == agent_id,
                deliveries.c.message_id.in_(ids),
                deliveries.c.read_at.is_(None),
            )
            .values(read_at=now)
        ).rowcount
        if changed:
            append_event(
                conn,
                workspace,
                "message.read",
                now,
                agent_id,
                message_ids=sorted(ids),
                via=via.value,
            )
        return int(changed)


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


#: The ``messages`` columns of an inbox row, in this order (:func:`_viewed` unpacks
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
_INBOX = {
    (unread, newest): register(
        f"inbox.{'unread' if unread else 'all'}.{'newest' if newest else 'oldest'}",
        _inbox_query(unread, newest),
    )
    for unread in (True, False)
    for newest in (True, False)
}
_COLUMNS = [c.name for c in _MESSAGE_COLUMNS]
#: Positions in an inbox row (the ``messages`` columns, then the added ones).
_ID = _COLUMNS.index("id")
_READ_AT, _DELIVERED_AT, _RECIPIENTS_AT = range(len(_COLUMNS), len(_COLUMNS) + 3)


def _viewed(
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
    not an object) sends the whole page through :func:`_validated`, whose result
    ``tests/service/test_inbox.py`` proves equal to this one's.
    """
    if not {r[_PRIORITY] for r in rows} <= _PRIORITIES.keys():
        return _validated(rows, now=now, read=read, json_text=json_text)
    if now is None:
        stamps = [t for r in rows for t in (r[_CREATED_AT], r[_READ_AT], r[_DELIVERED_AT])]
    else:
        stamps = [
            t
            for r in rows
            for t in (
                r[_CREATED_AT],
                now if r[_ID] in read else r[_READ_AT],
                r[_DELIVERED_AT] or now,
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
            return _validated(rows, now=now, read=read, json_text=json_text)
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


def _validated(
    rows: Sequence[tuple[Any, ...]],
    *,
    now: float | None = None,
    read: Collection[int] = (),
    json_text: bool = False,
) -> list[Message]:
    """:func:`_viewed` by validating every message (one call into pydantic-core)."""
    fields = []
    for r in rows:
        row = dict(zip(_COLUMNS, r, strict=False))
        if json_text:
            row["meta"] = load_json(row["meta"])
        delivered_at = r[_DELIVERED_AT]
        fields.append(
            message_fields(
                row,
                recipients=_recipients(row["target"], r[_RECIPIENTS_AT]),
                read_at=now if row["id"] in read else r[_READ_AT],
                delivered_at=delivered_at if now is None else delivered_at or now,
            )
        )
    return _MESSAGES.validate_python(fields)


def _recipients(target: str, joined: str | None) -> list[str]:
    """An inbox row's recipients, sorted: from the comma-joined ids, or for NULL (a
    direct message to the reader, see :func:`_inbox_query`) the target."""
    return [target] if joined is None else sorted(joined.split(","))


@contextmanager
def _collector_paused() -> Iterator[None]:
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


#: An unread count that stops at the limit: one walk of the unread partial index.
_UNREAD_COUNT = register(
    "deliveries.unread_count",
    sa.select(sa.func.count()).select_from(
        sa.select(sa.literal(1))
        .where(
            deliveries.c.workspace == sa.bindparam("ws"),
            deliveries.c.agent_id == sa.bindparam("aid"),
            deliveries.c.read_at.is_(None),
        )
        .limit(UNREAD_COUNT_LIMIT)
        .subquery()
    ),
)

#: Built once: the recipients of a list of messages (an expanding IN, so the
#: compiled form is cached whatever the number of ids).
_RECIPIENTS = (
    sa.select(deliveries.c.message_id, deliveries.c.agent_id)
    .where(deliveries.c.message_id.in_(sa.bindparam("ids", expanding=True)))
    .order_by(deliveries.c.message_id, deliveries.c.agent_id)
)


def recipients_of(conn: sa.Connection, ids: Sequence[int]) -> dict[int, list[str]]:
    """The agent ids each message of ``ids`` was delivered to, sorted: ``{id: [agent]}``."""
    if not ids:
        return {}
    found: dict[int, list[str]] = {}
    for message_id, agent in conn.execute(_RECIPIENTS, {"ids": list(ids)}):
        found.setdefault(message_id, []).append(agent)
    return found
