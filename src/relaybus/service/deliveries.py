"""Delivery receipts: where each recipient's copy of a message is.

Each delivery moves queued → delivered (it reached the agent's session: typed
into a PTY or tmux pane, returned by an inbox, MCP or hook read, or pushed on
a live stream and acknowledged) → read. Moves are one-way and idempotent: a
second receipt for the same step changes nothing, so a retried call or two
paths racing record the first one only. A delivery queued for longer than
``Settings.stuck_after`` while its agent is not offline is *stuck*.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..bounds import MAX_LIMIT
from ..models import AgentStatus, Delivery, DeliveryState, Via
from ..store.schema import agents, deliveries, messages
from .common import (
    ServiceBase,
    append_event,
    check_choice,
    check_id,
    check_ids,
    check_timeout,
    touch_agent,
)
from .presence import effective_status
from .visibility import visible_message

#: The most message ids one receipt call may carry.
MAX_IDS = MAX_LIMIT


def parse_via(value: Via | str) -> Via:
    """``value`` as a :class:`Via`.

    Raises:
        InvalidInput: not one of inbox, stream, mcp, hook, pty, tmux.
    """
    return check_choice(Via, "delivery path", value)


def parse_state(value: DeliveryState | str) -> DeliveryState:
    """``value`` as a :class:`DeliveryState`.

    Raises:
        InvalidInput: not one of queued, delivered, read.
    """
    return check_choice(DeliveryState, "delivery state", value)


def record_delivered(
    conn: Connection,
    workspace: str,
    agent_id: str,
    ids: Sequence[int],
    via: Via,
    now: float,
    *,
    log: bool = True,
) -> list[int]:
    """Move ``agent_id``'s queued deliveries of messages ``ids`` to delivered,
    inside the caller's write transaction, and (if ``log``) log one
    ``message.delivered`` event. Returns the message ids that changed, ascending.

    A read logs ``message.read`` instead, which implies delivery."""
    if not ids:
        return []
    where = (
        deliveries.c.workspace == workspace,
        deliveries.c.agent_id == agent_id,
        deliveries.c.message_id.in_(list(ids)),
        deliveries.c.delivered_at.is_(None),
    )
    changed = sorted(
        conn.execute(
            deliveries.update()
            .where(*where)
            .values(delivered_at=now, via=via.value)
            .returning(deliveries.c.message_id)
        )
        .scalars()
        .all()
    )
    if changed and log:
        append_event(
            conn, workspace, "message.delivered", now, agent_id, message_ids=changed, via=via.value
        )
    return changed


def delete_agents_deliveries(conn: Connection, workspace: str, agent_ids: Sequence[str]) -> int:
    """Delete every delivery of ``agent_ids`` in ``workspace``; returns how many went.

    Two statements, one per agent-ordered index (``ix_deliveries_unread`` and
    ``ix_deliveries_read``, see :mod:`relaybus.store.schema`): a delivery is in exactly
    one of them, and the table itself is ordered by message, so one statement over
    both would scan it."""
    mine = (deliveries.c.workspace == workspace) & deliveries.c.agent_id.in_(agent_ids)
    return sum(
        conn.execute(deliveries.delete().where(mine, read)).rowcount
        for read in (deliveries.c.read_at.is_(None), deliveries.c.read_at.is_not(None))
    )


def stuck_counts(
    conn: Connection, workspace: str, before: float, agent_id: str | None = None
) -> dict[str, int]:
    """Per agent id (or only ``agent_id``): deliveries still queued for messages
    sent before ``before`` (float Unix seconds). Reads the partial index of
    unread deliveries: a queued one is unread (read implies delivered)."""
    query = (
        sa.select(deliveries.c.agent_id, sa.func.count())
        .join(messages, messages.c.id == deliveries.c.message_id)
        .where(
            deliveries.c.workspace == workspace,
            deliveries.c.read_at.is_(None),
            deliveries.c.delivered_at.is_(None),
            messages.c.created_at < before,
        )
        .group_by(deliveries.c.agent_id)
    )
    if agent_id is not None:
        query = query.where(deliveries.c.agent_id == agent_id)
    rows = conn.execute(query).all()
    return {agent_id: int(count) for agent_id, count in rows}


class Backlog(NamedTuple):
    """A workspace's mail not read yet, as the server's metrics report it."""

    #: Deliveries not read yet.
    unread: int
    #: Of those, the ones queued longer than ``Settings.stuck_after`` seconds
    #: while their agent is not offline (see :meth:`DeliveryOps.stuck`).
    stuck: int


def _state(row: Any) -> DeliveryState:
    if row.read_at is not None:
        return DeliveryState.READ
    if row.delivered_at is not None:
        return DeliveryState.DELIVERED
    return DeliveryState.QUEUED


def receipt(message_id: int, row: Any, queued_at: Any) -> Delivery:
    """One recipient's :class:`~relaybus.models.Delivery` of message ``message_id``
    from its ``deliveries`` row (``agent_id``, ``delivered_at``, ``via``, ``read_at``)
    and the message's ``created_at`` (``queued_at``)."""
    return Delivery.model_validate(
        {
            "message_id": message_id,
            "agent_id": row.agent_id,
            "state": _state(row),
            "queued_at": queued_at,
            "delivered_at": row.delivered_at,
            "via": row.via,
            "read_at": row.read_at,
        }
    )


