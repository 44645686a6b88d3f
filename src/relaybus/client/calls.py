"""Every relay operation as a :class:`~relaybus.client.transport.Call`: the HTTP
request of the API contract and the same operation on an embedded service.

One builder per :class:`~relaybus.client.transport.ServiceAPI` method, with that
method's arguments (``workspace`` is required here: the callers always know it).
The sync :class:`~relaybus.client.remote.RemoteService` and the async
:class:`~relaybus.client.aio.AsyncRelay` both send these.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, TypeAdapter

from ..models import Agent, AgentStatus, Event, Message, Priority, PruneReport, Task, TaskEvent
from .transport import Call, ServiceAPI

_AGENTS = TypeAdapter(list[Agent])
_MESSAGES = TypeAdapter(list[Message])
_TASKS = TypeAdapter(list[Task])
_TASK_EVENTS = TypeAdapter(list[TaskEvent])
_EVENTS = TypeAdapter(list[Event])
_COUNTS = TypeAdapter(dict[str, int])


class Registration(BaseModel):
    """The answer to a registration: the agent, and the bearer token the server
    issued for it (``None`` on an embedded relay)."""

    model_config = ConfigDict(frozen=True)

    agent: Agent
    token: str | None = None


def _nothing(_: bytes) -> None:
    return None


def _field(name: str) -> Callable[[bytes], int]:
    def parse(content: bytes) -> int:
        return int(json.loads(content)[name])

    return parse


def _segment(value: str | int) -> str:
    # An agent id may hold "/" and "@": one path segment, percent-encoded.
    return quote(str(value), safe="")


def _agent_path(agent_id: str, rest: str = "") -> str:
    return f"/v1/agents/{_segment(agent_id)}{rest}"


def _compact(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


# -- agents ------------------------------------------------------------------------------


def register(
    agent_id: str | None = None,
    *,
    workspace: str,
    label: str | None = None,
    tags: Sequence[str] = (),
    capabilities: Sequence[str] = (),
    channels: Sequence[str] = (),
    pid: int | None = None,
    host: str | None = None,
    cwd: str | None = None,
    meta: Mapping[str, Any] | None = None,
    instance_id: str | None = None,
    tool: str = "agent",
) -> Call[Registration]:
    """``POST /v1/agents``. ``host`` and ``cwd`` default to this client's (not the
    server's), so the derived id and the pid check describe this process."""
    host = host or socket.gethostname()
    cwd = cwd or os.getcwd()
    body = _compact(
        {
            "id": agent_id,
            "label": label,
            "tags": list(tags),
            "capabilities": list(capabilities),
            "channels": list(channels),
            "pid": pid,
            "host": host,
            "cwd": cwd,
            "meta": meta,
            "instance_id": instance_id,
            "tool": tool,
        }
    )

    def local(s: ServiceAPI) -> Registration:
        agent = s.register(
            agent_id,
            workspace=workspace,
            label=label,
            tags=tags,
            capabilities=capabilities,
            channels=channels,
            pid=pid,
            host=host,
            cwd=cwd,
            meta=meta,
            instance_id=instance_id,
            tool=tool,
        )
        return Registration(agent=agent)

    return Call(
        method="POST",
        path="/v1/agents",
        parse=Registration.model_validate_json,
        local=local,
        workspace=workspace,
        agent=agent_id,
        body=body,
    )


def heartbeat(
    agent_id: str,
    *,
    workspace: str,
    epoch: int | None = None,
    status: AgentStatus | str | None = None,
) -> Call[Agent]:
    """``POST /v1/agents/{id}/heartbeat``."""
    return Call(
        method="POST",
        path=_agent_path(agent_id, "/heartbeat"),
        parse=Agent.model_validate_json,
        local=lambda s: s.heartbeat(agent_id, workspace=workspace, epoch=epoch, status=status),
        workspace=workspace,
        agent=agent_id,
        epoch=epoch,
        body=None if status is None else {"status": status},
    )


def update_agent(
    agent_id: str,
    *,
    workspace: str,
    epoch: int | None = None,
    label: str | None = None,
    tags: Sequence[str] | None = None,
    capabilities: Sequence[str] | None = None,
    channels: Sequence[str] | None = None,
    status: AgentStatus | str | None = None,
    meta: Mapping[str, Any] | None = None,
) -> Call[Agent]:
    """``PATCH /v1/agents/{id}`` (``None`` leaves a field as it is)."""
    changes = {
        "label": label,
        "tags": tags,
        "capabilities": capabilities,
        "channels": channels,
        "status": status,
        "meta": meta,
    }
    return Call(
        method="PATCH",
        path=_agent_path(agent_id),
        parse=Agent.model_validate_json,
        local=lambda s: s.update_agent(
            agent_id,
            workspace=workspace,
            epoch=epoch,
            label=label,
            tags=tags,
            capabilities=capabilities,
            channels=channels,
            status=status,
            meta=meta,
        ),
        workspace=workspace,
        agent=agent_id,
        epoch=epoch,
        body=_compact(changes),
    )


