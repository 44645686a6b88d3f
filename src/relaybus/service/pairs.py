"""Pairs: a focused two-agent session (invite, accept or reject, pair messages, hang up).

One agent invites another to work on an objective together; the invitee accepts or
rejects; while the pair is active either side sends pair messages, and either side
hangs up. Exclusive: an agent is in at most one pending or active pair, checked in the
write transaction, so under the store's write lock (every writer takes it, on both
dialects; see :meth:`~relaybus.store.Store.write`): of racing invites exactly one wins,
the others get :class:`~relaybus.errors.Conflict` naming the pair that blocks them.

Every step is a message on the pair's own thread, rooted at the invite (so the invitee
sees the invite in its inbox and the inviter hears the answer), with ``meta["pair"]``
set to the pair's id, and an event (``pair.invited``, ``pair.accepted``,
``pair.rejected``, ``pair.ended`` with its ``reason``: ``hangup``, ``expired``,
``offline``). Only the two agents (and admin) see a pair; its messages are direct
messages between them, which only they see (:mod:`.visibility`).

Time decides two endings: a pending invite expires after ``pair_invite_seconds``, and
an active pair ends when one of its agents is offline and unseen for more than
``pair_offline_grace_seconds``. What time decided is written by the sweep
(:meth:`PairOps.sweep_pairs`, which ``relaybus serve``'s sweeper runs) and, lazily, by
any pair operation or read that meets such a pair, before it acts: the answer is the
same whenever the sweep last ran. An agent seen again (by any call) before either has
noticed keeps its pair.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..errors import Conflict, Forbidden, InvalidInput, NotFound
from ..models import AgentStatus, Event, Message, Pair, PairStatus
from ..store.schema import agents, pairs
from .common import (
    ServiceBase,
    append_event,
    check_choice,
    check_id,
    check_limit,
    check_name,
    check_text,
    require_agent,
    touch_agent,
)
from .drafts import make_draft, store_message
from .presence import effective_status

#: Longest objective of a pair (characters).
MAX_OBJECTIVE_CHARS = 2000
#: Statuses that hold an agent (one of these per agent at most).
OPEN = (PairStatus.PENDING.value, PairStatus.ACTIVE.value)


def pair_from_row(row: Any) -> Pair:
    """A ``pairs`` row as a :class:`~relaybus.models.Pair`."""
    return Pair.model_validate(dict(row._mapping))


def no_pair(pair_id: int) -> NotFound:
    """The one answer for a pair that does not exist and one the caller is not in."""
    return NotFound(f"no pair {pair_id}", pair=pair_id)


def pair_audience(event: Event) -> frozenset[str]:
    """The agents that see a ``pair.*`` event on a stream: the pair's two agents (the
    event records them), as only they see the pair."""
    return frozenset(
        a for a in (event.data.get("inviter"), event.data.get("invitee")) if isinstance(a, str)
    )


def _other(row: Any, agent_id: str) -> str:
    return str(row.invitee if row.inviter == agent_id else row.inviter)


class PairOps(ServiceBase):
    """Pair sessions (see the module docstring)."""

    def pair_invite(
        self,
        agent_id: str,
        target: str,
        objective: str,
        *,
        workspace: str = "default",
        epoch: int | None = None,
    ) -> Pair:
        """Invite agent ``target`` to pair with ``agent_id`` on ``objective``: a pending
        pair, and the invite in ``target``'s inbox (the root of the pair's thread). It
        expires after ``settings.pair_invite_seconds`` unless answered.

        Raises:
            InvalidInput: a malformed id, an empty or too long objective (at most
                2,000 characters), or ``target`` is ``agent_id``.
            NotFound: no agent ``agent_id`` or ``target``.
            Conflict: either agent is already in a pending or active pair (``pair``
                in the details names it), or a stale ``epoch``.
        """
        check_name("agent id", agent_id)
        check_name("agent id", target)
        check_text("the objective", objective)
        if not objective.strip() or len(objective) > MAX_OBJECTIVE_CHARS:
            raise InvalidInput(
                f"an objective has 1-{MAX_OBJECTIVE_CHARS} characters", field="objective"
            )
        if target == agent_id:
            raise InvalidInput("an agent cannot pair with itself", field="target")
        with self.store.write() as conn:
            now = self.now()
            self._pairs_settle_agents(conn, workspace, [agent_id, target], now)
            touch_agent(conn, workspace, agent_id, epoch, now)
            require_agent(conn, workspace, target)
            for who in (agent_id, target):
                blocking = _open_pair_of(conn, workspace, who)
                if blocking is not None:
                    raise _busy(who, blocking)
            expires = now + self.settings.pair_invite_seconds
            pair_id = int(
                conn.execute(
                    pairs.insert()
                    .values(
                        workspace=workspace,
                        inviter=agent_id,
                        invitee=target,
                        objective=objective,
                        status=PairStatus.PENDING.value,
                        created_at=now,
                        updated_at=now,
                        expires_at=expires,
                    )
                    .returning(pairs.c.id)
                ).scalar_one()
            )
            body = (
                f"{agent_id} invites you to pair on: {objective}\n"
                f"Accept with `relaybus pair accept {pair_id}` (or the task tool's "
                f"pair_accept), or reject with `relaybus pair reject {pair_id}`; the invite "
                f"expires in {self.settings.pair_invite_seconds:g} s."
            )
            first_line = objective.strip().splitlines()[0][:120]
            invite = self._pairs_say(
                conn,
                workspace,
                pair_id,
                agent_id,
                target,
                body,
                now,
                "invited",
                None,
                subject=f"pair {pair_id} invite: {first_line}",
            )
            conn.execute(pairs.update().where(pairs.c.id == pair_id).values(thread_id=invite.id))
            append_event(
                conn,
                workspace,
                "pair.invited",
                now,
                agent_id,
                pair_id=pair_id,
                inviter=agent_id,
                invitee=target,
                expires_at=expires,
                message_id=invite.id,
            )
            return self._pair_row(conn, pair_id)

    def pair_accept(
        self, pair_id: int, agent_id: str, *, workspace: str = "default", epoch: int | None = None
    ) -> Pair:
        """Accept a pending invite (its invitee only): the pair becomes active and the
        inviter hears of it on the pair's thread.

        Raises:
            NotFound: no agent ``agent_id``; no such pair, or one it is not in.
            Forbidden: ``agent_id`` is the inviter (only the invitee accepts).
            Conflict: the pair is not pending (answered, expired, ended), the agent is
                in another pending or active pair (``pair`` names it), or a stale epoch.
        """
        with self.store.write() as conn:
            now, row = self._pairs_acting(conn, workspace, pair_id, agent_id, epoch)
            self._pairs_check_invitee(row, agent_id, "accept")
            for who in (agent_id, row.inviter):  # an invite keeps both free: a safeguard
                blocking = _open_pair_of(conn, workspace, who, besides=pair_id)
                if blocking is not None:
                    raise _busy(who, blocking)
            conn.execute(
                pairs.update()
                .where(pairs.c.id == pair_id)
                .values(
                    status=PairStatus.ACTIVE.value, accepted_at=now, updated_at=now, expires_at=None
                )
            )
            body = f"{agent_id} accepted pair {pair_id}: send pair messages on this thread."
            message = self._pairs_say(
                conn,
                workspace,
                pair_id,
                agent_id,
                row.inviter,
                body,
                now,
                "accepted",
                row.thread_id,
            )
            append_event(
                conn,
                workspace,
                "pair.accepted",
                now,
                agent_id,
                pair_id=pair_id,
                inviter=row.inviter,
                invitee=row.invitee,
                message_id=message.id,
            )
            return self._pair_row(conn, pair_id)

    def pair_reject(
        self, pair_id: int, agent_id: str, *, workspace: str = "default", epoch: int | None = None
    ) -> Pair:
        """Reject a pending invite (its invitee only): final; the inviter hears of it.

        Raises:
            NotFound, Forbidden, Conflict: as :meth:`pair_accept` (but another pair of
                the agent's does not matter).
        """
        with self.store.write() as conn:
            now, row = self._pairs_acting(conn, workspace, pair_id, agent_id, epoch)
            self._pairs_check_invitee(row, agent_id, "reject")
            self._pairs_end(conn, workspace, row, PairStatus.REJECTED, "rejected", now, agent_id)
            return self._pair_row(conn, pair_id)

    def pair_hangup(
        self, pair_id: int, agent_id: str, *, workspace: str = "default", epoch: int | None = None
    ) -> Pair:
        """End a pair, pending (an invite taken back, or turned down) or active, by
        either of its agents: final; the other side hears of it.

        Raises:
            NotFound: no agent ``agent_id``; no such pair, or one it is not in.
            Conflict: the pair has ended already, or a stale ``epoch``.
        """
        with self.store.write() as conn:
            now, row = self._pairs_acting(conn, workspace, pair_id, agent_id, epoch)
            self._pairs_end(conn, workspace, row, PairStatus.ENDED, "hangup", now, agent_id)
            return self._pair_row(conn, pair_id)

    def pair_send(
        self,
        pair_id: int,
        agent_id: str,
        body: str,
        *,
        workspace: str = "default",
        epoch: int | None = None,
    ) -> Message:
        """Send ``body`` to the other agent of an active pair, on the pair's thread
        (a reply to its root, ``meta["pair"]`` its id).

        Raises:
            InvalidInput, TooLarge: ``body`` as :meth:`~.messages.MessageOps.send`.
            NotFound: no agent ``agent_id``; no such pair, or one it is not in.
            Conflict: the pair is not active (still pending, or over), or a stale epoch.
        """
        check_text("the message body", body)
        with self.store.write() as conn:
            now, row = self._pairs_acting(conn, workspace, pair_id, agent_id, epoch)
            if row.status != PairStatus.ACTIVE.value:
                raise Conflict(
                    f"pair {pair_id} is {row.status}: pair messages go only while it is "
                    "active"
                    + (" (wait for the invitee to accept)" if row.status == "pending" else ""),
                    pair=pair_id,
                    status=row.status,
                )
            return self._pairs_say(
                conn,
                workspace,
                pair_id,
                agent_id,
                _other(row, agent_id),
                body,
                now,
                None,
                row.thread_id,
            )

    def get_pair(
        self, pair_id: int, *, workspace: str = "default", viewer: str | None = None
    ) -> Pair:
        """One pair, as time has left it (an invite past its expiry reads expired).

        Args:
            viewer: read as this agent: only a pair it is in; ``None`` reads as admin.

        Raises:
            NotFound: no such pair, or one ``viewer`` is not in (the same answer).
            InvalidInput: ``pair_id`` is not an id.
        """
        check_id("pair id", pair_id)
        if viewer is not None:
            check_name("agent id", viewer)
        found = self._pairs_read(workspace, pairs.c.id == pair_id, viewer, 1)
        if not found:
            raise no_pair(pair_id)
        return found[0]

    def list_pairs(
        self,
        *,
        workspace: str = "default",
        viewer: str | None = None,
        status: PairStatus | str | None = None,
        limit: int = 100,
    ) -> list[Pair]:
        """Pairs, newest first, as time has left them.

        Args:
            viewer: read as this agent: only its own pairs; ``None``: every pair of the
                workspace (admin).
            status: only pairs with this status.
            limit: at most this many (1-1000).

        Raises:
            InvalidInput: an unknown status, a malformed viewer or limit.
        """
        check_limit(limit)
        condition: Any = sa.true()
        if status is not None:
            condition = pairs.c.status == check_choice(PairStatus, "pair status", status).value
        if viewer is not None:
            check_name("agent id", viewer)
        return self._pairs_read(workspace, condition, viewer, limit)

    def sweep_pairs(self, *, workspace: str = "default") -> int:
        """Write what time decided: expire pending invites past their expiry, end active
        pairs one of whose agents stayed offline past the grace period. Idempotent;
        reads first and takes the write lock only when something is due.

        Returns:
            how many pairs it ended.
        """
        now = self.now()
        with self.store.read() as conn:
            rows = _open_pairs(conn, workspace, None)
            due = [r.id for r in rows if self._pairs_outcome(conn, workspace, r, now) is not None]
        if not due:
            return 0
        with self.store.write() as conn:
            now = self.now()
            rows = [r for r in _open_pairs(conn, workspace, None) if r.id in due]
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

    def _pairs_read(
        self, workspace: str, condition: Any, viewer: str | None, limit: int
    ) -> list[Pair]:
        # A read that settles first what time decided about the pairs it returns (in a
        # write transaction, only when something is due).
        query = sa.select(pairs).where(pairs.c.workspace == workspace, condition)
        if viewer is not None:
            query = query.where(sa.or_(pairs.c.inviter == viewer, pairs.c.invitee == viewer))
        query = query.order_by(pairs.c.id.desc()).limit(limit)
        now = self.now()
        with self.store.read() as conn:
            rows = conn.execute(query).all()
            due = any(
                r.status in OPEN and self._pairs_outcome(conn, workspace, r, now) is not None
                for r in rows
            )
        if due:
            with self.store.write() as conn:
                now = self.now()
                ids = [r.id for r in rows]
                self._pairs_settle(conn, workspace, _open_pairs(conn, workspace, None, ids), now)
                rows = conn.execute(query).all()
        return [pair_from_row(r) for r in rows]

    def _pairs_acting(
        self, conn: Connection, workspace: str, pair_id: int, agent_id: str, epoch: int | None
    ) -> tuple[float, Any]:
        # Settle the pair, fence and touch the agent, and return (now, the pair's row)
        # if the agent is in it and the pair is still open.
        check_id("pair id", pair_id)
        check_name("agent id", agent_id)
        now = self.now()
        self._pairs_settle(conn, workspace, _open_pairs(conn, workspace, None, [pair_id]), now)
        touch_agent(conn, workspace, agent_id, epoch, now)
        row = conn.execute(
            sa.select(pairs).where(pairs.c.workspace == workspace, pairs.c.id == pair_id)
        ).first()
        if row is None or agent_id not in (row.inviter, row.invitee):
            raise no_pair(pair_id)
        if PairStatus(row.status).final:
            raise Conflict(
                f"pair {pair_id} is {row.status}"
                + (f" ({row.reason})" if row.reason and row.reason != row.status else "")
                + ": it is over; invite again for a new pair",
                pair=pair_id,
                status=row.status,
            )
        return now, row

    @staticmethod
    def _pairs_check_invitee(row: Any, agent_id: str, action: str) -> None:
        if row.status != PairStatus.PENDING.value:
            raise Conflict(
                f"pair {row.id} is {row.status}: only a pending invite can be answered",
                pair=row.id,
                status=row.status,
            )
        if agent_id != row.invitee:
            raise Forbidden(
                f"only {row.invitee}, the invitee, can {action} pair {row.id} "
                "(hang up to take the invite back)",
                pair=row.id,
            )

    def _pair_row(self, conn: Connection, pair_id: int) -> Pair:
        return pair_from_row(conn.execute(sa.select(pairs).where(pairs.c.id == pair_id)).one())

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
            to = _other(row, offline)
            text = (
                f"pair {row.id} ended: {offline} stayed offline for more than "
                f"{self.settings.pair_offline_grace_seconds:g} s."
            )
        else:
            assert by is not None
            sender, to = by, _other(row, by)
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

    def _pairs_outcome(
        self, conn: Connection, workspace: str, row: Any, now: float
    ) -> tuple[PairStatus, str, str | None] | None:
        # What time decided about an open pair at ``now``: (status, reason, the agent
        # gone offline), or None for nothing.
        if row.status == PairStatus.PENDING.value:
            if row.expires_at is not None and now >= row.expires_at:
                return PairStatus.EXPIRED, "expired", None
            return None
        if row.status != PairStatus.ACTIVE.value:
            return None
        found = {
            r.id: r
            for r in conn.execute(
                sa.select(
                    agents.c.id,
                    agents.c.status,
                    agents.c.last_seen_at,
                    agents.c.pid,
                    agents.c.host,
                ).where(
                    agents.c.workspace == workspace, agents.c.id.in_([row.inviter, row.invitee])
                )
            )
        }
        grace = self.settings.pair_offline_grace_seconds
        for who in (row.inviter, row.invitee):
            agent = found.get(who)
            if agent is None:  # unregistered: gone for good
                return PairStatus.ENDED, "offline", who
            gone = effective_status(agent._mapping, now, self.settings.stale_ttl)
            if gone is AgentStatus.OFFLINE and now - agent.last_seen_at > grace:
                return PairStatus.ENDED, "offline", who
        return None

    def _pairs_settle(
        self, conn: Connection, workspace: str, rows: Iterable[Any], now: float
    ) -> int:
        # End the open ``rows`` time has decided about, in the caller's write transaction.
        ended = 0
        for row in rows:
            outcome = self._pairs_outcome(conn, workspace, row, now)
            if outcome is None:
                continue
            status, reason, offline = outcome
            self._pairs_end(conn, workspace, row, status, reason, now, None, offline)
            ended += 1
        return ended

    def _pairs_settle_agents(
        self, conn: Connection, workspace: str, agent_ids: Sequence[str], now: float
    ) -> None:
        # Settle the open pairs of these agents (before an invite checks exclusivity).
        self._pairs_settle(conn, workspace, _open_pairs(conn, workspace, agent_ids), now)


def _open_pairs(
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


def _open_pair_of(
    conn: Connection, workspace: str, agent_id: str, *, besides: int | None = None
) -> Any:
    # The pending or active pair ``agent_id`` is in (other than ``besides``), or None.
    found = [
        r for r in _open_pairs(conn, workspace, [agent_id]) if besides is None or r.id != besides
    ]
    return found[0] if found else None


def _busy(agent_id: str, blocking: Any) -> Conflict:
    # The refusal of an invite or accept that a pair of ``agent_id`` blocks.
    other = _other(blocking, agent_id)
    return Conflict(
        f"{agent_id} is already in pair {blocking.id} ({blocking.status}, with {other}): "
        f"one pending or active pair per agent; hang up pair {blocking.id} first",
        pair=blocking.id,
        agent=agent_id,
        status=blocking.status,
    )
