"""Sweeps: persist what the passage of time decided (stale agents, lapsed leases).

Idempotent; any process (or, in cluster mode, any replica) may run one at any
time. Reads first and writes only when something changed, so calling it on
the read path is cheap.
"""

from __future__ import annotations

import sqlalchemy as sa

from ..models import AgentStatus
from ..store.schema import agents, tasks
from .common import ServiceBase, append_event
from .leases import HELD, release_expired, release_held
from .presence import effective_status


class SweepOps(ServiceBase):
    def sweep(self, *, workspace: str = "default") -> dict[str, int]:
        """Agents gone stale (or whose pid died on this host) become offline and
        their claims reopen; claims whose lease lapsed reopen.

        Returns:
            ``{"agents_offline": n, "tasks_released": m}``.
        """
        now = self.now()
        ttl = self.settings.stale_ttl
        with self.store.read() as conn:
            live = conn.execute(
                sa.select(agents).where(
                    agents.c.workspace == workspace, agents.c.status != "offline"
                )
            ).all()
            gone = [
                (r.id, r.last_seen_at)
                for r in live
                if effective_status(r._mapping, now, ttl) is AgentStatus.OFFLINE
            ]
            lapsed = conn.execute(
                sa.select(tasks.c.id)
                .where(
                    tasks.c.workspace == workspace,
                    tasks.c.status.in_([s.value for s in HELD]),
                    tasks.c.lease_expires_at < now,
                )
                .limit(1)
            ).first()
        if not gone and lapsed is None:
            return {"agents_offline": 0, "tasks_released": 0}
        offline = released = 0
        with self.store.write() as conn:
            for agent_id, seen in gone:
                changed = conn.execute(
                    agents.update()
                    .where(
                        agents.c.workspace == workspace,
                        agents.c.id == agent_id,
                        agents.c.status != "offline",
                        agents.c.last_seen_at == seen,  # not seen again since we looked
                    )
                    .values(status="offline")
                ).rowcount
                if changed:
                    offline += 1
                    append_event(conn, workspace, "agent.offline", now, agent_id, reason="stale")
                    released += release_held(conn, workspace, agent_id, now, "holder offline")
            released += release_expired(conn, workspace, now)
        return {"agents_offline": offline, "tasks_released": released}
