"""Listing messages: the workspace's messages a viewer may see, newest first, filtered
and paged (what the dashboard's Messages view and ``relaybus messages`` read), and the
receipts of many messages at once (the view's "2/3 read").

An agent sees what :mod:`.visibility` gives it (the messages it sent or has a delivery
of), filtered in the query; an admin (``viewer=None``) sees the workspace. Pages go
by id, as :mod:`.history` does: ``before`` is the last id of the previous page.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles

from ..errors import InvalidInput
from ..models import Delivery, Message
from ..store.schema import deliveries, messages
from .common import (
    ServiceBase,
    check_id,
    check_ids,
    check_limit,
    check_name,
    check_text,
    message_from_row,
)
from .deliveries import receipt
from .targets import parse_target
from .visibility import restrict, visible_ids

#: The longest text search (characters).
MAX_QUERY_CHARS = 200


class unindexed(sa.sql.functions.FunctionElement[str]):  # noqa: N801 (a SQL function)
    """``unindexed(column)``: the column's value, which SQLite may not look up through
    an index (its unary ``+``: sqlite.org/optoverview.html, "Disqualifying WHERE clause
    terms using unary-+"); the plain column elsewhere.

    A page newest first should walk the messages' key backwards and stop at ``limit``;
    given ``workspace = ?``, SQLite (without ANALYZE statistics) prefers the thread
    index, which leads with the workspace, and then sorts every message of the
    workspace (bench/message_list.py: 48 ms a page at 20,000 messages, growing with the
    store). PostgreSQL's planner has statistics and picks the key walk itself."""

    type = sa.String()
    inherit_cache = True
    name = "unindexed"


@compiles(unindexed)
def _unindexed(element: unindexed, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(element.clauses, **kw))


@compiles(unindexed, "sqlite")
def _unindexed_sqlite(element: unindexed, compiler: Any, **kw: Any) -> str:
    return f"+{compiler.process(element.clauses, **kw)}"


def _delivered_to(agent_id: str) -> sa.ColumnElement[bool]:
    # "agent_id has a delivery of this message": a primary-key probe per row.
    return sa.exists().where(
        deliveries.c.message_id == messages.c.id,
        deliveries.c.workspace == messages.c.workspace,
        deliveries.c.agent_id == agent_id,
    )


class MessageListOps(ServiceBase):
    """Listing messages and reading their receipts in bulk (see the module docstring)."""

    def list_messages(
        self,
        *,
        workspace: str = "default",
        viewer: str | None = None,
        sender: str | None = None,
        recipient: str | None = None,
        participant: str | None = None,
        channel: str | None = None,
        thread: int | None = None,
        to: str | None = None,
        tag: str | None = None,
        q: str | None = None,
        before: int | None = None,
        limit: int = 50,
    ) -> list[Message]:
        """Messages of ``workspace`` that ``viewer`` may see, newest first, each with its
        recipients (no delivery state: see :meth:`receipts`).

        Every filter given must hold (they combine with AND).

        Args:
            viewer: list as this agent: only the messages it sent or has a delivery
                of (:mod:`relaybus.service.visibility`); ``None`` lists as admin.
            sender: only those this agent sent.
            recipient: only those delivered to this agent.
            participant: only those this agent sent or was delivered.
            channel: only those sent on this channel.
            thread: only those of the thread with this root id.
            to: only those whose target expression is exactly this one (``bob``,
                ``tag:backend``, ``broadcast``...; written as the send stored it).
            tag: only those addressed to ``tag:TAG`` (``to="tag:TAG"``; with a ``to``
                naming another target, none).
            q: only those whose subject or body holds this text, case-insensitive
                (ASCII letters on SQLite); ``%`` and ``_`` are plain characters.
            before: only messages with a smaller id (the next page: the last id seen).
            limit: at most this many (1-1000).

        Raises:
            InvalidInput: a malformed name, target, cursor, thread id or limit, a text
                search of more than :data:`MAX_QUERY_CHARS` characters (or with a NUL).
        """
        check_limit(limit)
        query: Any = sa.select(messages).where(unindexed(messages.c.workspace) == workspace)
        if viewer is not None:
            check_name("agent id", viewer)
        query = restrict(query, viewer)
        if sender is not None:
            query = query.where(messages.c.sender == check_name("sender", sender))
        if recipient is not None:
            query = query.where(_delivered_to(check_name("recipient", recipient)))
        if participant is not None:
            check_name("participant", participant)
            query = query.where(
                sa.or_(messages.c.sender == participant, _delivered_to(participant))
            )
        if channel is not None:
            query = query.where(messages.c.channel == check_name("channel", channel))
        if thread is not None:
            check_id("thread", thread)
            # A thread's messages are its root and the later replies to it.
            query = query.where(
                messages.c.id >= thread,
                sa.or_(messages.c.id == thread, messages.c.thread_id == thread),
            )
        if to is not None:
            query = query.where(messages.c.target == str(parse_target(to)))
        if tag is not None:
            query = query.where(messages.c.target == f"tag:{check_name('tag', tag)}")
        if q is not None and q != "":
            check_text("q", q)
            if len(q) > MAX_QUERY_CHARS:
                raise InvalidInput(
                    f"a text search has at most {MAX_QUERY_CHARS} characters, not {len(q)}",
                    field="q",
                )
            query = query.where(
                sa.or_(
                    messages.c.subject.icontains(q, autoescape=True),
                    messages.c.body.icontains(q, autoescape=True),
                )
            )
        if before is not None:
            query = query.where(messages.c.id < check_id("before", before))
        with self.store.read() as conn:
            rows = conn.execute(query.order_by(messages.c.id.desc()).limit(limit)).all()
            ids = [r.id for r in rows]
            recipients: dict[int, list[str]] = defaultdict(list)
            if ids:
                found = conn.execute(
                    sa.select(deliveries.c.message_id, deliveries.c.agent_id)
                    .where(deliveries.c.message_id.in_(ids))
                    .order_by(deliveries.c.message_id, deliveries.c.agent_id)
                )
                for message_id, agent_id in found:
                    recipients[message_id].append(agent_id)
        return [message_from_row(r._mapping, recipients=recipients[r.id]) for r in rows]

    def receipts(
        self, ids: Iterable[int], *, workspace: str = "default", viewer: str | None = None
    ) -> list[Delivery]:
        """Every recipient's receipt of each message among ``ids`` that ``viewer`` may
        see (``None``: an admin, every message of ``workspace``), by message id then
        agent id: :meth:`~relaybus.service.deliveries.DeliveryOps.deliveries` for a
        page of messages at once. A message that does not exist or that ``viewer``
        may not see has none, alike (no hidden id is confirmed).

        Raises:
            InvalidInput: more than 1000 ids, an id out of range, a malformed viewer.
        """
        wanted = sorted(set(check_ids("ids", ids)))
        if viewer is not None:
            check_name("agent id", viewer)
        if not wanted:
            return []
        with self.store.read() as conn:
            if viewer is not None:
                wanted = sorted(visible_ids(conn, workspace, viewer, wanted))
            rows = conn.execute(
                sa.select(
                    deliveries.c.message_id,
                    deliveries.c.agent_id,
                    deliveries.c.delivered_at,
                    deliveries.c.via,
                    deliveries.c.read_at,
                    messages.c.created_at,
                )
                .join(messages, messages.c.id == deliveries.c.message_id)
                .where(unindexed(messages.c.workspace) == workspace, messages.c.id.in_(wanted))
                .order_by(deliveries.c.message_id, deliveries.c.agent_id)
            ).all()
        return [receipt(r.message_id, r, r.created_at) for r in rows]
