"""Events in: integrations and the operator raise tasks from outside.

An event (:meth:`IngressOps.ingest_event`) opens a task and the claimable message that
offers it; a repeat of its ``dedupe_key`` while that task is active only counts another
occurrence (an alert storm interrupts nobody twice; the holder, or the audience while
nobody holds it, hears of repeats at most once per ``repeat_notice_seconds``);
``status="resolved"`` closes it; after that the same key opens a new task. The model is
agent-relay-server's "Integrations And Tasks" (the seed ``001`` in ``shared/seeds``),
on top of relaybus's tasks. :meth:`IngressOps.open_task` is ``POST /v1/tasks``: a task
from an agent, an integration or the operator, without a message to start from.

A dedupe key names at most one active task per integration: posters of one key queue
on the store's write lock (every write transaction takes it, on both dialects), and
the unique index ``ux_tasks_active_dedupe`` backs it. Each event counts against its integration's
rate limit in the same transaction (:func:`take_rate`), so replicas share one budget.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..errors import Conflict, Forbidden, InvalidInput, NotFound, RateLimited
from ..models import Ingested, IngestOutcome, IntegrationStatus, Message, Task, TaskStatus
from ..store.schema import rate_counts, tasks
from .common import (
    ServiceBase,
    append_event,
    check_choice,
    check_name,
    check_text,
    touch_agent,
)
from .drafts import make_draft, store_message
from .integrations import ANY, OPERATOR, check_external_url, check_key, existing, integration_sender
from .leases import HELD, history
from .outbox import task_from_row
from .tasks import TaskOrigin

#: The statuses of a task still in play (a dedupe key names one of them at most).
ACTIVE = (TaskStatus.OPEN, *HELD)
#: Seconds of one rate-limit window.
WINDOW = 60.0


@functools.cache
def _active_by_key(unowned: bool) -> sa.Select[Any]:
    # The active task of a dedupe key (of an integration, or of none): built once, when
    # first needed (a command that imports the service need not build it).
    query = sa.select(tasks).where(
        tasks.c.workspace == sa.bindparam("ws"),
        tasks.c.dedupe_key == sa.bindparam("key"),
        tasks.c.status.in_([s.value for s in ACTIVE]),
        tasks.c.integration.is_(None)
        if unowned
        else tasks.c.integration == sa.bindparam("integration"),
    )
    return query


class IngressOps(ServiceBase):
    """Integration events and tasks raised without a message of one's own."""

    # -- events and tasks raised from outside -----------------------------------------

    def ingest_event(
        self,
        integration: str | None,
        *,
        workspace: str = "default",
        title: str | None = None,
        body: str | None = None,
        source: str | None = None,
        target: str | None = None,
        channel: str | None = None,
        external_url: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        priority: str = "normal",
        dedupe_key: str | None = None,
        status: str = "open",
    ) -> Ingested:
        """Take one event from integration ``integration`` (``None``: the operator).

        ``status="open"`` opens a task and the claimable message that offers it to
        ``target`` (default: the integration's first allowed target) — unless a task
        with the same ``dedupe_key`` is still active, whose ``occurrence_count`` and
        ``last_seen_at`` it raises instead (its holder, or its audience when nobody
        holds it, hears of repeats at most once per ``repeat_notice_seconds``).
        ``status="resolved"`` closes the active task of ``dedupe_key`` (done).

        Returns:
            the outcome (``created``, ``repeated``, ``resolved``, or ``ignored`` for a
            resolution with nothing active), the task, and the message sent if any.

        Raises:
            Forbidden: the integration is revoked, lacks ``tasks:create``, or may not
                address ``target`` or ``channel``.
            RateLimited: over its events per minute (``retry_after`` seconds).
            InvalidInput: a malformed field, no title for a new task, a resolution
                without a dedupe key.
            NotFound: no such integration; ``target`` matches nobody.
        """
        state = check_choice(_EventStatus, "event status", status)
        if dedupe_key is not None:
            check_key(dedupe_key)
        if state is _EventStatus.RESOLVED and dedupe_key is None:
            raise InvalidInput("a resolution names the dedupe_key of the event it resolves")
        with self.store.write() as conn:
            now = self.now()
            hook = self._acting(conn, workspace, integration, "tasks:create", now)
            if dedupe_key is not None:
                found = self._active_task(conn, workspace, integration, dedupe_key)
                if state is _EventStatus.RESOLVED:
                    if found is None:
                        return Ingested(outcome=IngestOutcome.IGNORED, task=None)
                    self._resolve(conn, workspace, found, integration, now)
                    return Ingested(
                        outcome=IngestOutcome.RESOLVED,
                        task=self._read_task(conn, found.id),
                    )
                if found is not None:
                    message_id = self._repeat(conn, workspace, found, integration, now)
                    return Ingested(
                        outcome=IngestOutcome.REPEATED,
                        task=self._read_task(conn, found.id),
                        message_id=message_id,
                    )
            if title is None:
                raise InvalidInput("an event that opens a task needs a title", field="title")
            message = self._raise_task(
                conn,
                workspace,
                now,
                hook,
                sender=integration_sender(integration) if integration else OPERATOR,
                title=title,
                body=body,
                target=target,
                channel=channel,
                meta=metadata,
                priority=priority,
                origin=TaskOrigin(integration, _source(source), _url(external_url), dedupe_key),
            )
            assert message.task_id is not None
            task = self._read_task(conn, message.task_id)
        return Ingested(outcome=IngestOutcome.CREATED, task=task, message_id=message.id)

    def open_task(
        self,
        *,
        workspace: str = "default",
        title: str,
        target: str,
        creator: str | None = None,
        integration: str | None = None,
        epoch: int | None = None,
        body: str | None = None,
        channel: str | None = None,
        meta: Mapping[str, Any] | None = None,
        external_url: str | None = None,
        priority: str = "normal",
        dedupe_key: str | None = None,
        source: str | None = None,
    ) -> Task:
        """Open a task and the claimable message offering it to ``target``, without a
        message of one's own to start from (``POST /v1/tasks``): from agent
        ``creator``, from ``integration`` (as its events are), or from the operator.

        Raises:
            Conflict: an active task has ``dedupe_key`` (the message names it); stale
                ``epoch``.
            Forbidden, RateLimited: as :meth:`ingest_event`, for an integration.
            InvalidInput: a malformed field.
            NotFound: no agent ``creator``; ``target`` matches nobody.
        """
        if dedupe_key is not None:
            check_key(dedupe_key)
        with self.store.write() as conn:
            now = self.now()
            if creator is not None:
                touch_agent(conn, workspace, creator, epoch, now)
                sender, hook = creator, None
            else:
                hook = self._acting(conn, workspace, integration, "tasks:create", now)
                sender = integration_sender(integration) if integration else OPERATOR
            if dedupe_key is not None:
                found = self._active_task(conn, workspace, integration, dedupe_key)
                if found is not None:
                    raise Conflict(
                        f"task {found.id} is active with dedupe key {dedupe_key!r}",
                        task=found.id,
                    )
            message = self._raise_task(
                conn,
                workspace,
                now,
                hook,
                sender=sender,
                title=title,
                body=body,
                target=target,
                channel=channel,
                meta=meta,
                priority=priority,
                origin=TaskOrigin(integration, _source(source), _url(external_url), dedupe_key),
            )
            assert message.task_id is not None
            return self._read_task(conn, message.task_id)

    def send_from_integration(
        self,
        integration: str,
        to: str | None,
        body: str,
        *,
        workspace: str = "default",
        subject: str | None = None,
        channel: str | None = None,
        reply_to: int | None = None,
        priority: str = "normal",
        meta: Mapping[str, Any] | None = None,
        claimable: bool = False,
    ) -> Message:
        """Send a message from integration ``integration`` (``integration:NAME``), with
        the scope ``messages:send``, to a target and channel it may address (default:
        its first ones), counted against its rate limit. A claimable message's task
        belongs to the integration (its changes are posted to its callback URL).

        Raises:
            Forbidden: revoked, no ``messages:send``, a target or channel not allowed.
            RateLimited: over its rate limit.
            InvalidInput, TooLarge, NotFound: as :meth:`~relaybus.service.Service.send`.
        """
        with self.store.write() as conn:
            now = self.now()
            hook = self._acting(conn, workspace, integration, "messages:send", now)
            assert hook is not None
            if reply_to is None or to is not None:
                to, channel = _allowed(hook, to, channel)
            draft = make_draft(
                to,
                body,
                subject,
                channel,
                reply_to,
                priority,
                meta,
                claimable,
                limit=self.settings.max_body_bytes,
            )
            origin = TaskOrigin(integration) if claimable else None
            return store_message(
                conn, workspace, integration_sender(integration), draft, now, origin=origin
            )

    # -- helpers --------------------------------------------------------------------

    def _acting(
        self, conn: Connection, workspace: str, name: str | None, scope: str, now: float
    ) -> sa.RowMapping | None:
        """The integration ``name`` acting with ``scope`` (None: the operator), its
        event counted against its rate limit."""
        if name is None:
            return None
        check_name("integration name", name)
        hook = existing(conn, workspace, name)
        if hook["status"] != IntegrationStatus.ACTIVE.value:
            raise Forbidden(f"integration {name!r} is revoked", integration=name)
        if scope not in hook["scopes"]:
            raise Forbidden(
                f"integration {name!r} lacks the scope {scope!r}", integration=name, scope=scope
            )
        take_rate(conn, workspace, integration_sender(name), hook["rate_limit"], now)
        return hook

    @staticmethod
    def _active_task(conn: Connection, workspace: str, integration: str | None, key: str) -> Any:
        # Posters of one key queue on the store's write lock (Store.write: SQLite's one
        # writer, PostgreSQL's transaction-scoped advisory lock for every writer), so
        # the second sees the first's task instead of opening another.
        params = {"ws": workspace, "key": key, "integration": integration}
        return conn.execute(_active_by_key(integration is None), params).first()

    def _raise_task(
        self,
        conn: Connection,
        workspace: str,
        now: float,
        hook: Mapping[str, Any] | sa.RowMapping | None,
        *,
        sender: str,
        title: str,
        body: str | None,
        target: str | None,
        channel: str | None,
        meta: Mapping[str, Any] | None,
        priority: str,
        origin: TaskOrigin,
    ) -> Any:
        check_text("the title", title)
        if not title.strip():
            raise InvalidInput("a task needs a title", field="title")
        if hook is not None:
            target, channel = _allowed(hook, target, channel)
        if target is None:
            raise InvalidInput("a task needs a target (to)", field="target")
        text = body if body is not None and body.strip() else title
        if origin.external_url is not None:
            text = f"{text}\n\n{origin.external_url}"
        draft = make_draft(
            target,
            text,
            title,
            channel,
            None,
            priority,
            meta,
            True,
            limit=self.settings.max_body_bytes,
        )
        return store_message(conn, workspace, sender, draft, now, origin=origin)

    def _resolve(
        self, conn: Connection, workspace: str, row: Any, integration: str | None, now: float
    ) -> None:
        who = integration_sender(integration) if integration else OPERATOR
        note = f"resolved by {who}"
        conn.execute(
            tasks.update()
            .where(tasks.c.id == row.id)
            .values(
                status=TaskStatus.DONE.value,
                progress=100,
                lease_expires_at=None,
                result=row.result if row.result is not None else note,
                last_seen_at=now,
                updated_at=now,
            )
        )
        history(conn, workspace, row.id, "resolved", TaskStatus.DONE, None, now, note=note)
        append_event(
            conn,
            workspace,
            "task.updated",
            now,
            None,
            task_id=row.id,
            status=TaskStatus.DONE.value,
            previous=row.status,
            progress=100,
            note=note,
            result=None,
        )

    def _repeat(
        self, conn: Connection, workspace: str, row: Any, integration: str | None, now: float
    ) -> int | None:
        count = row.occurrence_count + 1
        notice = now - (row.notified_at or 0.0) >= self.settings.repeat_notice_seconds
        conn.execute(
            tasks.update()
            .where(tasks.c.id == row.id)
            .values(
                occurrence_count=count,
                last_seen_at=now,
                updated_at=now,
                **({"notified_at": now} if notice else {}),
            )
        )
        history(
            conn, workspace, row.id, "repeated", TaskStatus(row.status), None, now, note=f"#{count}"
        )
        append_event(
            conn, workspace, "task.repeated", now, None, task_id=row.id, occurrence_count=count
        )
        if not notice:
            return None
        # The holder hears it, else the audience the task was offered to (a reply in
        # the task's thread, so it reads as part of it).
        holder = row.assignee if TaskStatus(row.status) in HELD else None
        sender = integration_sender(integration) if integration else OPERATOR
        draft = make_draft(
            holder or row.target,
            f"Seen again ({count} times in all): {row.title}",
            None,
            None if holder else row.channel,
            row.message_id,
            row.priority or "normal",
            {"task_id": row.id, "occurrence_count": count},
            False,
            limit=self.settings.max_body_bytes,
        )
        try:
            return store_message(conn, workspace, sender, draft, now).id
        except NotFound:
            return None  # nobody left to tell (the count is still raised)

    @staticmethod
    def _read_task(conn: Connection, task_id: int) -> Task:
        row = conn.execute(sa.select(tasks).where(tasks.c.id == task_id)).one()
        return task_from_row(row._mapping)


