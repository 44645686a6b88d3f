"""Every relay operation's HTTP request, described once, with the standard library (those
issue 16 added, integrations and ``POST /v1/tasks``, in
:mod:`relaybus.client.integration_requests`).

One builder per operation of the HTTP API (``send``, ``inbox``, ``claim``...), with the
arguments of its :class:`~relaybus.service.Service` method, makes a :class:`Request`:
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

import json
import os
import sys
import uuid
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from ..errors import InvalidInput

#: Longest single long-poll (seconds): a longer wait is split into requests of at
#: most this, below the server's ``longpoll_max_seconds`` and common proxy idle limits.
LONGPOLL_CHUNK = 50.0
#: Seconds a long-poll response may take beyond its ``wait`` before it counts as lost.
LONGPOLL_MARGIN = 15.0
#: The request header of an idempotency key (draft-ietf-httpapi-idempotency-key-header).
IDEMPOTENCY_HEADER = "Idempotency-Key"
#: Seconds to connect, and to wait for any other response.
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 30.0
#: Pauses (seconds) before the second and the third attempt of a request that may be
#: sent again after a broken connection (see :meth:`Request.attempts`), before jitter.
RETRY_PAUSES = (0.1, 0.4)

#: One JSON object of a body or an answer.
JSON = dict[str, Any]


class Request:
    """One HTTP request of the relay's API.

    Attributes:
        method, path: the HTTP request line (``path`` already percent-encoded).
        workspace: sent as ``X-Relaybus-Workspace``.
        agent: the agent the request acts as (picks that agent's token, if any).
        epoch: sent as ``X-Relaybus-Epoch`` (fencing).
        params: the query (``None`` values are left out).
        body: the JSON body, a function of no arguments that builds it (only when
            sent), or ``None`` for none; :meth:`json_body` gives it.
        idempotency_key: sent as ``Idempotency-Key``: the server performs the request
            at most once per key, so it may be sent again after a lost answer.
        wait: seconds the server may hold the request (long-poll).
    """

    __slots__ = (
        "method",
        "path",
        "workspace",
        "agent",
        "epoch",
        "params",
        "body",
        "idempotency_key",
        "wait",
    )

    # A plain class, not a NamedTuple (whose class costs a hot command 0.3 ms to make).
    def __init__(
        self,
        method: str,
        path: str,
        workspace: str,
        agent: str | None = None,
        epoch: int | None = None,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        idempotency_key: str | None = None,
        wait: float = 0.0,
    ) -> None:
        self.method, self.path, self.workspace = method, path, workspace
        self.agent, self.epoch, self.params = agent, epoch, params
        self.body, self.idempotency_key, self.wait = body, idempotency_key, wait

    def json_body(self) -> Any:
        """The JSON body (built now if :attr:`body` is a function), or ``None``."""
        return self.body() if callable(self.body) else self.body

    def waiting(self, timeout: float, **params: Any) -> Request:
        """This request (a read) as one long-poll: the server holds it up to ``timeout``
        seconds (``?wait=``, after this query and ``params``) and answers as soon as
        there is something. A negative ``timeout`` is 0 (no wait)."""
        timeout = max(timeout, 0.0)
        query = {**(self.params or {}), **params, "wait": round(timeout, 3)}
        return Request(
            self.method,
            self.path,
            self.workspace,
            self.agent,
            self.epoch,
            query,
            self.body,
            self.idempotency_key,
            timeout,
        )

    def attempts(self) -> int:
        """How many times the request is sent when the connection breaks before its
        answer: up to three times for a GET and for a request with an idempotency key
        (the server performs it at most once), else once (a plain POST must not happen
        twice). A timeout is never retried."""
        may_repeat = self.method == "GET" or self.idempotency_key is not None
        return len(RETRY_PAUSES) + 1 if may_repeat else 1

    def encode(self, token: str | None = None) -> tuple[dict[str, str], bytes | None]:
        """``(headers, content)`` of the request: workspace, epoch, ``Authorization``
        (with ``token``), idempotency key and content type, in that order, and the
        body as :func:`encode_json` bytes (``None`` for none).

        Raises:
            InvalidInput: the body is not JSON (see :func:`encode_json`).
        """
        headers = {"X-Relaybus-Workspace": self.workspace}
        if self.epoch is not None:
            headers["X-Relaybus-Epoch"] = str(self.epoch)
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        if self.idempotency_key is not None:
            headers[IDEMPOTENCY_HEADER] = sf_string(self.idempotency_key)
        body = self.json_body()
        if body is None:
            return headers, None
        headers["Content-Type"] = "application/json"
        return headers, encode_json(body)

    def fields(self) -> dict[str, Any]:
        """The request's fields by name (the body as given)."""
        return {name: getattr(self, name) for name in self.__slots__}

    def __repr__(self) -> str:
        return f"Request({self.method} {self.path})"

    def query(self) -> dict[str, Any] | None:
        """The query as sent: ``None`` values left out, booleans as ``true``/``false``;
        ``None`` when the request has none."""
        if self.params is None:
            return None
        return {k: query_value(v) for k, v in self.params.items() if v is not None}


def sf_string(value: str) -> str:
    """``value`` as a Structured Field string (RFC 8941), the form the IETF draft
    gives ``Idempotency-Key``: in double quotes, ``\\`` and ``"`` escaped."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def query_value(value: object) -> Any:
    """A query value as sent (``true``/``false`` for booleans, lists item by item)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return [query_value(v) for v in value]
    return value


def encode_json(body: Any) -> bytes:
    """A request body as compact UTF-8 JSON (mappings and sequences of any kind).

    Raises:
        InvalidInput: a value JSON cannot hold (NaN, a set, an object) or nested
            too deep to encode; for a bad ``meta``, the embedded mode's message.
    """
    try:
        return json.dumps(
            body, ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=_jsonable
        ).encode("utf-8")
    except (TypeError, ValueError, RecursionError) as exc:
        _check_metas(body)
        raise InvalidInput(f"the request is not JSON: {exc}") from None


def _check_metas(body: Any) -> None:
    """Raise the service's own error for a bad ``meta`` of ``body`` (or of one of a
    batch's ``messages``), for the embedded mode's exact message. Only on an error
    path, so that a client does not import the service layer otherwise."""
    if not isinstance(body, Mapping):
        return
    from ..service.common import check_meta

    if body.get("meta") is not None:
        check_meta(body["meta"], limit=sys.maxsize)
    items = body.get("messages")
    if isinstance(items, list):
        for index, item in enumerate(items):
            if isinstance(item, Mapping) and item.get("meta") is not None:
                try:
                    check_meta(item["meta"], limit=sys.maxsize)
                except InvalidInput as exc:
                    raise InvalidInput(f"message {index}: {exc.message}", index=index) from None


def _jsonable(value: object) -> object:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return list(value)
    raise TypeError(f"a {type(value).__name__} is not a JSON value")


def segment(value: str | int) -> str:
    """``value`` as one path segment, percent-encoded (an agent id may hold ``/``, ``@``)."""
    return quote(str(value), safe="")


def _agent(agent_id: str, rest: str = "") -> str:
    return f"/v1/agents/{segment(agent_id)}{rest}"


def _acting(
    method: str,
    agent_id: str,
    rest: str,
    workspace: str,
    epoch: int | None,
    *,
    params: Mapping[str, Any] | None = None,
    body: Any = None,
) -> Request:
    """``METHOD /v1/agents/{agent_id}{rest}``, acting as that agent."""
    return Request(method, _agent(agent_id, rest), workspace, agent_id, epoch, params, body)


def _fields(**fields: Any) -> JSON:
    """A body: the fields given, in order, ``None`` left out."""
    return {name: value for name, value in fields.items() if value is not None}


def _list(values: Sequence[Any] | None) -> list[Any] | None:
    return None if values is None else list(values)


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
    body = _fields(
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
    return _acting("POST", agent_id, "/heartbeat", workspace, epoch, body=body)


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
    changes = _fields(
        label=label,
        tags=_list(tags),
        capabilities=_list(capabilities),
        channels=_list(channels),
        status=status,
        meta=meta,
        add_tags=_list(add_tags),
        remove_tags=_list(remove_tags),
        add_capabilities=_list(add_capabilities),
        remove_capabilities=_list(remove_capabilities),
        join_channels=_list(join_channels),
        leave_channels=_list(leave_channels),
        approval=approval,
    )
    return _acting("PATCH", agent_id, "", workspace, epoch, body=changes)


def unregister(agent_id: str, *, workspace: str, epoch: int | None = None) -> Request:
    """``DELETE /v1/agents/{id}``."""
    return _acting("DELETE", agent_id, "", workspace, epoch)


def get_agent(agent_id: str, *, workspace: str) -> Request:
    """``GET /v1/agents/{id}``."""
    return Request("GET", _agent(agent_id), workspace=workspace)


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
        return _fields(
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
    return _acting("GET", agent_id, "/inbox", workspace, epoch, params=params)


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
    body = _fields(ids=_list(ids), up_to=up_to, via=via)
    return _acting("POST", agent_id, "/inbox/read", workspace, epoch, body=body)


def mark_delivered(
    agent_id: str, ids: Sequence[int], *, via: str, workspace: str, epoch: int | None = None
) -> Request:
    """``POST /v1/agents/{id}/inbox/delivered``."""
    body = {"ids": list(ids), "via": via}
    return _acting("POST", agent_id, "/inbox/delivered", workspace, epoch, body=body)


def unread_count(agent_id: str, *, workspace: str) -> Request:
    """``GET /v1/agents/{id}/inbox/count``."""
    return _acting("GET", agent_id, "/inbox/count", workspace, None)


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
        task_id, "/claim", agent_id, workspace, epoch, _fields(agent_id=agent_id, lease=lease)
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
        task_id, "/renew", agent_id, workspace, epoch, _fields(agent_id=agent_id, lease=lease)
    )


def renew_held(agent_id: str, *, workspace: str, epoch: int | None = None) -> Request:
    """``POST /v1/agents/{id}/leases/renew``: every lease the agent holds, each by its
    own length."""
    return _acting("POST", agent_id, "/leases/renew", workspace, epoch)


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
    report = _fields(status=status, progress=progress, note=note, result=result)
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
    body = _fields(message_days=message_days, agent_days=agent_days)
    return Request("POST", "/v1/prune", workspace=workspace, body=body)
