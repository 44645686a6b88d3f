"""Which messages an agent may see: the one rule every read path uses.

An agent may see a message it sent and a message delivered to it: one it has
a delivery row for, whether the message named it, a tag or capability it
has, a broadcast, or a channel it hears. Nothing else of its workspace, not
even the other messages of a thread it takes part in. An admin (a caller
with no agent identity, ``viewer=None``) sees every message of its workspace.

The rule has three forms, all here:

- :func:`visible_to`, a SQL condition over ``messages`` for queries, so that
  listings filter in the database;
- :func:`may_see` and :func:`visible_ids`, checks of given message ids;
- :func:`sent_audience`, the rule applied to a ``message.sent`` event: its
  sender and recipients, written in the same transaction as the delivery rows.

A message the viewer may not see is answered exactly like one that does not
exist (:func:`no_message`), so that no read confirms that a hidden id exists.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..errors import NotFound
from ..models import Event
from ..store.schema import deliveries, messages


def visible_to(viewer: str) -> sa.ColumnElement[bool]:
    """The SQL condition "``viewer`` may see this row of ``messages``": it sent
    the message or has a delivery row for it.

    Usable in any query that selects from ``messages``; the delivery lookup is
    a primary-key probe (``workspace, agent_id, message_id``).
    """
    return sa.or_(
        messages.c.sender == viewer,
        sa.exists().where(
            deliveries.c.workspace == messages.c.workspace,
            deliveries.c.agent_id == viewer,
            deliveries.c.message_id == messages.c.id,
        ),
    )


def restrict(query: sa.Select[Any], viewer: str | None) -> sa.Select[Any]:
    """``query`` (a select from ``messages``) narrowed to what ``viewer`` may see;
    unchanged for an admin (``viewer=None``)."""
    return query if viewer is None else query.where(visible_to(viewer))


def may_see(conn: Connection, workspace: str, viewer: str | None, message_id: int) -> bool:
    """Whether message ``message_id`` exists in ``workspace`` and ``viewer`` may see it
    (``None``: an admin, who sees every message of the workspace)."""
    query = sa.select(messages.c.id).where(
        messages.c.workspace == workspace, messages.c.id == message_id
    )
    return conn.execute(restrict(query, viewer)).first() is not None


def visible_ids(conn: Connection, workspace: str, viewer: str, ids: Iterable[int]) -> set[int]:
    """The ids among ``ids`` of messages of ``workspace`` that ``viewer`` may see."""
    wanted = sorted(set(ids))
    if not wanted:
        return set()
    rows = conn.execute(
        sa.select(messages.c.id).where(
            messages.c.workspace == workspace, messages.c.id.in_(wanted), visible_to(viewer)
        )
    )
    return {int(i) for i in rows.scalars()}


def sent_audience(event: Event) -> frozenset[str]:
    """The agents that may see a ``message.sent`` event: the rule applied to the
    event's own record of the send (its sender and its recipients, logged in the
    transaction that wrote their delivery rows)."""
    recipients = [r for r in event.data.get("recipients") or () if isinstance(r, str)]
    if event.agent_id:
        recipients.append(event.agent_id)
    return frozenset(recipients)


def no_message(message_id: int, what: str = "") -> NotFound:
    """The error for a message that does not exist *or* that the caller may not
    see: one answer for both, so that a hidden id is not confirmed.

    Args:
        what: words appended to "no message N" (e.g. ``"to reply to"``).
    """
    text = f"no message {message_id} {what}" if what else f"no message {message_id}"
    return NotFound(text, message_id=message_id)
