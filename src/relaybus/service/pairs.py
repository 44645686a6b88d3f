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

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..errors import Conflict, Forbidden, InvalidInput, NotFound
from ..models import Event, Message, Pair, PairStatus
from ..store.schema import pairs
from .common import (
    append_event,
    check_choice,
    check_id,
    check_limit,
    check_name,
    check_text,
    require_agent,
    touch_agent,
)
from .pair_endings import PairEndings, open_pairs, other_side

#: Longest objective of a pair (characters).
MAX_OBJECTIVE_CHARS = 2000


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


class PairOps(PairEndings):
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
                other_side(row, agent_id),
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
        # By status, the open pairs in view settle first (an expired invite may still
        # be stored as pending): one read of them, a write only when one is due.
        return self._pairs_read(workspace, condition, viewer, limit, every=status is not None)

    def _pairs_read(
        self, workspace: str, condition: Any, viewer: str | None, limit: int, every: bool = False
    ) -> list[Pair]:
        # A read that settles first what time decided about the pairs it returns (with
        # ``every``, about every open pair of ``viewer``, or of the workspace), in a
        # write transaction only when something is due.
        query = sa.select(pairs).where(pairs.c.workspace == workspace, condition)
        if viewer is not None:
            query = query.where(sa.or_(pairs.c.inviter == viewer, pairs.c.invitee == viewer))
        query = query.order_by(pairs.c.id.desc()).limit(limit)
        mine = None if viewer is None else [viewer]
        now = self.now()
        with self.store.read() as conn:
            rows = conn.execute(query).all()
            scope = open_pairs(conn, workspace, mine) if every else rows
            due = [row.id for row, *_ in self._pairs_due(conn, workspace, scope, now)]
        if due:
            with self.store.write() as conn:
                now = self.now()
                self._pairs_settle(conn, workspace, open_pairs(conn, workspace, None, due), now)
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
        self._pairs_settle(conn, workspace, open_pairs(conn, workspace, None, [pair_id]), now)
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


def _open_pair_of(
    conn: Connection, workspace: str, agent_id: str, *, besides: int | None = None
) -> Any:
    # The pending or active pair ``agent_id`` is in (other than ``besides``), or None.
    found = [
        r for r in open_pairs(conn, workspace, [agent_id]) if besides is None or r.id != besides
    ]
    return found[0] if found else None


def _busy(agent_id: str, blocking: Any) -> Conflict:
    # The refusal of an invite or accept that a pair of ``agent_id`` blocks.
    other = other_side(blocking, agent_id)
    return Conflict(
        f"{agent_id} is already in pair {blocking.id} ({blocking.status}, with {other}): "
        f"one pending or active pair per agent; hang up pair {blocking.id} first",
        pair=blocking.id,
        agent=agent_id,
        status=blocking.status,
    )
