"""Counts of a workspace at a glance (:class:`StatsOps`): agents by effective
status, messages and the newest message id (a polling client's starting cursor),
tasks by status, unread deliveries. What a dashboard or ``GET /api/stats`` shows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from ..models import AgentStatus, TaskStatus
from ..store.schema import agents, deliveries, messages, tasks
from .common import ServiceBase
from .presence import effective_status


@dataclass(frozen=True, slots=True)
class WorkspaceStats:
    """A workspace's counts at one moment.

    ``agents`` and ``tasks`` map every status (all of :class:`AgentStatus`,
    :class:`TaskStatus`) to a count, zeros included; ``latest_message_id`` is the
    highest message id of the workspace (0 with none): a client that starts
    polling with ``since=latest_message_id`` sees only what is sent after.
    """

    agents: dict[str, int] = field(default_factory=dict)
    messages: int = 0
    latest_message_id: int = 0
    tasks: dict[str, int] = field(default_factory=dict)
    unread: int = 0


def _latest(workspace: str) -> sa.Select[Any]:
    # The primary key read backwards: the first row of the workspace is the newest.
    return (
        sa.select(messages.c.id)
        .where(messages.c.workspace == workspace)
        .order_by(messages.c.id.desc())
        .limit(1)
    )


class StatsOps(ServiceBase):
    """Counting a workspace (see the module docstring)."""

    def latest_message_id(self, *, workspace: str = "default") -> int:
        """The highest message id of ``workspace``, 0 with none: the cursor from which
        a client polling an inbox (``since=``) sees only what is sent from now on."""
        with self.store.read() as conn:
            return int(conn.execute(_latest(workspace)).scalar() or 0)

    def stats(self, *, workspace: str = "default") -> WorkspaceStats:
        """The counts of ``workspace`` (one read transaction; agents' statuses are
        effective ones: a stale heartbeat counts as offline).

        Cost: the messages count reads the workspace's messages (an index scan),
        so this is for dashboards and probes, not for a hot path.
        """
        now, ttl = self.now(), self.settings.stale_ttl
        by_agent = dict.fromkeys((s.value for s in AgentStatus), 0)
        by_task = dict.fromkeys((s.value for s in TaskStatus), 0)
        with self.store.read() as conn:
            rows = conn.execute(
                sa.select(
                    agents.c.status, agents.c.last_seen_at, agents.c.pid, agents.c.host
                ).where(agents.c.workspace == workspace)
            ).all()
            for row in rows:
                by_agent[effective_status(row._mapping, now, ttl).value] += 1
            count = conn.execute(
                sa.select(sa.func.count()).where(messages.c.workspace == workspace)
            ).scalar_one()
            latest = conn.execute(_latest(workspace)).scalar()
            for status, n in conn.execute(
                sa.select(tasks.c.status, sa.func.count())
                .where(tasks.c.workspace == workspace)
                .group_by(tasks.c.status)
            ).all():
                by_task[str(status)] = int(n)
            unread = conn.execute(
                sa.select(sa.func.count()).where(
                    deliveries.c.workspace == workspace, deliveries.c.read_at.is_(None)
                )
            ).scalar_one()
        return WorkspaceStats(
            agents=by_agent,
            messages=int(count),
            latest_message_id=int(latest or 0),
            tasks=by_task,
            unread=int(unread),
        )