class DeliveryOps(ServiceBase):
    """Recording and reading delivery receipts."""

    def mark_delivered(
        self,
        agent_id: str,
        ids: Sequence[int],
        *,
        via: Via | str,
        workspace: str = "default",
        epoch: int | None = None,
    ) -> int:
        """Record that messages ``ids`` reached ``agent_id``'s session by ``via``.

        Deliveries already delivered or read are left as they are.

        Returns:
            how many deliveries moved from queued to delivered.

        Raises:
            InvalidInput: an unknown ``via``; more than 1000 ids.
            NotFound: unknown agent. Conflict: stale ``epoch``.
        """
        path = parse_via(via)
        ids = check_ids("message ids", ids)
        with self.store.write() as conn:
            now = self.now()
            touch_agent(conn, workspace, agent_id, epoch, now)
            return len(record_delivered(conn, workspace, agent_id, ids, path, now))

    def deliveries(
        self, message_id: int, *, workspace: str = "default", viewer: str | None = None
    ) -> list[Delivery]:
        """Every recipient's receipt for message ``message_id``, by agent id.

        Args:
            viewer: read as this agent: only for a message it may see (see
                :mod:`relaybus.service.visibility`); ``None`` reads as admin.

        Raises:
            NotFound: no such message, or one ``viewer`` may not see (the same answer).
            InvalidInput: ``message_id`` is not an id (1 to ``MAX_ID``).
        """
        check_id("message id", message_id)
        with self.store.read() as conn:
            message = visible_message(conn, workspace, message_id, viewer, messages.c.created_at)
            sent = message.created_at
            rows = conn.execute(
                sa.select(deliveries)
                .where(deliveries.c.workspace == workspace, deliveries.c.message_id == message_id)
                .order_by(deliveries.c.agent_id)
            ).all()
        return [receipt(message_id, r, sent) for r in rows]

    def wait_deliveries(
        self,
        message_id: int,
        state: DeliveryState | str,
        timeout: float,
        *,
        workspace: str = "default",
        viewer: str | None = None,
    ) -> list[Delivery]:
        """Block until every recipient of ``message_id`` has reached ``state``
        (``delivered`` is also reached by a read), or ``timeout`` seconds pass.

        Args:
            viewer: as for :meth:`deliveries`.

        Returns:
            the receipts as they are when the wait ends; on timeout some are short
            of ``state``.

        Raises:
            NotFound: no such message, or one ``viewer`` may not see (the same
                answer). InvalidInput: an unknown ``state``, a bad id or a
                ``timeout`` that is not a number.
        """
        goal = parse_state(state)
        timeout = check_timeout(timeout)
        check_id("message id", message_id)

        def check() -> list[Delivery] | None:
            found = self.deliveries(message_id, workspace=workspace, viewer=viewer)
            return found if all(d.state.reached(goal) for d in found) else None

        done: list[Delivery] | None = self.store.wait_for(check, timeout)
        if done is not None:
            return done
        return self.deliveries(message_id, workspace=workspace, viewer=viewer)

    def stuck(self, *, workspace: str = "default") -> dict[str, int]:
        """Per agent id that is not offline: how many of its deliveries have been
        queued for longer than ``Settings.stuck_after`` seconds. Agents with none
        are left out."""
        now = self.now()
        with self.store.read() as conn:
            counts = stuck_counts(conn, workspace, now - self.settings.stuck_after)
            if not counts:
                return {}
            rows = conn.execute(
                sa.select(agents).where(
                    agents.c.workspace == workspace, agents.c.id.in_(list(counts))
                )
            ).all()
        ttl = self.settings.stale_ttl
        return {
            r.id: counts[r.id]
            for r in rows
            if effective_status(r._mapping, now, ttl) is not AgentStatus.OFFLINE
        }

    def backlog(self) -> dict[str, Backlog]:
        """Per workspace with unread mail: its :class:`Backlog` (an operator's
        view across every workspace, for the server's metrics). Workspaces
        without unread mail are left out: a stuck delivery is unread too."""
        query = (
            sa.select(deliveries.c.workspace, sa.func.count())
            .where(deliveries.c.read_at.is_(None))
            .group_by(deliveries.c.workspace)
        )
        with self.store.read() as conn:
            unread = {str(ws): int(n) for ws, n in conn.execute(query).all()}
        return {
            ws: Backlog(unread=n, stuck=sum(self.stuck(workspace=ws).values()))
            for ws, n in unread.items()
        }