def unregister(agent_id: str, *, workspace: str, epoch: int | None = None) -> Call[None]:
    """``DELETE /v1/agents/{id}``; the session forgets the agent's token."""
    return Call(
        method="DELETE",
        path=_agent_path(agent_id),
        parse=_nothing,
        local=lambda s: s.unregister(agent_id, workspace=workspace, epoch=epoch),
        workspace=workspace,
        agent=agent_id,
        epoch=epoch,
        forget_token=True,
    )


def get_agent(agent_id: str, *, workspace: str) -> Call[Agent]:
    """``GET /v1/agents/{id}``."""
    return Call(
        method="GET",
        path=_agent_path(agent_id),
        parse=Agent.model_validate_json,
        local=lambda s: s.get_agent(agent_id, workspace=workspace),
        workspace=workspace,
    )


def list_agents(
    *,
    workspace: str,
    status: AgentStatus | str | None = None,
    tag: str | None = None,
    capability: str | None = None,
    channel: str | None = None,
    online_only: bool = False,
) -> Call[list[Agent]]:
    """``GET /v1/agents``."""
    return Call(
        method="GET",
        path="/v1/agents",
        parse=_AGENTS.validate_json,
        local=lambda s: s.list_agents(
            workspace=workspace,
            status=status,
            tag=tag,
            capability=capability,
            channel=channel,
            online_only=online_only,
        ),
        workspace=workspace,
        params={
            "status": status,
            "tag": tag,
            "capability": capability,
            "channel": channel,
            "online_only": online_only or None,
        },
    )


def sweep(*, workspace: str) -> Call[dict[str, int]]:
    """``POST /v1/sweep`` (admin)."""
    return Call(
        method="POST",
        path="/v1/sweep",
        parse=_COUNTS.validate_json,
        local=lambda s: s.sweep(workspace=workspace),
        workspace=workspace,
    )


# -- messages and inboxes ------------------------------------------------------------------


def send(
    sender: str,
    to: str | None,
    body: str,
    *,
    workspace: str,
    epoch: int | None = None,
    subject: str | None = None,
    channel: str | None = None,
    reply_to: int | None = None,
    priority: Priority | str = Priority.NORMAL,
    meta: Mapping[str, Any] | None = None,
    claimable: bool = False,
) -> Call[Message]:
    """``POST /v1/messages``."""
    fields = {
        "sender": sender,
        "to": to,
        "body": body,
        "subject": subject,
        "channel": channel,
        "reply_to": reply_to,
        "priority": priority,
        "meta": meta,
        "claimable": claimable or None,
    }
    return Call(
        method="POST",
        path="/v1/messages",
        parse=Message.model_validate_json,
        local=lambda s: s.send(
            sender,
            to,
            body,
            workspace=workspace,
            epoch=epoch,
            subject=subject,
            channel=channel,
            reply_to=reply_to,
            priority=priority,
            meta=meta,
            claimable=claimable,
        ),
        workspace=workspace,
        agent=sender,
        epoch=epoch,
        body=_compact(fields),
    )


def send_many(
    sender: str,
    items: Sequence[Mapping[str, Any]],
    *,
    workspace: str,
    epoch: int | None = None,
) -> Call[list[Message]]:
    """``POST /v1/messages/batch`` (one transaction, all or nothing)."""
    return Call(
        method="POST",
        path="/v1/messages/batch",
        parse=_MESSAGES.validate_json,
        local=lambda s: s.send_many(sender, items, workspace=workspace, epoch=epoch),
        workspace=workspace,
        agent=sender,
        epoch=epoch,
        body={"sender": sender, "messages": [dict(item) for item in items]},
    )


def get_message(message_id: int, *, workspace: str) -> Call[Message]:
    """``GET /v1/messages/{id}``."""
    return Call(
        method="GET",
        path=f"/v1/messages/{_segment(message_id)}",
        parse=Message.model_validate_json,
        local=lambda s: s.get_message(message_id, workspace=workspace),
        workspace=workspace,
    )


def thread(message_id: int, *, workspace: str) -> Call[list[Message]]:
    """``GET /v1/messages/{id}/thread``."""
    return Call(
        method="GET",
        path=f"/v1/messages/{_segment(message_id)}/thread",
        parse=_MESSAGES.validate_json,
        local=lambda s: s.thread(message_id, workspace=workspace),
        workspace=workspace,
    )


