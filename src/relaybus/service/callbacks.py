"""The callback outbox's consumer side: claiming due callbacks, recording attempts,
listing and replaying them.

A sender (the server's sweeper, :mod:`relaybus.integrations.sender`) takes due rows with
:meth:`CallbackOps.claim_callbacks`: each row's ``next_attempt_at`` moves forward by the
time an attempt may take (``hold``) in the claiming transaction (rows taken ``FOR UPDATE
SKIP LOCKED`` on PostgreSQL, and compare-and-set on ``attempts`` everywhere), so one
sender at a time holds an attempt, and a sender that dies mid-post leaves the row due
again once ``hold`` has passed: at-least-once delivery, every attempt recorded in
``callback_attempts`` when it begins. :meth:`CallbackOps.finish_callback` records its
outcome and either marks the row delivered, schedules the next attempt (exponential
backoff with "equal jitter", as in the AWS Architecture Blog's "Exponential Backoff And
Jitter"), or dead-letters it after ``settings.callback_max_attempts``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import sqlalchemy as sa

from ..errors import Conflict, NotFound
from ..models import CallbackAttempt, CallbackDelivery, CallbackStatus
from ..store.schema import callback_attempts, callbacks, integrations
from .common import ServiceBase, check_choice, check_id, check_limit
from .integrations import existing

if TYPE_CHECKING:
    from random import Random

#: The longest pause between two attempts (seconds).
MAX_BACKOFF = 3600.0


@dataclass(frozen=True, slots=True)
class ClaimedCallback:
    """One attempt a sender now holds: post ``body`` to ``url`` signed with ``secret``."""

    id: int
    attempt_id: int
    attempt: int
    workspace: str
    integration: str
    event: str
    url: str
    secret: str
    payload: dict[str, Any]


class Outcome(NamedTuple):
    """How one claimed attempt ended: the receiver's HTTP ``status`` or an ``error``,
    and the ``latency`` in seconds (see :meth:`CallbackOps.finish_callbacks`)."""

    claimed: ClaimedCallback
    status: int | None
    latency: float | None
    error: str | None


def backoff(attempts: int, base: float, rng: Random | None = None) -> float:
    """Seconds before the attempt after ``attempts`` failed ones: ``base * 2**(attempts-1)``
    capped at :data:`MAX_BACKOFF`, of which a random half is kept ("equal jitter")."""
    import random  # here: a command that imports the service never backs off

    delay = min(base * 2 ** max(attempts - 1, 0), MAX_BACKOFF)
    return float(delay / 2 + (rng or random).uniform(0, delay / 2))


class CallbackOps(ServiceBase):
    """Claiming, finishing, listing and replaying callbacks."""

    def claim_callbacks(
        self, *, runner: str, limit: int = 16, hold: float
    ) -> list[ClaimedCallback]:
        """Take up to ``limit`` due callbacks for one attempt each, for ``hold`` seconds.

        A callback whose integration was revoked or lost its callback URL is
        dead-lettered here instead (``last_error`` says why).

        Args:
            runner: who sends (``host:pid``), recorded with each attempt.
            hold: seconds the attempt may take before the row is due again.
        """
        taken: list[ClaimedCallback] = []
        with self.store.write() as conn:
            now = self.now()
            query = (
                sa.select(
                    callbacks.c.id,
                    callbacks.c.workspace,
                    callbacks.c.integration,
                    callbacks.c.event,
                    callbacks.c.attempts,
                    callbacks.c.payload,
                    integrations.c.callback_url,
                    integrations.c.secret,
                    integrations.c.status.label("hook_status"),
                )
                .join(
                    integrations,
                    sa.and_(
                        integrations.c.workspace == callbacks.c.workspace,
                        integrations.c.name == callbacks.c.integration,
                    ),
                    isouter=True,
                )
                .where(callbacks.c.status == "pending", callbacks.c.next_attempt_at <= now)
                .order_by(callbacks.c.next_attempt_at)
                .limit(limit)
            )
            if conn.dialect.name == "postgresql":
                query = query.with_for_update(of=callbacks, skip_locked=True)
            for row in conn.execute(query).all():
                if row.hook_status != "active" or not row.callback_url or not row.secret:
                    conn.execute(
                        callbacks.update()
                        .where(callbacks.c.id == row.id)
                        .values(
                            status="dead",
                            next_attempt_at=None,
                            last_error="the integration is revoked or has no callback URL",
                        )
                    )
                    continue
                attempt = row.attempts + 1
                moved = conn.execute(
                    callbacks.update()
                    .where(
                        callbacks.c.id == row.id,
                        callbacks.c.attempts == row.attempts,
                        callbacks.c.status == "pending",
                    )
                    .values(attempts=attempt, next_attempt_at=now + hold)
                ).rowcount
                if not moved:
                    continue
                number = 1 + int(
                    conn.execute(
                        sa.select(sa.func.count()).where(callback_attempts.c.callback_id == row.id)
                    ).scalar_one()
                )
                attempt_id = conn.execute(
                    callback_attempts.insert()
                    .values(callback_id=row.id, attempt=number, runner=runner, started_at=now)
                    .returning(callback_attempts.c.id)
                ).scalar_one()
                taken.append(
                    ClaimedCallback(
                        id=row.id,
                        attempt_id=int(attempt_id),
                        attempt=attempt,
                        workspace=row.workspace,
                        integration=row.integration,
                        event=row.event,
                        url=row.callback_url,
                        secret=row.secret,
                        payload={"id": row.id, **row.payload},
                    )
                )
        return taken

    def finish_callback(
        self,
        claimed: ClaimedCallback,
        *,
        status: int | None = None,
        latency: float | None = None,
        error: str | None = None,
    ) -> CallbackStatus:
        """Record the outcome of ``claimed``'s attempt: the receiver's HTTP ``status``
        (2xx: delivered) or an ``error`` (no answer), ``latency`` in seconds. A failure
        is retried after :func:`backoff`, or dead-lettered after
        ``settings.callback_max_attempts`` attempts.

        Returns:
            the callback's status now (unchanged if it was replayed or finished meanwhile).
        """
        return self.finish_callbacks([Outcome(claimed, status, latency, error)])[0]

    def finish_callbacks(self, outcomes: Sequence[Outcome]) -> list[CallbackStatus]:
        """:meth:`finish_callback` for a round of attempts, in one transaction.

        Returns:
            each callback's status now, in the order of ``outcomes``.
        """
        found: list[CallbackStatus] = []
        with self.store.write() as conn:
            now = self.now()
            for claimed, status, latency, error in outcomes:
                conn.execute(
                    callback_attempts.update()
                    .where(callback_attempts.c.id == claimed.attempt_id)
                    .values(status=status, latency=latency, error=error)
                )
                values: dict[str, Any] = {"last_status": status, "last_error": error}
                if status is not None and 200 <= status < 300:
                    values.update(status="delivered", delivered_at=now, next_attempt_at=None)
                elif claimed.attempt >= self.settings.callback_max_attempts:
                    values.update(status="dead", next_attempt_at=None)
                else:
                    pause = backoff(claimed.attempt, self.settings.callback_backoff)
                    values.update(next_attempt_at=now + pause)
                # Unchanged if it was replayed or finished meanwhile (attempts moved on).
                conn.execute(
                    callbacks.update()
                    .where(
                        callbacks.c.id == claimed.id,
                        callbacks.c.status == "pending",
                        callbacks.c.attempts == claimed.attempt,
                    )
                    .values(**values)
                )
                current = conn.execute(
                    sa.select(callbacks.c.status).where(callbacks.c.id == claimed.id)
                ).scalar_one()
                found.append(CallbackStatus(current))
        return found

    def callback_deliveries(
        self,
        name: str,
        *,
        workspace: str = "default",
        status: CallbackStatus | str | None = None,
        limit: int = 100,
    ) -> list[CallbackDelivery]:
        """Integration ``name``'s callbacks, newest first, each with its attempts.

        Raises:
            InvalidInput: an unknown ``status``, ``limit`` outside 1-1000.
            NotFound: no such integration.
        """
        check_limit(limit)
        query = sa.select(callbacks).where(
            callbacks.c.workspace == workspace, callbacks.c.integration == name
        )
        if status is not None:
            query = query.where(
                callbacks.c.status == check_choice(CallbackStatus, "callback status", status).value
            )
        with self.store.read() as conn:
            existing(conn, workspace, name)
            rows = conn.execute(query.order_by(callbacks.c.id.desc()).limit(limit)).all()
            return self._with_attempts(conn, [r._mapping for r in rows])

    def replay_callback(
        self, name: str, delivery_id: int, *, workspace: str = "default"
    ) -> CallbackDelivery:
        """Send callback ``delivery_id`` of integration ``name`` again, now, with a
        fresh budget of attempts (a dead letter, or one delivered that the receiver
        lost).

        Raises:
            NotFound: no such integration or callback.
            Conflict: it is still pending (it will be sent anyway).
        """
        check_id("callback id", delivery_id)
        with self.store.write() as conn:
            now = self.now()
            existing(conn, workspace, name)
            row = conn.execute(
                sa.select(callbacks.c.status).where(
                    callbacks.c.workspace == workspace,
                    callbacks.c.integration == name,
                    callbacks.c.id == delivery_id,
                )
            ).first()
            if row is None:
                raise NotFound(f"integration {name!r} has no callback {delivery_id}")
            if row.status == "pending":
                raise Conflict(f"callback {delivery_id} is pending: it is sent without a replay")
            conn.execute(
                callbacks.update()
                .where(callbacks.c.id == delivery_id)
                .values(status="pending", attempts=0, next_attempt_at=now, delivered_at=None)
            )
            found = conn.execute(sa.select(callbacks).where(callbacks.c.id == delivery_id)).one()
            return self._with_attempts(conn, [found._mapping])[0]

    def next_callback_due(self) -> float | None:
        """When the next pending callback is due (float Unix seconds, on the store's
        clock), or None when none is pending: one read, for a sender between rounds."""
        with self.store.read() as conn:
            due = conn.execute(
                sa.select(sa.func.min(callbacks.c.next_attempt_at)).where(
                    callbacks.c.status == "pending"
                )
            ).scalar()
        return None if due is None else float(due)

    def pending_callbacks(self) -> int:
        """How many callbacks wait to be sent, in every workspace (for metrics)."""
        with self.store.read() as conn:
            return int(
                conn.execute(
                    sa.select(sa.func.count()).where(callbacks.c.status == "pending")
                ).scalar_one()
            )

    @staticmethod
    def _with_attempts(conn: Any, rows: list[Any]) -> list[CallbackDelivery]:
        ids = [row["id"] for row in rows]
        log: dict[int, list[CallbackAttempt]] = {i: [] for i in ids}
        if ids:
            for attempt in conn.execute(
                sa.select(callback_attempts)
                .where(callback_attempts.c.callback_id.in_(ids))
                .order_by(callback_attempts.c.id)
            ).all():
                log[attempt.callback_id].append(CallbackAttempt.model_validate(attempt._mapping))
        return [
            CallbackDelivery.model_validate(
                {
                    **row,
                    "payload": {"id": row["id"], **row["payload"]},
                    "attempt_log": log[row["id"]],
                }
            )
            for row in rows
        ]
