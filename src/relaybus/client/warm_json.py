"""The CLI's hot operations on the warm local relay, with answers left as JSON.

A command such as ``relaybus agents``, ``send`` or ``inbox`` is a whole process: going
through :class:`~relaybus.client.Relay` would import pydantic, :mod:`relaybus.models`
and :mod:`relaybus.wire` (most of what such a command costs) only to turn the relay's
JSON into models that the CLI prints back as the same JSON. :class:`JsonRelay` and
:class:`JsonAgent` offer the methods of :class:`~relaybus.client.Relay` and
:class:`~relaybus.client.AgentHandle` that those commands use, with the same
arguments, but each returns the relay's answer as it came (``json.loads``): the
wire shape, ``model_dump(mode="json")`` of the model the SDK would return.

Each builder below makes a :class:`JsonCall`: the request its namesake in
:mod:`relaybus.client.calls` makes (method, path, query, body, idempotency key: a test
keeps them equal), minus the models, and minus the :class:`~relaybus.client.transport.Call`
dataclass (importing that module costs a hot command milliseconds).
:meth:`WarmBackend.request <relaybus.client.warm_backend.WarmBackend.request>` sends it,
with the same headers, retries and error mapping as a ``Call``. Over HTTP only.

Imports the standard library only (no pydantic, no SQLAlchemy, no dataclasses).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

if TYPE_CHECKING:
    from .warm_backend import WarmBackend

#: One object of the API's answers (an agent, a message, a task, a receipt), as JSON.
JSON = dict[str, Any]

#: :class:`~relaybus.models.DeliveryState` values in order (queued → delivered → read).
DELIVERY_STATES = ("queued", "delivered", "read")


class JsonCall:
    """One request to the relay whose answer stays JSON: the fields of a
    :class:`~relaybus.client.transport.Call` that make its request (``params`` values
    ``None`` are left out when sent; ``wait``: seconds of a long-poll)."""

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

    def __init__(
        self,
        method: str,
        path: str,
        *,
        workspace: str,
        agent: str | None = None,
        epoch: int | None = None,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        idempotency_key: str | None = None,
        wait: float = 0.0,
    ) -> None:
        self.method = method
        self.path = path
        self.workspace = workspace
        self.agent = agent
        self.epoch = epoch
        self.params = params
        self.body = body
        self.idempotency_key = idempotency_key
        self.wait = wait

    def json_body(self) -> Any:
        """The JSON body, or ``None``."""
        return self.body

    def __repr__(self) -> str:
        return f"JsonCall({self.method} {self.path})"


def _segment(value: str | int) -> str:
    # As relaybus.client.calls.base: an agent id may hold "/" and "@".
    return quote(str(value), safe="")


def _waiting(call: JsonCall, timeout: float, **params: Any) -> JsonCall:
    """``call`` as one long-poll of ``timeout`` seconds (as ``calls.base._waiting``)."""
    timeout = max(timeout, 0.0)
    query = {**(call.params or {}), **params, "wait": round(timeout, 3)}
    return JsonCall(
        call.method,
        call.path,
        workspace=call.workspace,
        agent=call.agent,
        epoch=call.epoch,
        params=query,
        body=call.body,
        idempotency_key=call.idempotency_key,
        wait=timeout,
    )


def _body(**fields: Any) -> JSON:
    """A request body: the fields given, ``None`` left out (as ``wire.request_body``)."""
    return {name: value for name, value in fields.items() if value is not None}


# -- the calls (each as its namesake in relaybus.client.calls) ----------------------------


def get_agent(agent_id: str, *, workspace: str) -> JsonCall:
    """``GET /v1/agents/{id}``."""
    return JsonCall("GET", f"/v1/agents/{_segment(agent_id)}", workspace=workspace)


def list_agents(
    *,
    workspace: str,
    status: str | None = None,
    tag: str | None = None,
    capability: str | None = None,
    channel: str | None = None,
    online_only: bool = False,
) -> JsonCall:
    """``GET /v1/agents``."""
    params = {
        "status": status,
        "tag": tag,
        "capability": capability,
        "channel": channel,
        "online_only": online_only or None,
    }
    return JsonCall("GET", "/v1/agents", workspace=workspace, params=params)


def heartbeat(
    agent_id: str, *, workspace: str, epoch: int | None = None, status: str | None = None
) -> JsonCall:
    """``POST /v1/agents/{id}/heartbeat``."""
    return JsonCall(
        "POST",
        f"/v1/agents/{_segment(agent_id)}/heartbeat",
        workspace=workspace,
        agent=agent_id,
        epoch=epoch,
        body=None if status is None else {"status": status},
    )


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
) -> JsonCall:
    """``POST /v1/messages``, with ``idempotency_key`` or a fresh uuid4."""
    fields = _body(
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
    return JsonCall(
        "POST",
        "/v1/messages",
        workspace=workspace,
        agent=sender,
        epoch=epoch,
        body=fields,
        idempotency_key=idempotency_key or str(uuid.uuid4()),
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
) -> JsonCall:
    """``GET /v1/agents/{id}/inbox``."""
    params = {
        "unread_only": unread_only,
        "newest_first": newest_first,
        "since": since,
        "limit": limit,
        "mark_read": mark_read,
        "via": None,
    }
    return JsonCall(
        "GET",
        f"/v1/agents/{_segment(agent_id)}/inbox",
        workspace=workspace,
        agent=agent_id,
        epoch=epoch,
        params=params,
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
) -> JsonCall:
    """One long-poll, ``GET /v1/agents/{id}/inbox?wait=timeout``, oldest first."""
    unread = inbox(
        agent_id,
        workspace=workspace,
        newest_first=False,
        since=since,
        limit=limit,
        mark_read=mark_read,
        epoch=epoch,
    )
    return _waiting(unread, timeout)


def deliveries(message_id: int, *, workspace: str) -> JsonCall:
    """``GET /v1/messages/{id}/deliveries``."""
    return JsonCall("GET", f"/v1/messages/{_segment(message_id)}/deliveries", workspace=workspace)


def wait_deliveries(message_id: int, state: str, timeout: float, *, workspace: str) -> JsonCall:
    """One long-poll, ``GET /v1/messages/{id}/deliveries?until=STATE&wait=timeout``."""
    return _waiting(deliveries(message_id, workspace=workspace), timeout, until=state)


def claim(
    task_id: int,
    agent_id: str,
    *,
    workspace: str,
    epoch: int | None = None,
    lease: float | None = None,
) -> JsonCall:
    """``POST /v1/tasks/{id}/claim``."""
    return JsonCall(
        "POST",
        f"/v1/tasks/{_segment(task_id)}/claim",
        workspace=workspace,
        agent=agent_id,
        epoch=epoch,
        body=_body(agent_id=agent_id, lease=lease),
    )


def release(task_id: int, agent_id: str, *, workspace: str, epoch: int | None = None) -> JsonCall:
    """``POST /v1/tasks/{id}/release``."""
    return JsonCall(
        "POST",
        f"/v1/tasks/{_segment(task_id)}/release",
        workspace=workspace,
        agent=agent_id,
        epoch=epoch,
        body={"agent_id": agent_id},
    )


def list_tasks(
    *,
    workspace: str,
    status: str | None = None,
    assignee: str | None = None,
    limit: int = 100,
    viewer: str | None = None,
) -> JsonCall:
    """``GET /v1/tasks``; ``viewer``: only the tasks that agent may see."""
    params = {"status": status, "assignee": assignee, "limit": limit, "agent": viewer}
    return JsonCall("GET", "/v1/tasks", workspace=workspace, agent=viewer, params=params)


# -- the relay and an agent, as the SDK's, answering JSON -----------------------------------


class JsonRelay:
    """The operations of :class:`~relaybus.client.Relay` the CLI's hot commands use,
    over ``backend`` (the warm relay), answering JSON objects (lists of them for
    listings). Raises what the SDK raises (the :class:`~relaybus.errors.RelayError` of
    the relay's answer, or :class:`~relaybus.errors.StoreError` when it is unreachable).
    """

    def __init__(self, backend: WarmBackend, *, workspace: str | None = None) -> None:
        self.backend = backend
        self.workspace = workspace or backend.settings.workspace

    def _long_poll(
        self, make: Callable[[float], JsonCall], timeout: float, done: Callable[[Any], bool]
    ) -> Any:
        """As ``Relay._long_poll``: waits of at most ``backend.wait_step`` seconds until
        one is ``done`` or ``timeout`` seconds have passed; the last answer."""
        deadline = time.monotonic() + max(timeout, 0.0)
        step = self.backend.wait_step
        while True:
            remaining = deadline - time.monotonic()
            found = self._run(make(min(max(remaining, 0.0), step)))
            if remaining <= step or done(found):
                return found

    def _run(self, call: JsonCall) -> Any:
        """``call``'s answer, as JSON."""
        return json.loads(self.backend.request(call))

    def agent(self, agent_id: str, *, epoch: int | None = None) -> JsonAgent:
        """Acting as an existing agent. Raises NotFound: no such agent."""
        self._run(get_agent(agent_id, workspace=self.workspace))
        return JsonAgent(self, agent_id, epoch)

    def agents(
        self,
        *,
        status: str | None = None,
        tag: str | None = None,
        capability: str | None = None,
        channel: str | None = None,
        online_only: bool = False,
    ) -> list[JSON]:
        """Registered agents with their effective status, by id."""
        found: list[JSON] = self._run(
            list_agents(
                workspace=self.workspace,
                status=status,
                tag=tag,
                capability=capability,
                channel=channel,
                online_only=online_only,
            )
        )
        return found

    def tasks(
        self, *, status: str | None = None, assignee: str | None = None, limit: int = 100
    ) -> list[JSON]:
        """Every task of the workspace, newest first."""
        found: list[JSON] = self._run(
            list_tasks(workspace=self.workspace, status=status, assignee=assignee, limit=limit)
        )
        return found

    def deliveries(
        self, message_id: int, *, until: str | None = None, timeout: float = 30.0
    ) -> list[JSON]:
        """Each recipient's receipt; with ``until``, once every recipient reached that
        state or after ``timeout`` seconds (as ``Relay.deliveries``)."""
        workspace = self.workspace
        if until is None:
            found: list[JSON] = self._run(deliveries(message_id, workspace=workspace))
            return found

        def reached(found: list[JSON]) -> bool:
            goal = DELIVERY_STATES.index(until)  # the relay refused an unknown one first
            return all(DELIVERY_STATES.index(d["state"]) >= goal for d in found)

        waited: list[JSON] = self._long_poll(
            lambda step: wait_deliveries(message_id, until, step, workspace=workspace),
            timeout,
            reached,
        )
        return waited

    def close(self) -> None:
        self.backend.close()


class JsonAgent:
    """The operations of :class:`~relaybus.client.AgentHandle` the CLI's hot commands
    use, acting as agent ``id`` (fenced by ``epoch`` when given), answering JSON."""

    def __init__(self, relay: JsonRelay, agent_id: str, epoch: int | None) -> None:
        self.relay = relay
        self.id = agent_id
        self.epoch = epoch

    def _run(self, call: JsonCall) -> Any:
        return self.relay._run(call)

    def send(
        self,
        to: str,
        body: str,
        *,
        subject: str | None = None,
        channel: str | None = None,
        priority: str = "normal",
        meta: Mapping[str, Any] | None = None,
        claimable: bool = False,
        reply_to: int | None = None,
        idempotency_key: str | None = None,
    ) -> JSON:
        """Send a message; the message as stored, with its recipients."""
        sent: JSON = self._run(
            send(
                self.id,
                to,
                body,
                workspace=self.relay.workspace,
                epoch=self.epoch,
                subject=subject,
                channel=channel,
                reply_to=reply_to,
                priority=priority,
                meta=meta,
                claimable=claimable,
                idempotency_key=idempotency_key,
            )
        )
        return sent

    def reply(
        self, message: int, body: str, *, subject: str | None = None, priority: str = "normal"
    ) -> JSON:
        """Answer message ``message`` in its thread (to its sender, or to its target for
        one's own message)."""
        sent: JSON = self._run(
            send(
                self.id,
                None,
                body,
                workspace=self.relay.workspace,
                epoch=self.epoch,
                reply_to=message,
                subject=subject,
                priority=priority,
            )
        )
        return sent

    def inbox(
        self,
        *,
        unread_only: bool = True,
        newest_first: bool = True,
        since: int | None = None,
        limit: int = 50,
        mark_read: bool = False,
    ) -> list[JSON]:
        """Messages delivered to this agent (marked read only if asked)."""
        found: list[JSON] = self._run(
            inbox(
                self.id,
                workspace=self.relay.workspace,
                epoch=self.epoch,
                unread_only=unread_only,
                newest_first=newest_first,
                since=since,
                limit=limit,
                mark_read=mark_read,
            )
        )
        return found

    def wait(self, timeout: float = 30.0, *, since: int | None = None) -> list[JSON]:
        """Wait up to ``timeout`` seconds for unread mail above ``since`` (0: any);
        oldest first, empty on timeout."""
        found: list[JSON] = self.relay._long_poll(
            lambda step: wait(
                self.id, step, workspace=self.relay.workspace, since=since or 0, epoch=self.epoch
            ),
            timeout,
            bool,
        )
        return found

    def tasks(
        self, *, status: str | None = None, assignee: str | None = None, limit: int = 100
    ) -> list[JSON]:
        """The tasks this agent may see, newest first."""
        found: list[JSON] = self._run(
            list_tasks(
                workspace=self.relay.workspace,
                status=status,
                assignee=assignee,
                limit=limit,
                viewer=self.id,
            )
        )
        return found

    def claim(self, task_id: int, *, lease: float | None = None) -> JSON:
        """Claim a task offered to this agent; the task."""
        held: JSON = self._run(
            claim(task_id, self.id, workspace=self.relay.workspace, epoch=self.epoch, lease=lease)
        )
        return held

    def release(self, task_id: int) -> JSON:
        """Give a held task back; the task."""
        released: JSON = self._run(
            release(task_id, self.id, workspace=self.relay.workspace, epoch=self.epoch)
        )
        return released

    def heartbeat(self, status: str | None = None) -> JSON:
        """Record that the agent is alive, optionally with a new status; the agent."""
        agent: JSON = self._run(
            heartbeat(self.id, workspace=self.relay.workspace, epoch=self.epoch, status=status)
        )
        return agent
