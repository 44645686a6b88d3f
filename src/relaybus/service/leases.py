"""Lease primitives shared by tasks and sweeps; each runs in the caller's transaction."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..models import TaskStatus
from ..store.schema import task_events, tasks
from ..store.statements import register, run
from .common import append_event

#: Statuses in which a task has an assignee holding a lease.
HELD = (TaskStatus.CLAIMED, TaskStatus.IN_PROGRESS, TaskStatus.BLOCKED)


def release_held(conn: Connection, workspace: str, agent_id: str, now: float, reason: str) -> int:
    """Reopen every task ``agent_id`` holds; returns how many."""
    ids = (
        conn.execute(
            sa.select(tasks.c.id).where(
                tasks.c.workspace == workspace,
                tasks.c.assignee == agent_id,
                tasks.c.status.in_([s.value for s in HELD]),
            )
        )
        .scalars()
        .all()
    )
    for task_id in ids:
        reopen(conn, workspace, task_id, agent_id, now, reason)
    return len(ids)


def held_by(conn: Connection, workspace: str, agent_ids: Sequence[str]) -> dict[str, list[int]]:
    """The ids of the tasks each of ``agent_ids`` holds, in id order: ``{agent: [task]}``
    (an agent holding none is absent). Read in chunks of 500 ids (bound parameters)."""
    found: dict[str, list[int]] = {}
    for start in range(0, len(agent_ids), 500):
        rows = conn.execute(
            _HELD_BY, {"ws": workspace, "aids": list(agent_ids[start : start + 500])}
        )
        for task_id, assignee in rows:
            found.setdefault(assignee, []).append(task_id)
    return found


_HELD_BY = (
    sa.select(tasks.c.id, tasks.c.assignee)
    .where(
        tasks.c.workspace == sa.bindparam("ws"),
        tasks.c.assignee.in_(sa.bindparam("aids", expanding=True)),
        tasks.c.status.in_([s.value for s in HELD]),
    )
    .order_by(tasks.c.id)
)


def release_expired(conn: Connection, workspace: str, now: float) -> int:
    """Reopen every held task whose lease has lapsed; returns how many.

    On PostgreSQL the rows are taken ``FOR UPDATE SKIP LOCKED``: a task another
    transaction is claiming, renewing or releasing right now is left to it.
    """
    query = sa.select(tasks.c.id, tasks.c.assignee).where(
        tasks.c.workspace == workspace,
        tasks.c.status.in_([s.value for s in HELD]),
        tasks.c.lease_expires_at < now,
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    rows = conn.execute(query).all()
    for row in rows:
        reopen(conn, workspace, row.id, row.assignee, now, "lease expired")
    return len(rows)


def reopen(
    conn: Connection, workspace: str, task_id: int, holder: str | None, now: float, reason: str
) -> None:
    conn.execute(
        tasks.update()
        .where(tasks.c.id == task_id)
        .values(
            status=TaskStatus.OPEN.value,
            assignee=None,
            assignee_epoch=None,
            lease_expires_at=None,
            lease_seconds=None,
            updated_at=now,
        )
    )
    history(conn, workspace, task_id, "released", TaskStatus.OPEN, holder, now, note=reason)
    append_event(conn, workspace, "task.released", now, holder, task_id=task_id, reason=reason)


def history(
    conn: Connection,
    workspace: str,
    task_id: int,
    kind: str,
    status: TaskStatus,
    agent_id: str | None,
    now: float,
    *,
    progress: int | None = None,
    note: str | None = None,
) -> None:
    run(
        conn,
        _INSERT_HISTORY,
        {
            "workspace": workspace,
            "task_id": task_id,
            "kind": kind,
            "status": status.value,
            "agent_id": agent_id,
            "progress": progress,
            "note": note,
            "created_at": now,
        },
    )


#: One step of a task's history.
_INSERT_HISTORY = register("task_events.insert", task_events.insert())
