"""Retention: delete old messages, their deliveries and events, and long-gone agents."""

from __future__ import annotations

import sqlalchemy as sa

from ..models import PruneReport
from ..store.schema import agents, callback_attempts, callbacks, deliveries, events, messages
from .common import append_event, check_days
from .deliveries import delete_agents_deliveries
from .idempotency import prune_keys
from .sweeps import SweepOps
from .tokens import revoke_agent_tokens
from .workflow_runs import prune_runs

DAY = 86400.0


class RetentionOps(SweepOps):
    def prune(
        self,
        *,
        workspace: str = "default",
        message_days: float | None = None,
        agent_days: float | None = None,
    ) -> PruneReport:
        """Delete messages (with their deliveries) and events older than
        ``message_days`` (default ``settings.retention_days``), and agents
        offline for longer than ``agent_days`` (default
        ``settings.agent_retention_days``), and idempotency keys older than a
        day (:data:`~relaybus.service.idempotency.KEY_TTL`), which may then be
        used again, and callbacks delivered or dead-lettered before the messages'
        cutoff (with their attempts), and workflow runs that finished before it
        (a running one is kept however old). Tasks are kept.

        Raises:
            InvalidInput: a negative number of days, NaN or not a number.
        """
        message_days = self.settings.retention_days if message_days is None else message_days
        agent_days = self.settings.agent_retention_days if agent_days is None else agent_days
        message_days = check_days("message_days", message_days)
        agent_days = check_days("agent_days", agent_days)
        self.sweep(workspace=workspace)
        now = self.now()
        cutoff = now - message_days * DAY
        old = (
            sa.select(messages.c.id)
            .where(messages.c.workspace == workspace, messages.c.created_at < cutoff)
            .scalar_subquery()
        )
        with self.store.write() as conn:
            n_deliveries = conn.execute(
                deliveries.delete().where(
                    deliveries.c.workspace == workspace, deliveries.c.message_id.in_(old)
                )
            ).rowcount
            n_messages = conn.execute(
                messages.delete().where(
                    messages.c.workspace == workspace, messages.c.created_at < cutoff
                )
            ).rowcount
            n_events = conn.execute(
                events.delete().where(events.c.workspace == workspace, events.c.created_at < cutoff)
            ).rowcount
            prune_keys(conn, workspace, now)
            # Callbacks sent or dead-lettered before the cutoff, with their attempts.
            done = sa.and_(
                callbacks.c.workspace == workspace,
                callbacks.c.status != "pending",
                callbacks.c.created_at < cutoff,
            )
            conn.execute(
                callback_attempts.delete().where(
                    callback_attempts.c.callback_id.in_(sa.select(callbacks.c.id).where(done))
                )
            )
            conn.execute(callbacks.delete().where(done))
            gone = (
                (agents.c.workspace == workspace)
                & (agents.c.status == "offline")
                & (agents.c.last_seen_at < now - agent_days * DAY)
            )
            ids = conn.execute(sa.select(agents.c.id).where(gone)).scalars().all()
            if ids:
                n_deliveries += delete_agents_deliveries(conn, workspace, ids)
                conn.execute(agents.delete().where(gone))
                revoke_agent_tokens(conn, workspace, ids)
            report = PruneReport(
                messages=n_messages,
                deliveries=n_deliveries,
                events=n_events,
                agents=len(ids),
                workflow_runs=prune_runs(conn, workspace, cutoff),
            )
            append_event(conn, workspace, "relay.pruned", now, None, **report.model_dump())
        return report
