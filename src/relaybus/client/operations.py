"""Every relay operation's HTTP request, described once, with the standard library (those
issue 16 added, integrations and ``POST /v1/tasks``, in
:mod:`relaybus.client.integration_requests`).

One builder per operation of the HTTP API (``send``, ``inbox``, ``claim``...), with the
arguments of its :class:`~relaybus.service.Service` method, makes a
:class:`~relaybus.client.request.Request` (:mod:`.request`):
method, path, query, JSON body, who acts (agent, epoch, workspace), idempotency key and
long-poll wait. :mod:`relaybus.client.calls` wraps each one in a
:class:`~relaybus.client.transport.Call` (adding how to parse the answer into models and
the same operation on an embedded service); the CLI's hot commands send them as they are
through the warm relay and keep the answers as JSON (:mod:`.warm_json`). The request is
the same either way, because it is written only here.

A body holds the values as the caller gave them (a str for an enum, any mapping or
sequence), in the field order of its :mod:`relaybus.wire` model, ``None`` left out (an
absent field is the server's default): the server checks them, and its 400/422 is the
caller's :class:`~relaybus.errors.InvalidInput`. ``tests/client/test_operations.py``
keeps the bytes sent equal to what the wire models give.

Imports the standard library only (no pydantic, no dataclasses, no httpx): a CLI command
is a whole process, and this module is on its path.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from .request import JSON, Request, acting, agent_path, as_list, json_body, segment

# -- agents --------------------------------------------------------------------------


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
    approval: str | None = None,
) -> Request:
    """``POST /v1/agents``. ``host`` and ``cwd`` default to this client's (not the
    server's), so the derived id and the pid check describe this process."""
    if host is None:
        import socket  # here: a hot command never registers

        host = socket.gethostname()
    body = json_body(
        id=agent_id,
        label=label,
        tags=list(tags),
        capabilities=list(capabilities),
        channels=list(channels),
        pid=pid,
        host=host,
        cwd=cwd or os.getcwd(),
        meta=meta,
        instance_id=instance_id,
        tool=tool,
        approval=approval,
    )
    return Request("POST", "/v1/agents", workspace=workspace, agent=agent_id, body=body)


def heartbeat(
    agent_id: str, *, workspace: str, epoch: int | None = None, status: str | None = None
) -> Request:
    """``POST /v1/agents/{id}/heartbeat``."""
    body = None if status is None else {"status": status}
    return acting("POST", agent_id, "/heartbeat", workspace, epoch, body=body)


def update_agent(
    agent_id: str,
    *,
    workspace: str,
    epoch: int | None = None,
    label: str | None = None,
    tags: Sequence[str] | None = None,
    capabilities: Sequence[str] | None = None,
    channels: Sequence[str] | None = None,
    status: str | None = None,
    meta: Mapping[str, Any] | None = None,
    add_tags: Sequence[str] | None = None,
    remove_tags: Sequence[str] | None = None,
    add_capabilities: Sequence[str] | None = None,
    remove_capabilities: Sequence[str] | None = None,
    join_channels: Sequence[str] | None = None,
    leave_channels: Sequence[str] | None = None,
    approval: str | None = None,
) -> Request:
    """``PATCH /v1/agents/{id}`` (``None`` leaves a field as it is; ``add_*``,
    ``remove_*``, ``join_channels``, ``leave_channels`` change a list item by item)."""
    changes = json_body(
        label=label,
        tags=as_list(tags),
        capabilities=as_list(capabilities),
        channels=as_list(channels),
        status=status,
        meta=meta,
        add_tags=as_list(add_tags),
        remove_tags=as_list(remove_tags),
        add_capabilities=as_list(add_capabilities),
        remove_capabilities=as_list(remove_capabilities),
        join_channels=as_list(join_channels),
        leave_channels=as_list(leave_channels),
        approval=approval,
    )
    return acting("PATCH", agent_id, "", workspace, epoch, body=changes)


def unregister(agent_id: str, *, workspace: str, epoch: int | None = None) -> Request:
    """``DELETE /v1/agents/{id}``."""
    return acting("DELETE", agent_id, "", workspace, epoch)


def get_agent(agent_id: str, *, workspace: str) -> Request:
    """``GET /v1/agents/{id}``."""
    return Request("GET", agent_path(agent_id), workspace=workspace)


def list_agents(
    *,
    workspace: str,
    status: str | None = None,
    tag: str | None = None,
    capability: str | None = None,
    channel: str | None = None,
    online_only: bool = False,
) -> Request:
    """``GET /v1/agents``."""
    params = {
        "status": status,
        "tag": tag,
        "capability": capability,
        "channel": channel,
        "online_only": online_only or None,
    }
    return Request("GET", "/v1/agents", workspace=workspace, params=params)


def sweep(*, workspace: str) -> Request:
    """``POST /v1/sweep`` (admin)."""
    return Request("POST", "/v1/sweep", workspace=workspace)