class _EventStatus(StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"


def _source(source: str | None) -> str | None:
    if source is None:
        return None
    check_text("the source", source)
    if not 1 <= len(source) <= 128:
        raise InvalidInput("a source is 1-128 characters", field="source")
    return source


def _url(url: str | None) -> str | None:
    return None if url is None else check_external_url(url)


def _allowed(
    hook: Mapping[str, Any] | sa.RowMapping, target: str | None, channel: str | None
) -> tuple[str | None, str | None]:
    """The target and channel of a task integration ``hook`` raises: the given ones if
    its allow-lists have them, else its first ones.

    Raises:
        Forbidden: a target or channel it may not address.
        InvalidInput: no target given and none allowed.
    """
    name, targets, channels = hook["name"], hook["targets"], hook["channels"]
    if target is None:
        if not targets or targets[0] == ANY:
            raise InvalidInput(
                f"name a target: integration {name!r} has no default target", field="target"
            )
        target = targets[0]
    elif ANY not in targets and target not in targets:
        allowed = ", ".join(targets) or "none"
        raise Forbidden(
            f"integration {name!r} may not address {target!r} (allowed: {allowed})",
            integration=name,
            target=target,
        )
    if channel is None:
        channel = next((c for c in channels if c != ANY), None)
    elif ANY not in channels and channel not in channels:
        allowed = ", ".join(channels) or "none"
        raise Forbidden(
            f"integration {name!r} may not post to channel {channel!r} (allowed: {allowed})",
            integration=name,
            channel=channel,
        )
    return target, channel


@functools.cache
def _take_rate() -> sa.Update:
    # Built when first needed (see _active_by_key).
    return (
        rate_counts.update()
        .where(
            rate_counts.c.workspace == sa.bindparam("ws"),
            rate_counts.c.subject == sa.bindparam("who"),
        )
        .values(
            count=sa.case(
                (rate_counts.c.window_start == sa.bindparam("window"), rate_counts.c.count + 1),
                else_=1,
            ),
            window_start=sa.bindparam("window"),
        )
        .returning(rate_counts.c.count)
    )


def take_rate(conn: Connection, workspace: str, subject: str, limit: int, now: float) -> int:
    """Count one request of ``subject`` against ``limit`` per minute (a fixed window,
    in the caller's transaction, so that every replica counts in one place).

    Returns:
        the requests of this window so far, this one included.

    Raises:
        RateLimited: over ``limit`` (``retry_after``: seconds to the next window).
    """
    window = math.floor(now / WINDOW) * WINDOW
    found = conn.execute(_take_rate(), {"ws": workspace, "who": subject, "window": window}).first()
    if found is None:
        # The integration's counter row is made with it; this is for one made before.
        conn.execute(
            rate_counts.insert().values(
                workspace=workspace, subject=subject, window_start=window, count=1
            )
        )
    count = 1 if found is None else int(found[0])
    if count > limit:
        retry = max(window + WINDOW - now, 1.0)
        raise RateLimited(
            f"{subject} is over its rate limit of {limit} per minute; "
            f"retry in {math.ceil(retry)} s",
            retry_after=retry,
            limit=limit,
        )
    return count
