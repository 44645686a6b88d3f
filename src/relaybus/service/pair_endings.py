"""Pairs' endings that time decides, and the notices of every ending: an invite nobody
answered expires; an active pair one of whose agents stayed offline past the grace period
ends (see :mod:`.pairs`). :class:`PairEndings` is the base of
:class:`~.pairs.PairOps`: the sweep (:meth:`PairEndings.sweep_pairs`, which
``relaybus serve``'s sweeper runs) and the lazy settling every pair operation and read
does first.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..errors import NotFound
from ..models import AgentStatus, Message, PairStatus
from ..store.schema import agents, pairs
from .common import ServiceBase, append_event
from .drafts import make_draft, store_message
from .presence import effective_status

#: Statuses that hold an agent (one of these per agent at most).
OPEN = (PairStatus.PENDING.value, PairStatus.ACTIVE.value)


def other_side(row: Any, agent_id: str) -> str:
    """The agent of pair ``row`` that is not ``agent_id``."""
    return str(row.invitee if row.inviter == agent_id else row.inviter)


class PairEndings(ServiceBase):
    """Ending pairs: the sweep, the settling of what time decided, the notices."""

    def sweep_pairs(self, *, workspace: str = "default") -> int:
        """Write what time decided: expire pending invites past their expiry, end active
        pairs one of whose agents stayed offline past the grace period. Idempotent;
        reads first and takes the write lock only when something is due.

        Returns:
            how many pairs it ended.
        """
        now = self.now()
        with self.store.read() as conn:
            rows = open_pairs(conn, workspace, None)
            due = {row.id for row, *_ in self._pairs_due(conn, workspace, rows, now)}
        if not due:
            return 0
        with self.store.write() as conn:
            now = self.now()
            rows = [r for r in open_pairs(conn, workspace, None) if r.id in due]
            return self._pairs_settle(conn, workspace, rows, now)

    def sweep_pairs_all(self) -> int:
        """:meth:`sweep_pairs` every workspace with a pending or active pair.

        Returns:
            how many pairs it ended in all.
        """
        with self.store.read() as conn:
            found = conn.execute(
                sa.select(pairs.c.workspace).where(pairs.c.status.in_(OPEN)).distinct()
            ).scalars()
            workspaces = sorted(set(found))
        return sum(self.sweep_pairs(workspace=w) for w in workspaces)

    # -- helpers -------------------------------------------------------------------

    def _pairs_say(
        self,
        conn: Connection,
        workspace: str,
        pair_id: int,
        sender: str,
        to: str,
        body: str,
        now: float,
        step: str | None,
        thread_id: int | None,
        subject: str | None = None,
    ) -> Message:
        # A message of the pair's thread (a reply to its root), meta["pair"] its id.
        # Retention may have deleted the root: then the message starts a thread of its
        # own. A refused message (NotFound) writes nothing (store_message).
        meta: dict[str, Any] = {"pair": pair_id}
        if step is not None:
            meta["pair_step"] = step
        limit = self.settings.max_body_bytes
        for parent in dict.fromkeys((thread_id, None)):
            draft = make_draft(to, body, subject, None, parent, "normal", meta, False, limit=limit)
            try:
                return store_message(conn, workspace, sender, draft, now)
            except NotFound:
                if parent is None:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _pairs_end(
        self,
        conn: Connection,
        workspace: str,
        row: Any,
        status: PairStatus,
        reason: str,
        now: float,
        by: str | None,
        offline: str | None = None,
    ) -> None:
        # End an open pair: its row, a notice on its thread to the other side, an event.
        conn.execute(
            pairs.update()
            .where(pairs.c.id == row.id)
            .values(status=status.value, updated_at=now, ended_at=now, ended_by=by, reason=reason)
        )
        if reason == "expired":
            sender, to = row.invitee, row.inviter
            text = (
                f"pair {row.id} expired: {row.invitee} did not answer the invite within "
                f"{self.settings.pair_invite_seconds:g} s."
            )
        elif reason == "offline":
            assert offline is not None
            sender = offline
            to = other_side(row, offline)
            text = (
                f"pair {row.id} ended: {offline} stayed offline for more than "
                f"{self.settings.pair_offline_grace_seconds:g} s."
            )
        else:
            assert by is not None
            sender, to = by, other_side(row, by)
            text = (
                f"{by} rejected pair {row.id}."
                if reason == "rejected"
                else f"{by} hung up pair {row.id}: it has ended."
            )
        try:
            message_id: int | None = self._pairs_say(
                conn, workspace, row.id, sender, to, text, now, reason, row.thread_id
            ).id
        except NotFound:  # the other side was unregistered: nobody to tell
            message_id = None
        kind = "pair.rejected" if status is PairStatus.REJECTED else "pair.ended"
        data: dict[str, Any] = {
            "pair_id": row.id,
            "inviter": row.inviter,
            "invitee": row.invitee,
            "status": status.value,
            "reason": reason,
            "message_id": message_id,
        }
        if offline is not None:
            data["offline"] = offline
        append_event(conn, workspace, kind, now, by, **data)

    def _pairs_due(
        self, conn: Connection, workspace: str, rows: Iterable[Any], now: float
    ) -> list[tuple[Any, PairStatus, str, str | None]]:
        # What time decided about the open ``rows`` at ``now``: (row, status, reason,
        # the agent gone offline) for each pair to end. The agents of the active ones
        # are read in one query.
        rows = [r for r in rows if r.status in OPEN]
        ids = sorted({a for r in rows if r.status == "active" for a in (r.inviter, r.invitee)})
        found = {}
        if ids:
            columns = (agents.c.id, agents.c.status, agents.c.last_seen_at, agents.c.pid)
            query = sa.select(*columns, agents.c.host).where(
                agents.c.workspace == workspace, agents.c.id.in_(ids)
            )
            found = {r.id: r for r in conn.execute(query)}
        grace, ttl = self.settings.pair_offline_grace_seconds, self.settings.stale_ttl
        due: list[tuple[Any, PairStatus, str, str | None]] = []
        for row in rows:
            if row.status == PairStatus.PENDING.value:
                if row.expires_at is not None and now >= row.expires_at:
                    due.append((row, PairStatus.EXPIRED, "expired", None))
                continue
            for who in (row.inviter, row.invitee):
                agent = found.get(who)
                # Unregistered (gone for good), or offline and unseen past the grace.
                if agent is None or (
                    effective_status(agent._mapping, now, ttl) is AgentStatus.OFFLINE
                    and now - agent.last_seen_at > grace
                ):
                    due.append((row, PairStatus.ENDED, "offline", who))
                    break
        return due

    def _pairs_settle(
        self, conn: Connection, workspace: str, rows: Iterable[Any], now: float
    ) -> int:
        # End the open ``rows`` time has decided about, in the caller's write transaction.
        due = self._pairs_due(conn, workspace, rows, now)
        for row, status, reason, offline in due:
            self._pairs_end(conn, workspace, row, status, reason, now, None, offline)
        return len(due)

    def _pairs_settle_agents(
        self, conn: Connection, workspace: str, agent_ids: Sequence[str], now: float
    ) -> None:
        # Settle the open pairs of these agents (before an invite checks exclusivity).
        self._pairs_settle(conn, workspace, open_pairs(conn, workspace, agent_ids), now)


def open_pairs(
    conn: Connection,
    workspace: str,
    agent_ids: Sequence[str] | None,
    ids: Sequence[int] | None = None,
) -> list[Any]:
    # The pending and active pairs of ``workspace`` (of these agents, with these ids).
    query = sa.select(pairs).where(pairs.c.workspace == workspace, pairs.c.status.in_(OPEN))
    if agent_ids is not None:
        query = query.where(sa.or_(pairs.c.inviter.in_(agent_ids), pairs.c.invitee.in_(agent_ids)))
    if ids is not None:
        query = query.where(pairs.c.id.in_(ids))
    return list(conn.execute(query.order_by(pairs.c.id)).all())
