"""Tasks: atomic claims as leases, status changes with history, and lease expiry.

A claim is a lease (Gray & Cheriton, "Leases", SOSP 1989): the holder renews
it or loses it when it lapses or when the holder goes offline. Every claim
records the holder's epoch, so a fenced-off instance cannot renew or update
(Kleppmann's fencing tokens).

Who sees and claims a task is the visibility rule of
:mod:`relaybus.service.visibility`: an agent acts only on a task it may see
(any other is ``NotFound``, like a missing id), and claims only a task whose
message it received.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..bounds import MAX_LEASE_SECONDS
from ..errors import Conflict, Forbidden, InvalidInput
from ..models import AgentStatus, Task, TaskEvent, TaskStatus
from ..store.schema import agents, task_events, tasks
from ..store.statements import register, run
from .common import (
    append_event,
    check_choice,
    check_id,
    check_limit,
    check_name,
    check_text,
    touch_agent,
)
from .leases import HELD, history, reopen
from .outbox import task_from_row
from .presence import effective_status
from .sweeps import SweepOps
from .visibility import no_task, restrict_tasks, task_audience, task_offered_to, visible_task_ids

#: Status changes an ``update`` may make (claim and release have their own calls).
TRANSITIONS: dict[TaskStatus, frozenset[TaskStatus]] = {
    TaskStatus.OPEN: frozenset({TaskStatus.DONE, TaskStatus.FAILED, TaskStatus.CANCELED}),
    TaskStatus.CLAIMED: frozenset(
        {
            TaskStatus.IN_PROGRESS,
            TaskStatus.BLOCKED,
            TaskStatus.DONE,
            TaskStatus.FAILED,
            TaskStatus.CANCELED,
        }
    ),
    TaskStatus.IN_PROGRESS: frozenset(
        {
            TaskStatus.IN_PROGRESS,
            TaskStatus.BLOCKED,
            TaskStatus.DONE,
            TaskStatus.FAILED,
            TaskStatus.CANCELED,
        }
    ),
    TaskStatus.BLOCKED: frozenset(
        {TaskStatus.IN_PROGRESS, TaskStatus.DONE, TaskStatus.FAILED, TaskStatus.CANCELED}
    ),
    TaskStatus.DONE: frozenset(),
    TaskStatus.FAILED: frozenset(),
    TaskStatus.CANCELED: frozenset(),
}
#: What a task's creator may do without holding it: close it.
CREATOR_MAY = frozenset({TaskStatus.DONE, TaskStatus.FAILED, TaskStatus.CANCELED})


#: A new task (every claimable message and integration event writes one).
_INSERT_TASK = register("tasks.insert", tasks.insert().returning(tasks.c.id))


class TaskOrigin(NamedTuple):
    """Where a task raised from outside comes from: the ``integration`` (its name) that
    raised it, the ``source`` system it names, a link to the thing itself
    (``external_url``), and the ``dedupe_key`` that makes repeats raise the same task."""

    integration: str | None = None
    source: str | None = None
    external_url: str | None = None
    dedupe_key: str | None = None


def create_task(
    conn: Connection,
    workspace: str,
    now: float,
    *,
    title: str,
    target: str,
    body: str | None = None,
    channel: str | None = None,
    message_id: int | None = None,
    creator: str | None = None,
    meta: Mapping[str, Any] | None = None,
    priority: str = "normal",
    origin: TaskOrigin | None = None,
) -> int:
    """Insert an open task (in the caller's transaction); returns its id.

    Args:
        origin: where a task raised from outside comes from (an integration, a source
            system, a link, a dedupe key); see :class:`TaskOrigin`.
    """
    origin = origin or TaskOrigin()
    row = {
        "workspace": workspace,
        "title": title,
        "body": body,
        "target": target,
        "channel": channel,
        "message_id": message_id,
        "creator": creator,
        "status": TaskStatus.OPEN.value,
        "progress": 0,
        "occurrence_count": 1,
        "meta": dict(meta or {}),
        "created_at": now,
        "updated_at": now,
        "priority": priority,
        "integration": origin.integration,
        "source": origin.source,
        "external_url": origin.external_url,
        "dedupe_key": origin.dedupe_key,
        "notified_at": now if origin.dedupe_key is not None else None,
    }
    task_id = run(conn, _INSERT_TASK, row)[0][0]
    history(conn, workspace, int(task_id), "created", TaskStatus.OPEN, creator, now)
    append_event(
        conn,
        workspace,
        "task.created",
        now,
        creator,
        task_id=task_id,
        title=title,
        target=target,
        channel=channel,
        message_id=message_id,
    )
    return int(task_id)


class TaskOps(SweepOps):
    """Claiming, renewing, releasing and updating tasks."""

    def claim(
        self,
        task_id: int,
        agent_id: str,
        *,
        workspace: str = "default",
        epoch: int | None = None,
        lease: float | None = None,
    ) -> Task:
        """Claim an open task for ``agent_id`` for ``lease`` seconds (default
        ``settings.lease_seconds``; the length is kept for renewals that name
        none). Atomic: of any number of racing claimers exactly one wins.
        Claiming a task one already holds renews it. A task whose lease lapsed
        or whose holder is offline is taken over. Only a recipient of the task's
        message may claim it.

        Raises:
            Conflict: another agent holds it (``holder`` in the details), it is
                finished, or ``epoch`` is stale.
            Forbidden: ``agent_id`` may see the task but was not offered it (its
                creator, which may close it but not claim it).
            NotFound: no such agent; no such task, or one ``agent_id`` may not
                see (the same answer).
        """
        seconds = self._lease(lease)
        with self.store.write() as conn:
            now = self.now()
            current = touch_agent(conn, workspace, agent_id, epoch, now)
            row = self._row(conn, workspace, task_id, lock=True, viewer=agent_id)
            if not self._offered(conn, task_id, agent_id):
                raise Forbidden(
                    f"{agent_id} cannot claim task {task_id}: only a recipient of its "
                    "message can (its creator may close it)",
                    task=task_id,
                )
            status = TaskStatus(row.status)
            if status.terminal:
                raise Conflict(
                    f"task {task_id} is {status.value}"
                    + (f" (it was claimed by {row.assignee})" if row.assignee else "")
                    + "; it cannot be claimed",
                    task=task_id,
                    status=status.value,
                    holder=row.assignee,
                )
            if status in HELD and row.assignee != agent_id:
                reason = self._lapsed(conn, workspace, row, now)
                if reason is None:
                    raise Conflict(
                        f"task {task_id} is already claimed by {row.assignee}",
                        task=task_id,
                        holder=row.assignee,
                    )
                reopen(conn, workspace, task_id, row.assignee, now, reason)
            renewing = status in HELD and row.assignee == agent_id
            conn.execute(
                tasks.update()
                .where(tasks.c.id == task_id)
                .values(
                    status=row.status if renewing else TaskStatus.CLAIMED.value,
                    assignee=agent_id,
                    assignee_epoch=current,
                    lease_expires_at=now + seconds,
                    lease_seconds=lease,
                    updated_at=now,
                )
            )
            kind = "renewed" if renewing else "claimed"
            new_status = TaskStatus(row.status) if renewing else TaskStatus.CLAIMED
            history(conn, workspace, task_id, kind, new_status, agent_id, now)
            append_event(
                conn,
                workspace,
                f"task.{kind}",
                now,
                agent_id,
                task_id=task_id,
                lease_expires_at=now + seconds,
            )
        return self.get_task(task_id, workspace=workspace, sweep=False)

    def renew(
        self,
        task_id: int,
        agent_id: str,
        *,
        workspace: str = "default",
        epoch: int | None = None,
        lease: float | None = None,
    ) -> Task:
        """Extend the lease of a task ``agent_id`` holds by ``lease`` seconds from now
        (``None``: the length it was claimed or last renewed with; a length given is
        kept for later renewals).

        Raises:
            Conflict: ``agent_id`` does not hold it (any more), or stale ``epoch``.
            NotFound: no such agent; no such task, or one ``agent_id`` may not
                see (the same answer).
        """
        if lease is not None:
            self._lease(lease)
        with self.store.write() as conn:
            now = self.now()
            row = self._held_by(conn, workspace, task_id, agent_id, epoch, now)
            kept = row.lease_seconds if lease is None else lease
            seconds = self._lease(kept)
            conn.execute(
                tasks.update()
                .where(tasks.c.id == task_id)
                .values(lease_expires_at=now + seconds, lease_seconds=kept, updated_at=now)
            )
            append_event(
                conn,
                workspace,
                "task.renewed",
                now,
                agent_id,
                task_id=task_id,
                lease_expires_at=now + seconds,
            )
        return self.get_task(task_id, workspace=workspace, sweep=False)

    def release(
        self,
        task_id: int,
        agent_id: str | None,
        *,
        workspace: str = "default",
        epoch: int | None = None,
    ) -> Task:
        """Give a held task back: it is open again for anyone to claim.

        ``agent_id=None`` is the operator taking a stuck lease from its holder,
        whoever that is (the history says "released by operator"; the holder's own
        release says "released by holder").

        Raises:
            Conflict: ``agent_id`` does not hold it (the operator: nobody holds it),
                or stale ``epoch``.
            NotFound: no such agent; no such task, or one ``agent_id`` may not
                see (the same answer).
        """
        with self.store.write() as conn:
            now = self.now()
            if agent_id is None:
                row = self._row(conn, workspace, task_id, lock=True)
                if TaskStatus(row.status) not in HELD:
                    raise Conflict(f"nobody holds task {task_id} ({row.status})", task=task_id)
                reopen(conn, workspace, task_id, row.assignee, now, "released by operator")
            else:
                self._held_by(conn, workspace, task_id, agent_id, epoch, now)
                reopen(conn, workspace, task_id, agent_id, now, "released by holder")
        return self.get_task(task_id, workspace=workspace, sweep=False)

    def update_task(
        self,
        task_id: int,
        agent_id: str | None,
        *,
        workspace: str = "default",
        epoch: int | None = None,
        status: TaskStatus | str | None = None,
        progress: int | None = None,
        note: str | None = None,
        result: str | None = None,
    ) -> Task:
        """Report on a task: a new status, progress (0–100) with a note, a result.

        The holder may move it along ``TRANSITIONS`` (progress alone moves a
        claimed task to in_progress; any report of the holder renews the lease by
        the length it was claimed with); its creator may
        close it (done, failed, canceled) at any time; ``agent_id=None`` is an
        operator acting for the workspace.

        Raises:
            InvalidInput: unknown status, progress outside 0–100, a status
                only claim/release may set, or a note or result with a NUL
                character or an unpaired surrogate.
            Conflict: an invalid transition, a finished task, a lapsed lease,
                or a stale ``epoch``.
            Forbidden: the agent neither holds nor created the task.
            NotFound: no such agent; no such task, or one ``agent_id`` may not
                see (the same answer).
        """
        if status is None and progress is None and note is None and result is None:
            raise InvalidInput("nothing to update: give a status, progress, note or result")
        new_status = check_choice(TaskStatus, "task status", status) if status is not None else None
        if new_status in (TaskStatus.OPEN, TaskStatus.CLAIMED):
            raise InvalidInput(f"status {new_status.value!r} is set by release/claim, not update")
        if progress is not None and not 0 <= progress <= 100:
            raise InvalidInput(f"progress is a percentage 0-100, not {progress}")
        if note is not None:
            check_text("the note", note)
        if result is not None:
            check_text("the result", result)
        with self.store.write() as conn:
            now = self.now()
            if agent_id is not None:
                touch_agent(conn, workspace, agent_id, epoch, now)
            row = self._row(conn, workspace, task_id, lock=True, viewer=agent_id)
            current = TaskStatus(row.status)
            holder = agent_id is not None and row.assignee == agent_id and current in HELD
            if holder:
                self._check_fence(row, agent_id, epoch, now)
            if current.terminal:
                raise Conflict(
                    f"task {task_id} is {current.value}; a finished task cannot change",
                    task=task_id,
                    status=current.value,
                )
            # Reporting progress on a fresh claim means work has started.
            target = new_status or (
                TaskStatus.IN_PROGRESS if current is TaskStatus.CLAIMED and holder else current
            )
            if agent_id is not None and not holder:
                if row.creator != agent_id or target not in CREATOR_MAY:
                    who = f"held by {row.assignee}" if row.assignee else "not claimed"
                    raise Forbidden(
                        f"{agent_id} cannot update task {task_id} ({who}); claim it first",
                        task=task_id,
                        holder=row.assignee,
                    )
            if target != current and target not in TRANSITIONS[current]:
                raise Conflict(
                    f"task {task_id} cannot go from {current.value} to {target.value}",
                    task=task_id,
                    status=current.value,
                    requested=target.value,
                )
            values: dict[str, Any] = {"status": target.value, "updated_at": now}
            if progress is not None:
                values["progress"] = progress
            if note is not None:
                values["progress_note"] = note
            if result is not None:
                values["result"] = result
            if target is TaskStatus.DONE:
                values["progress"] = 100
            if target.terminal:
                values["lease_expires_at"] = None
            elif holder:
                values["lease_expires_at"] = now + self._lease(row.lease_seconds)
            conn.execute(tasks.update().where(tasks.c.id == task_id).values(**values))
            kind = "progress" if target == current else target.value
            history(
                conn,
                workspace,
                task_id,
                kind,
                target,
                agent_id,
                now,
                progress=progress,
                note=note if note is not None else result,
            )
            append_event(
                conn,
                workspace,
                "task.updated",
                now,
                agent_id,
                task_id=task_id,
                status=target.value,
                previous=current.value,
                progress=progress,
                note=note,
                result=result,
            )
        return self.get_task(task_id, workspace=workspace, sweep=False)

    def get_task(
        self,
        task_id: int,
        *,
        workspace: str = "default",
        sweep: bool = True,
        viewer: str | None = None,
    ) -> Task:
        """One task (lapsed leases are released first).

        Args:
            viewer: read as this agent: only a task it may see (see
                :mod:`relaybus.service.visibility`); ``None`` reads as admin.

        Raises:
            NotFound: no such task, or one ``viewer`` may not see (the same answer).
        """
        if sweep:
            self.sweep(workspace=workspace)
        with self.store.read() as conn:
            return _task(self._row(conn, workspace, task_id, viewer=viewer)._mapping)

    def list_tasks(
        self,
        *,
        workspace: str = "default",
        status: TaskStatus | str | None = None,
        assignee: str | None = None,
        before: int | None = None,
        limit: int = 100,
        viewer: str | None = None,
    ) -> list[Task]:
        """Tasks, newest first, optionally of one status or assignee.

        Args:
            before: only tasks with a smaller id (the next page: the last id seen).
            viewer: list as this agent: only the tasks it may see (filtered in
                the query; see :mod:`relaybus.service.visibility`); ``None``
                lists as admin.

        Raises:
            InvalidInput: ``limit`` outside 1-1000 (the HTTP API's bound too), an
                unknown ``status``, ``before`` not a positive id.
        """
        check_limit(limit)
        if before is not None:
            check_id("before", before)
        if assignee is not None:
            check_name("assignee", assignee)
        self.sweep(workspace=workspace)
        query = restrict_tasks(sa.select(tasks).where(tasks.c.workspace == workspace), viewer)
        if status is not None:
            wanted = check_choice(TaskStatus, "task status", status)
            query = query.where(tasks.c.status == wanted.value)
        if assignee is not None:
            query = query.where(tasks.c.assignee == assignee)
        if before is not None:
            query = query.where(tasks.c.id < before)
        with self.store.read() as conn:
            rows = conn.execute(query.order_by(tasks.c.id.desc()).limit(limit)).all()
        return [_task(r._mapping) for r in rows]

    def task_history(
        self, task_id: int, *, workspace: str = "default", viewer: str | None = None
    ) -> list[TaskEvent]:
        """A task's history, oldest first.

        Args:
            viewer: as for :meth:`get_task`.

        Raises:
            NotFound: no such task, or one ``viewer`` may not see (the same answer).
        """
        with self.store.read() as conn:
            self._row(conn, workspace, task_id, viewer=viewer)
            rows = conn.execute(
                sa.select(task_events)
                .where(task_events.c.task_id == task_id)
                .order_by(task_events.c.id)
            ).all()
        return [TaskEvent.model_validate(dict(r._mapping)) for r in rows]

    def visible_task_ids(
        self, ids: Iterable[int], *, workspace: str = "default", viewer: str
    ) -> set[int]:
        """The ids among ``ids`` of tasks of ``workspace`` that ``viewer`` may see
        (see :mod:`relaybus.service.visibility`)."""
        with self.store.read() as conn:
            return visible_task_ids(conn, workspace, viewer, ids)

    def task_audience(self, task_id: int, *, workspace: str = "default") -> set[str]:
        """The agents that may see task ``task_id`` now (its creator, its holder, the
        recipients of its message); empty for a task that does not exist."""
        with self.store.read() as conn:
            return task_audience(conn, workspace, task_id)

    # -- helpers -------------------------------------------------------------

    def _lease(self, lease: float | None) -> float:
        seconds = self.settings.lease_seconds if lease is None else lease
        if not 0 < seconds <= MAX_LEASE_SECONDS:
            raise InvalidInput(f"a lease lasts between 0 and {MAX_LEASE_SECONDS} seconds")
        return seconds

    def _row(
        self,
        conn: Connection,
        workspace: str,
        task_id: int,
        lock: bool = False,
        viewer: str | None = None,
    ) -> sa.Row[Any]:
        check_id("task id", task_id)
        # The task as ``viewer`` may see it (None: admin); a hidden one is missing.
        query = sa.select(tasks).where(tasks.c.workspace == workspace, tasks.c.id == task_id)
        query = restrict_tasks(query, viewer)
        if lock and self.store.dialect == "postgresql":
            query = query.with_for_update(of=tasks)
        row = conn.execute(query).first()
        if row is None:
            raise no_task(task_id)
        return row

    @staticmethod
    def _offered(conn: Connection, task_id: int, agent_id: str) -> bool:
        query = sa.select(tasks.c.id).where(tasks.c.id == task_id, task_offered_to(agent_id))
        return conn.execute(query).first() is not None

    def _lapsed(self, conn: Connection, workspace: str, row: sa.Row[Any], now: float) -> str | None:
        """Why the holder lost ``row``'s claim, or None if it still holds it."""
        if row.lease_expires_at is not None and row.lease_expires_at < now:
            return "lease expired"
        holder = conn.execute(
            sa.select(agents).where(agents.c.workspace == workspace, agents.c.id == row.assignee)
        ).first()
        if holder is None:
            return "holder unregistered"
        if effective_status(holder._mapping, now, self.settings.stale_ttl) is AgentStatus.OFFLINE:
            return "holder offline"
        return None

    @staticmethod
    def _check_fence(row: sa.Row[Any], agent_id: str | None, epoch: int | None, now: float) -> None:
        if epoch is not None and row.assignee_epoch is not None and epoch != row.assignee_epoch:
            raise Conflict(
                f"task {row.id} was claimed by epoch {row.assignee_epoch} of {agent_id}, "
                f"not epoch {epoch}",
                task=row.id,
            )
        if row.lease_expires_at is not None and row.lease_expires_at < now:
            raise Conflict(
                f"the lease of {agent_id} on task {row.id} has expired; claim it again", task=row.id
            )

    def _held_by(
        self,
        conn: Connection,
        workspace: str,
        task_id: int,
        agent_id: str,
        epoch: int | None,
        now: float,
    ) -> sa.Row[Any]:
        touch_agent(conn, workspace, agent_id, epoch, now)
        row = self._row(conn, workspace, task_id, lock=True, viewer=agent_id)
        if row.assignee != agent_id or TaskStatus(row.status) not in HELD:
            who = f"held by {row.assignee}" if row.assignee else row.status
            raise Conflict(
                f"{agent_id} does not hold task {task_id} ({who})",
                task=task_id,
                holder=row.assignee,
            )
        self._check_fence(row, agent_id, epoch, now)
        return row


_task = task_from_row
