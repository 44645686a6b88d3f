"""The CLI's hot operations on the warm local relay, with answers left as JSON.

A command such as ``relaybus agents``, ``send`` or ``inbox`` is a whole process: going
through :class:`~relaybus.client.Relay` would import pydantic, :mod:`relaybus.models`
and :mod:`relaybus.wire` (most of what such a command costs) only to turn the relay's
JSON into models that the CLI prints back as the same JSON. :class:`JsonRelay` and
:class:`JsonAgent` offer the methods of :class:`~relaybus.client.Relay` and
:class:`~relaybus.client.AgentHandle` that those commands use, with the same
arguments, but each returns the relay's answer as it came (``json.loads``): the
wire shape, ``model_dump(mode="json")`` of the model the SDK would return.

Each method sends the :class:`~relaybus.client.operations.Request` of its operation,
the one the SDK's :class:`~relaybus.client.transport.Call` carries (both are built by
:mod:`relaybus.client.operations`), through
:meth:`WarmBackend.request <relaybus.client.warm_backend.WarmBackend.request>`, with the
same headers, retries and error mapping. The keyword arguments of a method are those of
its builder there (a wrong one raises TypeError). Over HTTP only.

Imports the standard library only (no pydantic, no SQLAlchemy, no dataclasses).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import operations
from .request import JSON, Request

if TYPE_CHECKING:
    from .warm_backend import WarmBackend

#: :class:`~relaybus.models.DeliveryState` values in order (queued → delivered → read).
DELIVERY_STATES = ("queued", "delivered", "read")


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
        self, make: Callable[[float], Request], timeout: float, done: Callable[[Any], bool]
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

    def _run(self, request: Request) -> Any:
        """``request``'s answer, as JSON."""
        return json.loads(self.backend.request(request))

    def agent(self, agent_id: str, *, epoch: int | None = None) -> JsonAgent:
        """Acting as an existing agent. Raises NotFound: no such agent."""
        self._run(operations.get_agent(agent_id, workspace=self.workspace))
        return JsonAgent(self, agent_id, epoch)

    def agents(self, **filters: Any) -> list[JSON]:
        """Registered agents with their effective status, by id (``filters``: those of
        :func:`~relaybus.client.operations.list_agents`)."""
        found: list[JSON] = self._run(operations.list_agents(workspace=self.workspace, **filters))
        return found

    def tasks(self, **filters: Any) -> list[JSON]:
        """Every task of the workspace, newest first (``filters``: ``status``,
        ``assignee``, ``limit``)."""
        found: list[JSON] = self._run(operations.list_tasks(workspace=self.workspace, **filters))
        return found

    def deliveries(
        self, message_id: int, *, until: str | None = None, timeout: float = 30.0
    ) -> list[JSON]:
        """Each recipient's receipt; with ``until``, once every recipient reached that
        state or after ``timeout`` seconds (as ``Relay.deliveries``)."""
        workspace = self.workspace
        if until is None:
            found: list[JSON] = self._run(operations.deliveries(message_id, workspace=workspace))
            return found

        def reached(found: list[JSON]) -> bool:
            goal = DELIVERY_STATES.index(until)  # the relay refused an unknown one first
            return all(DELIVERY_STATES.index(d["state"]) >= goal for d in found)

        waited: list[JSON] = self._long_poll(
            lambda step: operations.wait_deliveries(message_id, until, step, workspace=workspace),
            timeout,
            reached,
        )
        return waited

    def close(self) -> None:
        self.backend.close()


class JsonAgent:
    """The operations of :class:`~relaybus.client.AgentHandle` the CLI's hot commands
    use, acting as agent ``id`` (fenced by ``epoch`` when given), answering JSON; the
    keywords of each are those of its :mod:`~relaybus.client.operations` builder."""

    def __init__(self, relay: JsonRelay, agent_id: str, epoch: int | None) -> None:
        self.relay = relay
        self.id = agent_id
        self.epoch = epoch

    def _acting(self, build: Callable[..., Request], *args: Any, **options: Any) -> Any:
        """The answer to ``build(*args, **options)`` acting as this agent."""
        request = build(*args, workspace=self.relay.workspace, epoch=self.epoch, **options)
        return self.relay._run(request)

    def send(self, to: str, body: str, **options: Any) -> JSON:
        """Send a message; the message as stored, with its recipients."""
        sent: JSON = self._acting(operations.send, self.id, to, body, **options)
        return sent

    def reply(self, message: int, body: str, **options: Any) -> JSON:
        """Answer message ``message`` in its thread (to its sender, or to its target for
        one's own message)."""
        sent: JSON = self._acting(operations.send, self.id, None, body, reply_to=message, **options)
        return sent

    def inbox(self, **options: Any) -> list[JSON]:
        """Messages delivered to this agent (marked read only if asked)."""
        found: list[JSON] = self._acting(operations.inbox, self.id, **options)
        return found

    def wait(self, timeout: float = 30.0, *, since: int | None = None) -> list[JSON]:
        """Wait up to ``timeout`` seconds for unread mail above ``since`` (0: any);
        oldest first, empty on timeout."""
        found: list[JSON] = self.relay._long_poll(
            lambda step: operations.wait(
                self.id, step, workspace=self.relay.workspace, since=since or 0, epoch=self.epoch
            ),
            timeout,
            bool,
        )
        return found

    def tasks(self, **filters: Any) -> list[JSON]:
        """The tasks this agent may see, newest first."""
        found: list[JSON] = self.relay.tasks(viewer=self.id, **filters)
        return found

    def claim(self, task_id: int, *, lease: float | None = None) -> JSON:
        """Claim a task offered to this agent; the task."""
        held: JSON = self._acting(operations.claim, task_id, self.id, lease=lease)
        return held

    def release(self, task_id: int) -> JSON:
        """Give a held task back; the task."""
        released: JSON = self._acting(operations.release, task_id, self.id)
        return released

    def heartbeat(self, status: str | None = None) -> JSON:
        """Record that the agent is alive, optionally with a new status; the agent."""
        agent: JSON = self._acting(operations.heartbeat, self.id, status=status)
        return agent
