"""Helpers every service module shares: the event log append, agent fencing, row mapping."""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..errors import Conflict, InvalidInput, NotFound
from ..models import Message
from ..store import Store
from ..store.schema import agents, events

#: Agent ids, tags, capabilities and channels: a letter or digit, then up to
#: 127 of letters, digits and ``. _ - @ /``.
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@/-]{0,127}")


class ServiceBase:
    """State every operation needs: the store and its settings."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.settings = store.settings

    def now(self) -> float:
        return self.store.clock()


def check_name(kind: str, value: str) -> str:
    """Validate an agent id, tag, capability or channel name.

    Raises:
        InvalidInput: ``value`` is empty, too long or has other characters.
    """
    if not isinstance(value, str) or not NAME_RE.fullmatch(value):
        raise InvalidInput(
            f"invalid {kind} {value!r}: use 1-128 letters, digits and . _ - @ /, "
            "starting with a letter or digit",
            field=kind,
            value=value,
        )
    return value


def check_names(kind: str, values: list[str] | tuple[str, ...] | None) -> list[str]:
    """Validate a list of names and drop duplicates, keeping order."""
    return list(dict.fromkeys(check_name(kind, v) for v in values or ()))


def append_event(
    conn: Connection,
    workspace: str,
    kind: str,
    now: float,
    agent_id: str | None = None,
    **data: Any,
) -> int:
    """Append one entry to the event log in the caller's transaction; returns its id."""
    result = conn.execute(
        events.insert().values(
            workspace=workspace, kind=kind, agent_id=agent_id, data=data, created_at=now
        )
    )
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


_TOUCH = (
    agents.update()
    .where(agents.c.workspace == sa.bindparam("ws"), agents.c.id == sa.bindparam("aid"))
    .values(last_seen_at=sa.bindparam("now"))
    .returning(agents.c.epoch, agents.c.status)
)


def touch_agent(
    conn: Connection, workspace: str, agent_id: str, epoch: int | None, now: float
) -> int:
    """Fence and mark an acting agent as seen; returns its current epoch.

    Runs inside the caller's write transaction, so a refused call changes nothing.

    Raises:
        NotFound: no agent ``agent_id`` in ``workspace``.
        Conflict: ``epoch`` is given and older (or newer) than the agent's epoch:
            another instance registered under this id since.
    """
    row = conn.execute(_TOUCH, {"ws": workspace, "aid": agent_id, "now": now}).first()
    if row is None:
        raise NotFound(
            f"no agent {agent_id!r} in workspace {workspace!r}: register it first", agent=agent_id
        )
    current, status = int(row.epoch), row.status
    if epoch is not None and epoch != current:
        raise Conflict(
            f"stale epoch {epoch} for agent {agent_id!r} (current {current}): another instance "
            "registered under this id; register again to act as it",
            agent=agent_id,
            epoch=epoch,
            current_epoch=current,
        )
    if status == "offline":
        # Acting is proof of life: bring a swept or self-declared offline agent back.
        conn.execute(
            agents.update()
            .where(agents.c.workspace == workspace, agents.c.id == agent_id)
            .values(status="online")
        )
        append_event(conn, workspace, "agent.online", now, agent_id)
    return current


def message_from_row(
    row: Mapping[Any, Any], *, recipients: list[str] | None = None, read_at: float | None = None
) -> Message:
    """A ``messages`` row (plus optional delivery state) as a :class:`Message`."""
    return Message.model_validate(
        {
            "id": row["id"],
            "workspace": row["workspace"],
            "sender": row["sender"],
            "to": row["target"],
            "channel": row["channel"],
            "subject": row["subject"],
            "body": row["body"],
            "reply_to": row["reply_to"],
            "thread_id": row["thread_id"] if row["thread_id"] is not None else row["id"],
            "priority": row["priority"],
            "meta": row["meta"],
            "task_id": row["task_id"],
            "created_at": row["created_at"],
            "recipients": recipients or [],
            "read_at": read_at,
        }
    )


def did_you_mean(word: str, choices: list[str], prefix: str = "") -> str:
    """`` (did you mean 'x', 'y'?)`` for close matches of ``word``, or ``""``."""
    close = difflib.get_close_matches(word, sorted(set(choices)), n=3, cutoff=0.5)
    return f" (did you mean {', '.join(repr(prefix + c) for c in close)}?)" if close else ""
