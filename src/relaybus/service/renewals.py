"""Renewing every lease one agent holds, each by its own length: what a runtime that
keeps a session open (``relaybus run``, ``tmux attach``, an MCP session) calls while
its process lives, so that a claim lasts as long as the work and lapses soon after
the process dies (Gray & Cheriton's leases: the holder renews well before expiry).

A claim stores the length its holder asked for (``tasks.lease_seconds``, NULL for the
default ``settings.lease_seconds``); :meth:`RenewalOps.renew_held` extends each held
lease by that length, in one transaction, and says when the next renewal is due: a
third of the shortest lease, so that two renewals may fail before one lapses.
"""

from __future__ import annotations

import sqlalchemy as sa

from ..models import LeaseRenewal
from ..store.schema import agents, tasks
from .common import ServiceBase, append_event, check_name, fence, touch_agent, unknown_agent
from .leases import HELD

#: A renewal is due after this fraction of the shortest lease held.
RENEW_FRACTION = 1 / 3

_HELD_STATUSES = [s.value for s in HELD]

#: The agent's epoch and the leases it holds, in one statement (no row: no agent;
#: one row with a NULL task id: nothing held).
_HELD_LEASES = (
    sa.select(agents.c.epoch, tasks.c.id)
    .select_from(
        agents.outerjoin(
            tasks,
            sa.and_(
                tasks.c.workspace == agents.c.workspace,
                tasks.c.assignee == agents.c.id,
                tasks.c.status.in_(_HELD_STATUSES),
            ),
        )
    )
    .where(agents.c.workspace == sa.bindparam("ws"), agents.c.id == sa.bindparam("aid"))
)


class RenewalOps(ServiceBase):
    """Renewing the leases an agent holds (see the module docstring)."""

    def renew_held(
        self, agent_id: str, *, workspace: str = "default", epoch: int | None = None
    ) -> LeaseRenewal:
        """Extend every lease ``agent_id`` holds by the length it was claimed (or last
        renewed) with, in one transaction, and mark the agent seen. A lease that has
        already lapsed is left to the sweep (claim the task again); with ``epoch``, only
        the claims that epoch made are renewed. Nothing held costs one read.

        Returns:
            :class:`~relaybus.models.LeaseRenewal`: the renewed task ids (ascending)
            and ``next_in``, seconds until the next renewal is due (``None`` if none
            was renewed).

        Raises:
            Conflict: ``epoch`` is stale (another instance registered since).
            NotFound: no such agent.
            InvalidInput: a malformed agent id or epoch.
        """
        check_name("agent id", agent_id)
        params = {"ws": workspace, "aid": agent_id}
        with self.store.read() as conn:
            rows = conn.execute(_HELD_LEASES, params).all()
            if not rows:
                raise unknown_agent(conn, workspace, agent_id)
        fence(agent_id, epoch, int(rows[0].epoch))
        if all(row.id is None for row in rows):
            return LeaseRenewal()
        default = self.settings.lease_seconds
        with self.store.write() as conn:
            now = self.now()
            current = touch_agent(conn, workspace, agent_id, epoch, now)
            length = sa.func.coalesce(tasks.c.lease_seconds, default)
            query = (
                tasks.update()
                .where(
                    tasks.c.workspace == workspace,
                    tasks.c.assignee == agent_id,
                    tasks.c.status.in_(_HELD_STATUSES),
                    tasks.c.lease_expires_at >= now,
                    sa.or_(tasks.c.assignee_epoch.is_(None), tasks.c.assignee_epoch == current)
                    if epoch is not None
                    else sa.true(),
                )
                .values(lease_expires_at=now + length, updated_at=now)
                .returning(tasks.c.id, tasks.c.lease_expires_at)
            )
            renewed = sorted(conn.execute(query).all())
            for task_id, expires in renewed:
                append_event(
                    conn,
                    workspace,
                    "task.renewed",
                    now,
                    agent_id,
                    task_id=task_id,
                    lease_expires_at=expires,
                )
        if not renewed:
            return LeaseRenewal()
        shortest = min(expires for _, expires in renewed) - now
        return LeaseRenewal(
            renewed=[task_id for task_id, _ in renewed], next_in=shortest * RENEW_FRACTION
        )
