"""Inboxes: an agent's deliveries, read state, unread counts and waiting for mail.

A read that hands messages to the agent's session may record them as
delivered (``via``); marking read also records delivery (read implies
delivered). Receipts themselves are :mod:`relaybus.service.deliveries`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa

from ..bounds import UNREAD_COUNT_LIMIT
from ..errors import InvalidInput
from ..models import Message, Via
from ..store.schema import deliveries
from ..store.statements import cache_of, register, run
from .common import (
    append_event,
    check_id,
    check_ids,
    check_limit,
    check_timeout,
    require_agent,
    touch_agent,
)
from .deliveries import DeliveryOps, parse_via, record_delivered
from .inbox_page import DELIVERED_AT, ID, PAGES, READ_AT, collector_paused, viewed


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
        query = PAGES[unread_only, newest_first]
        params = {"ws": workspace, "aid": agent_id, "since": since or 0, "limit": limit}
        with collector_paused():
            if not mark_read:
                # Only take the write lock when the look hands over something new.
                with self.store.read() as conn:
                    rows = run(conn, query, params, raw=True)
                    text = cache_of(conn) is not None
                    if not rows:  # deliveries go with their agent: rows prove it exists
                        require_agent(conn, workspace, agent_id)
                if path is None or all(r[DELIVERED_AT] is not None for r in rows):
                    return viewed(rows, json_text=text)
            read: list[int] = []
            with self.store.write() as conn:
                now = self.now()
                touch_agent(conn, workspace, agent_id, epoch, now)
                rows = run(conn, query, params, raw=True)
                text = cache_of(conn) is not None
                if mark_read:
                    read = [r[ID] for r in rows if r[READ_AT] is None]
                    self._mark(conn, workspace, agent_id, read, now, path or Via.INBOX)
                else:
                    assert path is not None
                    ids = [r[ID] for r in rows if r[DELIVERED_AT] is None]
                    record_delivered(conn, workspace, agent_id, ids, path, now)
            return viewed(rows, now=now, read=set(read), json_text=text)

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