# -- messages ------------------------------------------------------------------------


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
    priority: str = "normal",
    meta: Mapping[str, Any] | None = None,
    claimable: bool = False,
    idempotency_key: str | None = None,
) -> Request:
    """``POST /v1/messages``, with an ``Idempotency-Key``: ``idempotency_key``, or a
    fresh uuid4 for this one logical send, which retries reuse."""

    def fields() -> JSON:
        # Built only when sent: an embedded relay never needs it.
        return json_body(
            sender=sender,
            to=to,
            body=body,
            subject=subject,
            channel=channel,
            reply_to=reply_to,
            priority=priority,
            meta=meta,
            claimable=claimable or None,  # the default: clients leave it out
        )

    return Request(
        "POST",
        "/v1/messages",
        workspace=workspace,
        agent=sender,
        epoch=epoch,
        body=fields,
        idempotency_key=idempotency_key or str(uuid.uuid4()),
    )


def send_many(
    sender: str,
    items: Sequence[Mapping[str, Any]],
    *,
    workspace: str,
    epoch: int | None = None,
    idempotency_key: str | None = None,
) -> Request:
    """``POST /v1/messages/batch`` (one transaction), with one ``Idempotency-Key`` for
    the batch, made as for :func:`send`. The items go as given: unknown keys reach the
    server, which refuses them."""
    return Request(
        "POST",
        "/v1/messages/batch",
        workspace=workspace,
        agent=sender,
        epoch=epoch,
        body=lambda: {"sender": sender, "messages": [dict(item) for item in items]},
        idempotency_key=idempotency_key or str(uuid.uuid4()),
    )


def get_message(message_id: int, *, workspace: str) -> Request:
    """``GET /v1/messages/{id}``."""
    return Request("GET", f"/v1/messages/{segment(message_id)}", workspace=workspace)


def thread(message_id: int, *, workspace: str) -> Request:
    """``GET /v1/messages/{id}/thread``."""
    return Request("GET", f"/v1/messages/{segment(message_id)}/thread", workspace=workspace)


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
    via: str | None = None,
) -> Request:
    """``GET /v1/agents/{id}/inbox``."""
    params = {
        "unread_only": unread_only,
        "newest_first": newest_first,
        "since": since,
        "limit": limit,
        "mark_read": mark_read,
        "via": via,
    }
    return acting("GET", agent_id, "/inbox", workspace, epoch, params=params)


def wait(
    agent_id: str,
    timeout: float,
    *,
    workspace: str,
    since: int | None = None,
    limit: int = 50,
    mark_read: bool = False,
    epoch: int | None = None,
    via: str | None = None,
) -> Request:
    """One long-poll, ``GET /v1/agents/{id}/inbox?wait=timeout``: :func:`inbox`'s
    unread mail above ``since``, oldest first. Callers split long waits
    (:data:`LONGPOLL_CHUNK`)."""
    unread = inbox(
        agent_id,
        workspace=workspace,
        newest_first=False,
        since=since,
        limit=limit,
        mark_read=mark_read,
        epoch=epoch,
        via=via,
    )
    return unread.waiting(timeout)


def mark_read(
    agent_id: str,
    *,
    workspace: str,
    ids: Sequence[int] | None = None,
    up_to: int | None = None,
    epoch: int | None = None,
    via: str = "inbox",
) -> Request:
    """``POST /v1/agents/{id}/inbox/read``."""
    body = json_body(ids=as_list(ids), up_to=up_to, via=via)
    return acting("POST", agent_id, "/inbox/read", workspace, epoch, body=body)


def mark_delivered(
    agent_id: str, ids: Sequence[int], *, via: str, workspace: str, epoch: int | None = None
) -> Request:
    """``POST /v1/agents/{id}/inbox/delivered``."""
    body = {"ids": list(ids), "via": via}
    return acting("POST", agent_id, "/inbox/delivered", workspace, epoch, body=body)


def unread_count(agent_id: str, *, workspace: str) -> Request:
    """``GET /v1/agents/{id}/inbox/count``."""
    return acting("GET", agent_id, "/inbox/count", workspace, None)


def deliveries(message_id: int, *, workspace: str) -> Request:
    """``GET /v1/messages/{id}/deliveries``."""
    return Request("GET", f"/v1/messages/{segment(message_id)}/deliveries", workspace=workspace)


def wait_deliveries(message_id: int, state: str, timeout: float, *, workspace: str) -> Request:
    """One long-poll, ``GET /v1/messages/{id}/deliveries?until=STATE&wait=timeout``."""
    return deliveries(message_id, workspace=workspace).waiting(timeout, until=state)


def history(
    agent_id: str | None = None,
    *,
    workspace: str,
    channel: str | None = None,
    broadcast: bool = False,
    before: int | None = None,
    limit: int = 50,
) -> Request:
    """``GET /v1/history``: broadcasts, newest first (``agent_id``: as that agent)."""
    params = {"agent": agent_id, "channel": channel, "before": before, "limit": limit}
    if broadcast:
        params["broadcast"] = "true"
    return Request("GET", "/v1/history", workspace=workspace, agent=agent_id, params=params)