def inbox(
    agent_id: str,
    *,
    workspace: str,
    unread_only: bool = True,
    newest_first: bool = True,
    since: int | None = None,
    limit: int = 50,
    mark_read: bool = False,
    epoch: int | None = None,
) -> Call[list[Message]]:
    """``GET /v1/agents/{id}/inbox``."""
    return Call(
        method="GET",
        path=_agent_path(agent_id, "/inbox"),
        parse=_MESSAGES.validate_json,
        local=lambda s: s.inbox(
            agent_id,
            workspace=workspace,
            unread_only=unread_only,
            newest_first=newest_first,
            since=since,
            limit=limit,
            mark_read=mark_read,
            epoch=epoch,
        ),
        workspace=workspace,
        agent=agent_id,
        epoch=epoch,
        params={
            "unread_only": unread_only,
            "newest_first": newest_first,
            "since": since,
            "limit": limit,
            "mark_read": mark_read,
        },
    )


def wait(
    agent_id: str,
    timeout: float,
    *,
    workspace: str,
    since: int | None = None,
    limit: int = 50,
    mark_read: bool = False,
    epoch: int | None = None,
) -> Call[list[Message]]:
    """One long-poll, ``GET /v1/agents/{id}/inbox?wait=timeout``: unread mail above
    ``since``, oldest first, as soon as there is some, or ``[]`` after ``timeout``
    seconds. Callers split long waits (see ``LONGPOLL_CHUNK``)."""
    timeout = max(timeout, 0.0)
    return Call(
        method="GET",
        path=_agent_path(agent_id, "/inbox"),
        parse=_MESSAGES.validate_json,
        local=lambda s: s.wait(
            agent_id,
            timeout,
            workspace=workspace,
            since=since,
            limit=limit,
            mark_read=mark_read,
            epoch=epoch,
        ),
        workspace=workspace,
        agent=agent_id,
        epoch=epoch,
        params={
            "unread_only": True,
            "newest_first": False,
            "since": since,
            "limit": limit,
            "mark_read": mark_read,
            "wait": round(timeout, 3),
        },
        wait=timeout,
    )


def mark_read(
    agent_id: str,
    *,
    workspace: str,
    ids: Sequence[int] | None = None,
    up_to: int | None = None,
    epoch: int | None = None,
) -> Call[int]:
    """``POST /v1/agents/{id}/inbox/read`` → how many changed."""
    return Call(
        method="POST",
        path=_agent_path(agent_id, "/inbox/read"),
        parse=_field("marked"),
        local=lambda s: s.mark_read(
            agent_id, workspace=workspace, ids=ids, up_to=up_to, epoch=epoch
        ),
        workspace=workspace,
        agent=agent_id,
        epoch=epoch,
        body=_compact({"ids": None if ids is None else list(ids), "up_to": up_to}),
    )


def unread_count(agent_id: str, *, workspace: str) -> Call[int]:
    """``GET /v1/agents/{id}/inbox/count``."""
    return Call(
        method="GET",
        path=_agent_path(agent_id, "/inbox/count"),
        parse=_field("unread"),
        local=lambda s: s.unread_count(agent_id, workspace=workspace),
        workspace=workspace,
        agent=agent_id,
    )


# -- tasks ---------------------------------------------------------------------------------


def claim(
    task_id: int,
    agent_id: str,
    *,
    workspace: str,
    epoch: int | None = None,
    lease: float | None = None,
) -> Call[Task]:
    """``POST /v1/tasks/{id}/claim``."""
    return Call(
        method="POST",
        path=f"/v1/tasks/{_segment(task_id)}/claim",
        parse=Task.model_validate_json,
        local=lambda s: s.claim(task_id, agent_id, workspace=workspace, epoch=epoch, lease=lease),
        workspace=workspace,
        agent=agent_id,
        epoch=epoch,
        body=_compact({"agent_id": agent_id, "lease": lease}),
    )


def renew(
    task_id: int,
    agent_id: str,
    *,
    workspace: str,
    epoch: int | None = None,
    lease: float | None = None,
) -> Call[Task]:
    """``POST /v1/tasks/{id}/renew``."""
    return Call(
        method="POST",
        path=f"/v1/tasks/{_segment(task_id)}/renew",
        parse=Task.model_validate_json,
        local=lambda s: s.renew(task_id, agent_id, workspace=workspace, epoch=epoch, lease=lease),
        workspace=workspace,
        agent=agent_id,
        epoch=epoch,
        body=_compact({"agent_id": agent_id, "lease": lease}),
    )


