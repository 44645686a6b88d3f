"""Which messages an agent may see: the one rule every read path uses.

An agent may see a message it sent and a message delivered to it: one it has
a delivery row for, whether the message named it, a tag or capability it
has, a broadcast, or a channel it hears. Nothing else of its workspace, not
even the other messages of a thread it takes part in. An admin (a caller
with no agent identity, ``viewer=None``) sees every message of its workspace.

The rule has three forms, all here:

- :func:`visible_to`, a SQL condition over ``messages`` for queries, so that
  listings filter in the database;
- :func:`may_see` and :func:`visible_ids`, checks of given message ids, and
  :func:`visible_message`, one message or :func:`no_message`;
- :func:`sent_audience`, the rule applied to a ``message.sent`` event: its
  sender and recipients, written in the same transaction as the delivery rows.

A message the viewer may not see is answered exactly like one that does not
exist (:func:`no_message`), so that no read confirms that a hidden id exists.

Tasks follow their message. A claimable message opens a task whose title and
body are the message's; the agents that may see the task are those that may
see its message: its creator (the message's sender) and the recipients (a
delivery row of the task's message), plus the agent holding it. Only a
recipient claims it (:func:`task_offered_to`), so the holder adds nobody while
the message is kept; it matters once retention has deleted the message and
its deliveries: the creator and the holder still see the task (to finish or
cancel it), the other recipients no longer do. A task without a message (the
schema allows one; no operation creates one today) is seen by its creator and
its holder, and no agent can claim it. An admin sees every task. The forms:
:func:`task_visible_to` (SQL), :func:`visible_task_ids`, :func:`task_audience`
(for the live fan-out of ``task.*`` events) and :func:`no_task`, the one answer
for a hidden and a missing task.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..errors import NotFound
from ..models import Event
from ..store.schema import deliveries, messages, tasks
from .common import check_name


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


def visible_message(
    conn: Connection,
    workspace: str,
    message_id: int,
    viewer: str | None,
    *columns: sa.Column[Any],
) -> sa.Row[Any]:
    """Message ``message_id`` of ``workspace`` (its ``columns``, default every one)
    if ``viewer`` may see it (``None``: an admin, who sees every message).

    Raises:
        NotFound: no such message, or one ``viewer`` may not see (the same answer,
            :func:`no_message`).
    """
    query: sa.Select[Any] = sa.select(*columns) if columns else sa.select(messages)
    query = query.where(messages.c.workspace == workspace, messages.c.id == message_id)
    row = conn.execute(restrict(query, viewer)).first()
    if row is None:
        raise no_message(message_id)
    return row


def may_see(conn: Connection, workspace: str, viewer: str | None, message_id: int) -> bool:
    """Whether message ``message_id`` exists in ``workspace`` and ``viewer`` may see it
    (``None``: an admin, who sees every message of the workspace)."""
    query = sa.select(messages.c.id).where(
        messages.c.workspace == workspace, messages.c.id == message_id
    )
    return conn.execute(restrict(query, viewer)).first() is not None


def visible_ids(conn: Connection, workspace: str, viewer: str, ids: Iterable[int]) -> set[int]:
    """The ids among ``ids`` of messages of ``workspace`` that ``viewer`` may see."""
    return _visible_among(conn, messages, visible_to(viewer), workspace, ids)


def _visible_among(
    conn: Connection,
    table: sa.Table,
    rule: sa.ColumnElement[bool],
    workspace: str,
    ids: Iterable[int],
) -> set[int]:
    # The ids among ``ids`` of rows of ``table`` (messages or tasks) in
    # ``workspace`` that meet ``rule`` (the viewer's visibility condition).
    wanted = sorted(set(ids))
    if not wanted:
        return set()
    rows = conn.execute(
        sa.select(table.c.id).where(table.c.workspace == workspace, table.c.id.in_(wanted), rule)
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


def _received(viewer: str) -> sa.ColumnElement[bool]:
    # "viewer has a delivery of the task's message": a primary-key probe.
    return sa.exists().where(
        deliveries.c.workspace == tasks.c.workspace,
        deliveries.c.agent_id == viewer,
        deliveries.c.message_id == tasks.c.message_id,
    )


def task_visible_to(viewer: str) -> sa.ColumnElement[bool]:
    """The SQL condition "``viewer`` may see this row of ``tasks``": it created the
    task, holds it, or has a delivery of the task's message.

    Usable in any query that selects from ``tasks``.
    """
    return sa.or_(tasks.c.creator == viewer, tasks.c.assignee == viewer, _received(viewer))


def task_offered_to(viewer: str) -> sa.ColumnElement[bool]:
    """The SQL condition "``viewer`` may claim this row of ``tasks``": it is a
    recipient of the task's message (has a delivery of it), or holds the task
    already (claiming again renews)."""
    return sa.or_(tasks.c.assignee == viewer, _received(viewer))


def restrict_tasks(query: sa.Select[Any], viewer: str | None) -> sa.Select[Any]:
    """``query`` (a select from ``tasks``) narrowed to what ``viewer`` may see;
    unchanged for an admin (``viewer=None``).

    Raises:
        InvalidInput: ``viewer`` is neither an agent id nor ``integration:NAME``.
    """
    if viewer is None:
        return query
    name = viewer.removeprefix("integration:")
    check_name("agent id" if name == viewer else "integration name", name)
    return query.where(task_visible_to(viewer))


def visible_task_ids(conn: Connection, workspace: str, viewer: str, ids: Iterable[int]) -> set[int]:
    """The ids among ``ids`` of tasks of ``workspace`` that ``viewer`` may see."""
    return _visible_among(conn, tasks, task_visible_to(viewer), workspace, ids)


def task_audience(conn: Connection, workspace: str, task_id: int) -> set[str]:
    """Every agent that may see task ``task_id`` now: its creator, its holder and
    the recipients of its message (empty for a task that does not exist)."""
    row = conn.execute(
        sa.select(tasks.c.creator, tasks.c.assignee, tasks.c.message_id).where(
            tasks.c.workspace == workspace, tasks.c.id == task_id
        )
    ).first()
    if row is None:
        return set()
    agents = {a for a in (row.creator, row.assignee) if a}
    if row.message_id is not None:
        agents.update(
            conn.execute(
                sa.select(deliveries.c.agent_id).where(
                    deliveries.c.workspace == workspace,
                    deliveries.c.message_id == row.message_id,
                )
            ).scalars()
        )
    return agents


def no_task(task_id: int) -> NotFound:
    """The error for a task that does not exist *or* that the caller may not see:
    one answer for both, so that a hidden id is not confirmed."""
    return NotFound(f"no task {task_id}", task=task_id)