# -- tasks ---------------------------------------------------------------------------


def claim(
    task_id: int,
    agent_id: str,
    *,
    workspace: str,
    epoch: int | None = None,
    lease: float | None = None,
) -> Request:
    """``POST /v1/tasks/{id}/claim`` (``lease``: seconds, ``None`` for the server's
    default)."""
    return _task(
        task_id, "/claim", agent_id, workspace, epoch, json_body(agent_id=agent_id, lease=lease)
    )


def renew(
    task_id: int,
    agent_id: str,
    *,
    workspace: str,
    epoch: int | None = None,
    lease: float | None = None,
) -> Request:
    """``POST /v1/tasks/{id}/renew``: :func:`claim`'s lease extended."""
    return _task(
        task_id, "/renew", agent_id, workspace, epoch, json_body(agent_id=agent_id, lease=lease)
    )


def renew_held(agent_id: str, *, workspace: str, epoch: int | None = None) -> Request:
    """``POST /v1/agents/{id}/leases/renew``: every lease the agent holds, each by its
    own length."""
    return acting("POST", agent_id, "/leases/renew", workspace, epoch)


def release(
    task_id: int, agent_id: str | None, *, workspace: str, epoch: int | None = None
) -> Request:
    """``POST /v1/tasks/{id}/release`` (``agent_id=None``: the operator, admin only;
    sent as null)."""
    return _task(task_id, "/release", agent_id, workspace, epoch, {"agent_id": agent_id})


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
) -> Request:
    """``PATCH /v1/tasks/{id}`` (``agent_id=None``: the operator, admin only; sent as
    null, not left out)."""
    report = json_body(status=status, progress=progress, note=note, result=result)
    return Request(
        "PATCH",
        f"/v1/tasks/{segment(task_id)}",
        workspace=workspace,
        agent=agent_id,
        epoch=epoch,
        body={"agent_id": agent_id, **report},
    )


def _task(
    task_id: int, action: str, agent_id: str | None, workspace: str, epoch: int | None, body: JSON
) -> Request:
    """``POST /v1/tasks/{id}{action}`` acting as ``agent_id``."""
    return Request(
        "POST",
        f"/v1/tasks/{segment(task_id)}{action}",
        workspace=workspace,
        agent=agent_id,
        epoch=epoch,
        body=body,
    )


def get_task(task_id: int, *, workspace: str, viewer: str | None = None) -> Request:
    """``GET /v1/tasks/{id}``; ``viewer``: read as that agent (``?agent=``)."""
    path = f"/v1/tasks/{segment(task_id)}"
    return Request("GET", path, workspace=workspace, agent=viewer, params={"agent": viewer})


def list_tasks(
    *,
    workspace: str,
    status: str | None = None,
    assignee: str | None = None,
    before: int | None = None,
    limit: int = 100,
    viewer: str | None = None,
) -> Request:
    """``GET /v1/tasks``; ``before``: only older ids (a page); ``viewer``: only the tasks
    that agent may see."""
    params = {"status": status, "assignee": assignee, "before": before, "limit": limit}
    params["agent"] = viewer
    return Request("GET", "/v1/tasks", workspace=workspace, agent=viewer, params=params)


def task_history(task_id: int, *, workspace: str, viewer: str | None = None) -> Request:
    """``GET /v1/tasks/{id}/history``; ``viewer`` as for :func:`get_task`."""
    path = f"/v1/tasks/{segment(task_id)}/history"
    return Request("GET", path, workspace=workspace, agent=viewer, params={"agent": viewer})


# -- the event log and retention ------------------------------------------------------


def events(
    *, workspace: str, since: int = 0, limit: int = 100, kinds: Sequence[str] | None = None
) -> Request:
    """``GET /v1/events``."""
    params = {"since": since, "limit": limit, "kind": list(kinds) if kinds else None}
    return Request("GET", "/v1/events", workspace=workspace, params=params)


def wait_events(
    timeout: float,
    *,
    workspace: str,
    since: int = 0,
    limit: int = 100,
    kinds: Sequence[str] | None = None,
) -> Request:
    """One long-poll, ``GET /v1/events?wait=timeout``."""
    return events(workspace=workspace, since=since, limit=limit, kinds=kinds).waiting(timeout)


def last_event_id(*, workspace: str) -> Request:
    """``GET /v1/events/last``."""
    return Request("GET", "/v1/events/last", workspace=workspace)


def prune(
    *, workspace: str, message_days: float | None = None, agent_days: float | None = None
) -> Request:
    """``POST /v1/prune`` (admin)."""
    body = json_body(message_days=message_days, agent_days=agent_days)
    return Request("POST", "/v1/prune", workspace=workspace, body=body)