def release(task_id: int, agent_id: str, *, workspace: str, epoch: int | None = None) -> Call[Task]:
    """``POST /v1/tasks/{id}/release``."""
    return Call(
        method="POST",
        path=f"/v1/tasks/{_segment(task_id)}/release",
        parse=Task.model_validate_json,
        local=lambda s: s.release(task_id, agent_id, workspace=workspace, epoch=epoch),
        workspace=workspace,
        agent=agent_id,
        epoch=epoch,
        body={"agent_id": agent_id},
    )


def update_task(
    task_id: int,
    agent_id: str | None,
    *,
    workspace: str,
    epoch: int | None = None,
    status: str | None = None,
    progress: int | None = None,
    note: str | None = None,
    result: str | None = None,
) -> Call[Task]:
    """``PATCH /v1/tasks/{id}`` (``agent_id=None``: the operator, admin only)."""
    fields = {"status": status, "progress": progress, "note": note, "result": result}
    return Call(
        method="PATCH",
        path=f"/v1/tasks/{_segment(task_id)}",
        parse=Task.model_validate_json,
        local=lambda s: s.update_task(
            task_id,
            agent_id,
            workspace=workspace,
            epoch=epoch,
            status=status,
            progress=progress,
            note=note,
            result=result,
        ),
        workspace=workspace,
        agent=agent_id,
        epoch=epoch,
        body={"agent_id": agent_id, **_compact(fields)},
    )


def get_task(task_id: int, *, workspace: str, sweep: bool = True) -> Call[Task]:
    """``GET /v1/tasks/{id}`` (the server sweeps lapsed leases first)."""
    return Call(
        method="GET",
        path=f"/v1/tasks/{_segment(task_id)}",
        parse=Task.model_validate_json,
        local=lambda s: s.get_task(task_id, workspace=workspace, sweep=sweep),
        workspace=workspace,
    )


def list_tasks(
    *,
    workspace: str,
    status: str | None = None,
    assignee: str | None = None,
    limit: int = 100,
) -> Call[list[Task]]:
    """``GET /v1/tasks``."""
    return Call(
        method="GET",
        path="/v1/tasks",
        parse=_TASKS.validate_json,
        local=lambda s: s.list_tasks(
            workspace=workspace, status=status, assignee=assignee, limit=limit
        ),
        workspace=workspace,
        params={"status": status, "assignee": assignee, "limit": limit},
    )


def task_history(task_id: int, *, workspace: str) -> Call[list[TaskEvent]]:
    """``GET /v1/tasks/{id}/history``."""
    return Call(
        method="GET",
        path=f"/v1/tasks/{_segment(task_id)}/history",
        parse=_TASK_EVENTS.validate_json,
        local=lambda s: s.task_history(task_id, workspace=workspace),
        workspace=workspace,
    )


# -- events and retention ----------------------------------------------------------------------


def events(
    *,
    workspace: str,
    since: int = 0,
    limit: int = 100,
    kinds: Sequence[str] | None = None,
) -> Call[list[Event]]:
    """``GET /v1/events``."""
    return Call(
        method="GET",
        path="/v1/events",
        parse=_EVENTS.validate_json,
        local=lambda s: s.events(workspace=workspace, since=since, limit=limit, kinds=kinds),
        workspace=workspace,
        params={"since": since, "limit": limit, "kind": list(kinds) if kinds else None},
    )


def wait_events(
    timeout: float,
    *,
    workspace: str,
    since: int = 0,
    limit: int = 100,
    kinds: Sequence[str] | None = None,
) -> Call[list[Event]]:
    """One long-poll, ``GET /v1/events?wait=timeout``."""
    timeout = max(timeout, 0.0)
    return Call(
        method="GET",
        path="/v1/events",
        parse=_EVENTS.validate_json,
        local=lambda s: s.wait_events(
            timeout, workspace=workspace, since=since, limit=limit, kinds=kinds
        ),
        workspace=workspace,
        params={
            "since": since,
            "limit": limit,
            "kind": list(kinds) if kinds else None,
            "wait": round(timeout, 3),
        },
        wait=timeout,
    )


def last_event_id(*, workspace: str) -> Call[int]:
    """``GET /v1/events/last``."""
    return Call(
        method="GET",
        path="/v1/events/last",
        parse=_field("id"),
        local=lambda s: s.last_event_id(workspace=workspace),
        workspace=workspace,
    )


def prune(
    *,
    workspace: str,
    message_days: float | None = None,
    agent_days: float | None = None,
) -> Call[PruneReport]:
    """``POST /v1/prune`` (admin)."""
    return Call(
        method="POST",
        path="/v1/prune",
        parse=PruneReport.model_validate_json,
        local=lambda s: s.prune(
            workspace=workspace, message_days=message_days, agent_days=agent_days
        ),
        workspace=workspace,
        body=_compact({"message_days": message_days, "agent_days": agent_days}),
    )
