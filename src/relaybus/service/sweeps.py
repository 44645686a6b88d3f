"""Sweeps: persist what the passage of time decided (stale agents, lapsed leases).

Idempotent; any process (or, in cluster mode, any replica) may run one at any
time. Reads first and writes only when something changed, so calling it on
the read path is cheap. Every change is a compare-and-set under the write
lock (an agent goes offline only if it was not seen again since the read; a
lease is released only while it is still lapsed, its row taken with ``FOR
UPDATE SKIP LOCKED`` on PostgreSQL), so two replicas sweeping at once never
release a lease twice.

Background jobs (``relaybus serve``'s sweeper) are claimed first with
:meth:`SweepOps.claim_job`: one row per job in ``sweeps``, whose ``due_at``
a replica must move forward itself before it runs the job, so per interval
exactly one replica of a cluster runs it.
"""

from __future__ import annotations

import sqlalchemy as sa

from ..models import AgentStatus
from ..store.schema import agents, idempotency_keys, messages, sweeps, tasks
from ..store.statements import register, run
from .common import ServiceBase, append_event
from .leases import HELD, held_by, release_expired, reopen
from .presence import effective_status

#: An agent goes offline only if it was not seen again since the sweep looked; the
#: row it returns says it did. Registered for the fast path: a sweep may run it for a
#: thousand agents under the write lock (about 0.1 ms each through SQLAlchemy's
#: ordinary execution, 106 ms for 1,001 stale agents in all).
_GONE_OFFLINE = register(
    "agents.gone_offline",
    agents.update()
    .where(
        agents.c.workspace == sa.bindparam("ws"),
        agents.c.id == sa.bindparam("aid"),
        agents.c.status != "offline",
        agents.c.last_seen_at == sa.bindparam("seen"),
    )
    .values(status="offline")
    .returning(agents.c.id),
)


#: Stale agents swept per write transaction (about 6 ms of the write lock each).
SWEEP_BATCH = 100


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
            live = conn.execute(  # what effective_status reads, no JSON column to decode
                sa.select(
                    agents.c.id, agents.c.status, agents.c.last_seen_at, agents.c.pid, agents.c.host
                ).where(agents.c.workspace == workspace, agents.c.status != "offline")
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
        # Each agent is swept whole (offline, its event, its claims reopened) in one
        # transaction, but not all of them in one: a send waiting for the write lock
        # waits for one batch, not for a thousand agents that went quiet at once.
        # No stale agent (only lapsed leases): one empty batch, which releases them.
        batches = [gone[i : i + SWEEP_BATCH] for i in range(0, len(gone), SWEEP_BATCH)] or [[]]
        for n, batch in enumerate(batches, start=1):
            with self.store.write() as conn:
                # The tasks the batch's agents hold, in one read (one per agent held the
                # write lock for seconds when a thousand agents went quiet at once).
                held = held_by(conn, workspace, [agent_id for agent_id, _ in batch])
                for agent_id, seen in batch:
                    params = {"ws": workspace, "aid": agent_id, "seen": seen}
                    if run(conn, _GONE_OFFLINE, params):
                        offline += 1
                        append_event(
                            conn, workspace, "agent.offline", now, agent_id, reason="stale"
                        )
                        for task_id in held.get(agent_id, ()):
                            reopen(conn, workspace, task_id, agent_id, now, "holder offline")
                            released += 1
                if n == len(batches):  # the last batch also releases lapsed leases
                    released += release_expired(conn, workspace, now)
        return {"agents_offline": offline, "tasks_released": released}

    def sweep_all(self) -> dict[str, int]:
        """:meth:`sweep` every workspace that has something to sweep (found with
        two queries across workspaces, so an idle relay costs two reads).

        Returns:
            the summed counts, ``{"agents_offline": n, "tasks_released": m}``.
        """
        now = self.now()
        with self.store.read() as conn:
            found = set(
                conn.execute(
                    sa.select(tasks.c.workspace)
                    .where(
                        tasks.c.status.in_([s.value for s in HELD]),
                        tasks.c.lease_expires_at < now,
                    )
                    .distinct()
                ).scalars()
            )
            found.update(
                conn.execute(
                    sa.select(agents.c.workspace).where(agents.c.status != "offline").distinct()
                ).scalars()
            )
        total = {"agents_offline": 0, "tasks_released": 0}
        for workspace in sorted(found):
            for key, n in self.sweep(workspace=workspace).items():
                total[key] += n
        return total

    def workspaces(self) -> list[str]:
        """Every workspace that has agents, messages or idempotency keys, sorted."""
        with self.store.read() as conn:
            found = set(conn.execute(sa.select(agents.c.workspace).distinct()).scalars())
            found.update(conn.execute(sa.select(messages.c.workspace).distinct()).scalars())
            # Keys outlive their messages when retention is under a day: prune them too.
            found.update(conn.execute(sa.select(idempotency_keys.c.workspace).distinct()).scalars())
        return sorted(found)

    def claim_job(self, job: str, interval: float, *, runner: str) -> bool:
        """Take the current run of background ``job`` if it is due: True for
        exactly one caller per ``interval`` (seconds) across every process and
        replica on this database, which then runs the job.

        Args:
            job: the job's name (``"sweep"``, ``"prune"``).
            interval: seconds until the job is due again after this run.
            runner: who runs it (``host:pid``), recorded in ``sweeps.ran_by``.
        """
        now = self.now()
        with self.store.read() as conn:  # not due: no write lock taken
            due = conn.execute(sa.select(sweeps.c.due_at).where(sweeps.c.job == job)).scalar()
        if due is not None and due > now:
            return False
        values = {"due_at": now + interval, "ran_at": now, "ran_by": runner}
        with self.store.write() as conn:
            taken = conn.execute(
                sweeps.update().where(sweeps.c.job == job, sweeps.c.due_at <= now).values(values)
            ).rowcount
            if taken:
                return True
            if conn.execute(sa.select(sweeps.c.job).where(sweeps.c.job == job)).first():
                return False  # another runner has it until due_at
            # The job's first run ever (the write lock makes the insert race-free).
            conn.execute(sweeps.insert().values(job=job, **values))
            return True
