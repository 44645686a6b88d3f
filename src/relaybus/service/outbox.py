"""The callback outbox's producer: a task change an integration hears about becomes a
``callbacks`` row in the change's own transaction.

The transactional outbox (Richardson, *Microservices Patterns*, ch. 3): the change and
the promise to report it commit together or not at all, so a crash can delay a callback
but never lose one. :func:`queue_callback` runs inside
:func:`~relaybus.service.common.append_event` for the task events that integrations hear
(:data:`CALLBACK_EVENTS`); :mod:`relaybus.service.callbacks` hands the rows to senders.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..models import Task
from ..store.schema import callbacks, integrations, tasks

#: The task events posted to an integration's callback URL. ``task.updated`` only when
#: its status changed (progress alone is not posted); ``task.renewed`` never.
CALLBACK_EVENTS = frozenset(
    {"task.created", "task.claimed", "task.updated", "task.released", "task.repeated"}
)


@functools.cache
def _task_and_hook() -> sa.Select[Any]:
    # A task with the name of its integration when that has a callback URL; built when
    # first needed (a command that imports the service need not build it).
    return (
        sa.select(tasks, integrations.c.name.label("hook"))
        .join(
            integrations,
            sa.and_(
                integrations.c.workspace == tasks.c.workspace,
                integrations.c.name == tasks.c.integration,
            ),
        )
        .where(
            tasks.c.id == sa.bindparam("tid"),
            integrations.c.callback_url.is_not(None),
            integrations.c.status == "active",
        )
    )


@functools.cache
def _insert_callback() -> sa.Insert:
    return callbacks.insert().returning(callbacks.c.id)


def task_from_row(row: Mapping[Any, Any]) -> Task:
    """A :class:`~relaybus.models.Task` from a ``tasks`` row (tasks from before
    migration 0007 have no priority: ``normal``)."""
    values = dict(row)
    if values.get("priority") is None:
        values.pop("priority", None)
    return Task.model_validate(values)


def queue_callback(
    conn: Connection,
    workspace: str,
    event_id: int,
    kind: str,
    data: Mapping[str, Any],
    now: float,
) -> int | None:
    """Write the callback of task event ``kind`` (id ``event_id``) if its task was raised
    by an active integration with a callback URL; returns the callback's id, or None.

    The payload is the body the receiver gets, with the task as it is now (after the
    change: every caller appends its event after writing the task), so each callback
    tells the state it reports even when later changes come before it is sent.
    """
    if kind == "task.updated" and data.get("status") == data.get("previous"):
        return None  # progress or a note: not a status change
    task_id = data.get("task_id")
    if task_id is None:
        return None
    row = conn.execute(_task_and_hook(), {"tid": task_id}).first()
    if row is None:
        return None
    task = task_from_row(row._mapping)
    payload = {
        "event": kind,
        "event_id": event_id,
        "created_at": datetime.fromtimestamp(now, UTC).isoformat().replace("+00:00", "Z"),
        "workspace": workspace,
        "integration": row.hook,
        "task": task.model_dump(mode="json"),
    }
    callback_id = conn.execute(
        _insert_callback(),
        {
            "workspace": workspace,
            "integration": row.hook,
            "task_id": task_id,
            "event_id": event_id,
            "event": kind,
            "payload": payload,
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        },
    ).scalar_one()
    return int(callback_id)
