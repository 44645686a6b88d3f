"""History for late joiners: the broadcasts sent before an agent registered.

A broadcast reaches the agents registered when it is sent (fan-out on write); one that
joins later has no delivery of it. :meth:`HistoryOps.history` lets it read them anyway,
without them entering its inbox (no delivery is written): the workspace's broadcasts
it would hear now (no channel, or a channel it hears), or one channel's. Direct and
tag-, capability- or label-routed messages are never history: they were meant for
those who matched then. Agent-relay-server's channel history is the model.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from ..errors import Forbidden, InvalidInput
from ..models import Message
from ..store.schema import agents, messages
from .common import ServiceBase, check_id, check_limit, check_name, message_from_row, unknown_agent


class HistoryOps(ServiceBase):
    """Reading the broadcast history of a workspace or a channel."""

    def history(
        self,
        agent_id: str | None = None,
        *,
        workspace: str = "default",
        channel: str | None = None,
        broadcast: bool = False,
        before: int | None = None,
        limit: int = 50,
    ) -> list[Message]:
        """Broadcasts of ``workspace``, newest first, whenever they were sent.

        Args:
            agent_id: read as this agent: only broadcasts without a channel or on a
                channel it hears now (an agent with no channels hears them all);
                ``None`` reads as admin (every broadcast).
            channel: only the broadcasts on this channel.
            broadcast: only the workspace-wide broadcasts (those without a channel).
            before: only messages with a smaller id (the next page: the last id seen).
            limit: at most this many (1-1000).

        Returns:
            the messages (without recipients: they are not the reader's deliveries).

        Raises:
            NotFound: no agent ``agent_id``.
            Forbidden: ``agent_id`` does not hear ``channel``.
            InvalidInput: a malformed name, cursor or limit, or both ``channel`` and
                ``broadcast``.
        """
        check_limit(limit)
        if broadcast and channel is not None:
            raise InvalidInput("give a channel or broadcast (no channel), not both")
        if channel is not None:
            check_name("channel", channel)
        if before is not None:
            check_id("before", before)
        query: Any = sa.select(messages).where(
            messages.c.workspace == workspace, messages.c.target == "broadcast"
        )
        if before is not None:
            query = query.where(messages.c.id < before)
        with self.store.read() as conn:
            if agent_id is not None:
                check_name("agent id", agent_id)
                hears = conn.execute(
                    sa.select(agents.c.channels).where(
                        agents.c.workspace == workspace, agents.c.id == agent_id
                    )
                ).first()
                if hears is None:
                    raise unknown_agent(conn, workspace, agent_id)
                subscribed: list[str] = list(hears.channels or [])
                if channel is not None and subscribed and channel not in subscribed:
                    raise Forbidden(
                        f"{agent_id} does not hear channel {channel!r}: join it first",
                        channel=channel,
                    )
                if channel is None and subscribed:
                    query = query.where(
                        sa.or_(messages.c.channel.is_(None), messages.c.channel.in_(subscribed))
                    )
            if channel is not None:
                query = query.where(messages.c.channel == channel)
            elif broadcast:
                query = query.where(messages.c.channel.is_(None))
            rows = conn.execute(query.order_by(messages.c.id.desc()).limit(limit)).all()
        return [message_from_row(r._mapping) for r in rows]
