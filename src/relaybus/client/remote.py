"""The relay over the network: :class:`RemoteService`, the service API spoken over HTTP.

>>> service = RemoteService(Settings(url="http://127.0.0.1:4850"))
>>> service.register("alice").epoch
1
>>> for event in service.iter_events(agent="alice"):   # SSE, reconnecting
...     print(event.kind)

:class:`RemoteService` has the methods, arguments, results and errors of the
embedded :class:`relaybus.service.Service` (both satisfy
:class:`~relaybus.client.transport.ServiceAPI`), so :class:`~relaybus.client.Relay`
and the CLI run unchanged against a server.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import httpx

from ..errors import InvalidInput
from ..models import (
    Agent,
    AgentStatus,
    Delivery,
    DeliveryState,
    Event,
    Message,
    Priority,
    PruneReport,
    Task,
    TaskEvent,
    Via,
)
from ..settings import Settings
from . import calls
from .streams import BACKOFF_CAP, follow
from .transport import LONGPOLL_CHUNK, NEEDS_DATABASE, Call, HTTPSession, new_client, retries

if TYPE_CHECKING:
    from ..store import Store

T = TypeVar("T")


class RemoteService:
    """The relay service of a server at ``settings.url``, over one keep-alive
    ``httpx.Client``. Thread-safe.

    Errors are those of the embedded mode: a problem+json answer becomes the
    :class:`~relaybus.errors.RelayError` subclass of its status with its
    ``detail`` as the message (see :func:`~relaybus.client.transport.problem_error`);
    no answer at all is a :class:`~relaybus.errors.StoreError` "cannot reach relay
    server at URL: ...".

    Auth: ``settings.token`` (``RELAYBUS_TOKEN``) is sent as the bearer when set.
    Without it, a call acting as an agent this service registered sends that
    agent's own token (see :attr:`tokens`); anything else goes without a token
    (a loopback server in open mode).
    """

    def __init__(self, settings: Settings, *, client: httpx.Client | None = None) -> None:
        """Raises InvalidInput: ``settings.url`` is missing or not an http(s) URL."""
        self.session = HTTPSession(settings)
        self._client: httpx.Client = client or new_client(self.session.url)

    @property
    def settings(self) -> Settings:
        return self.session.settings

    @property
    def url(self) -> str:
        """The server's base URL."""
        return self.session.url

    @property
    def store(self) -> Store:
        """There is no database here. Raises InvalidInput."""
        raise InvalidInput(NEEDS_DATABASE)

    @property
    def tokens(self) -> dict[str, str]:
        """Agent id → the bearer token the server issued when this service registered
        it (print it for a client that is to act as that agent)."""
        return self.session.tokens

    def token_for(self, agent_id: str, *, workspace: str = "default") -> str | None:
        """The token issued to ``agent_id`` through this service, if any."""
        return self.session.token_for(agent_id, workspace=workspace)

    def close(self) -> None:
        """Close the connections."""
        self._client.close()

    def __enter__(self) -> RemoteService:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(self, call: Call[T]) -> T:
        """Send one call and return its result.

        A GET, or a call with an idempotency key (every send), whose connection
        breaks before the answer (a keep-alive connection the server closed, a
        replica that died) is sent once more, with the same key; other requests
        are not repeated (they must not happen twice).

        Raises:
            RelayError: the server refused (the subclass of the status).
            StoreError: no answer from the server.
        """
        response = self._send(call)
        if self.session.revoked(response, call.workspace, call.agent):
            response = self._send(call)
        return self.session.result(call, response)

    def _send(self, call: Call[Any]) -> httpx.Response:
        request = self.session.request(call)
        attempts = retries(call)
        for attempt in range(1, attempts + 1):
            try:
                return self._client.request(**request)
            except httpx.TimeoutException as exc:
                raise self.session.unreachable(exc, call) from None
            except httpx.TransportError as exc:
                if attempt == attempts:
                    raise self.session.unreachable(exc, call) from None
        raise AssertionError("unreachable")  # the loop returns or raises

    def _long_poll(self, make: Callable[[float], Call[list[T]]], timeout: float) -> list[T]:
        # The server holds a request at most LONGPOLL_CHUNK seconds; chain them.
        deadline = time.monotonic() + max(timeout, 0.0)
        while True:
            remaining = deadline - time.monotonic()
            found = self.run(make(min(max(remaining, 0.0), LONGPOLL_CHUNK)))
            if found or remaining <= LONGPOLL_CHUNK:
                return found

    # -- agents ------------------------------------------------------------------------

    def register(
        self,
        agent_id: str | None = None,
        *,
        workspace: str = "default",
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
    ) -> Agent:
        """Register (see ``Service.register``); keeps the token the server issues."""
        registration = self.run(
            calls.register(
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
        )
        self.session.remember(registration)
        return registration.agent

    def heartbeat(
        self,
        agent_id: str,
        *,
        workspace: str = "default",
        epoch: int | None = None,
        status: AgentStatus | str | None = None,
    ) -> Agent:
        """``POST /v1/agents/{id}/heartbeat`` (see ``Service.heartbeat``)."""
        return self.run(calls.heartbeat(agent_id, workspace=workspace, epoch=epoch, status=status))

    def update_agent(
        self,
        agent_id: str,
        *,
        workspace: str = "default",
        epoch: int | None = None,
        label: str | None = None,
        tags: Sequence[str] | None = None,
        capabilities: Sequence[str] | None = None,
        channels: Sequence[str] | None = None,
        status: AgentStatus | str | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> Agent:
        """``PATCH /v1/agents/{id}`` (see ``Service.update_agent``)."""
        return self.run(
            calls.update_agent(
                agent_id,
                workspace=workspace,
                epoch=epoch,
                label=label,
                tags=tags,
                capabilities=capabilities,
                channels=channels,
                status=status,
                meta=meta,
            )
        )

    def unregister(
        self, agent_id: str, *, workspace: str = "default", epoch: int | None = None
    ) -> None:
        """``DELETE /v1/agents/{id}``; forgets the agent's token (see ``Service.unregister``)."""
        self.run(calls.unregister(agent_id, workspace=workspace, epoch=epoch))

    def get_agent(self, agent_id: str, *, workspace: str = "default") -> Agent:
        """``GET /v1/agents/{id}``. Raises NotFound (with close ids)."""
        return self.run(calls.get_agent(agent_id, workspace=workspace))

    def list_agents(
        self,
        *,
        workspace: str = "default",
        status: AgentStatus | str | None = None,
        tag: str | None = None,
        capability: str | None = None,
        channel: str | None = None,
        online_only: bool = False,
    ) -> list[Agent]:
        """``GET /v1/agents`` (see ``Service.list_agents``)."""
        return self.run(
            calls.list_agents(
                workspace=workspace,
                status=status,
                tag=tag,
                capability=capability,
                channel=channel,
                online_only=online_only,
            )
        )

    def sweep(self, *, workspace: str = "default") -> dict[str, int]:
        """``POST /v1/sweep`` (admin): ``{"agents_offline": n, "tasks_released": m}``."""
        return self.run(calls.sweep(workspace=workspace))

    # -- messages and inboxes ----------------------------------------------------------

    def send(
        self,
        sender: str,
        to: str | None,
        body: str,
        *,
        workspace: str = "default",
        epoch: int | None = None,
        subject: str | None = None,
        channel: str | None = None,
        reply_to: int | None = None,
        priority: Priority | str = Priority.NORMAL,
        meta: Mapping[str, Any] | None = None,
        claimable: bool = False,
        idempotency_key: str | None = None,
    ) -> Message:
        """``POST /v1/messages`` (see ``Service.send`` for targets and errors).

        Sent with an ``Idempotency-Key``: ``idempotency_key``, or a fresh uuid4 for
        this call. A connection that breaks before the answer is retried once with
        the same key, so the message is stored once; if that fails too, the
        StoreError names the key (``details["idempotency_key"]``): send again with
        it to be sure the message exists exactly once.
        """
        return self.run(
            calls.send(
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
                idempotency_key=idempotency_key,
            )
        )

    def send_many(
        self,
        sender: str,
        items: Sequence[Mapping[str, Any]],
        *,
        workspace: str = "default",
        epoch: int | None = None,
        idempotency_key: str | None = None,
    ) -> list[Message]:
        """``POST /v1/messages/batch``: all or nothing (see ``Service.send_many``), with
        one ``Idempotency-Key`` for the batch, as for :meth:`send`."""
        return self.run(
            calls.send_many(
                sender, items, workspace=workspace, epoch=epoch, idempotency_key=idempotency_key
            )
        )

    def get_message(self, message_id: int, *, workspace: str = "default") -> Message:
        """``GET /v1/messages/{id}``. Raises NotFound."""
        return self.run(calls.get_message(message_id, workspace=workspace))

    def thread(self, message_id: int, *, workspace: str = "default") -> list[Message]:
        """``GET /v1/messages/{id}/thread``, oldest first. Raises NotFound."""
        return self.run(calls.thread(message_id, workspace=workspace))

    def inbox(
        self,
        agent_id: str,
        *,
        workspace: str = "default",
        unread_only: bool = True,
        newest_first: bool = True,
        since: int | None = None,
        limit: int = 50,
        mark_read: bool = False,
        epoch: int | None = None,
        via: Via | str | None = None,
    ) -> list[Message]:
        """``GET /v1/agents/{id}/inbox`` (see ``Service.inbox``)."""
        return self.run(
            calls.inbox(
                agent_id,
                workspace=workspace,
                unread_only=unread_only,
                newest_first=newest_first,
                since=since,
                limit=limit,
                mark_read=mark_read,
                epoch=epoch,
                via=via,
            )
        )

    def mark_read(
        self,
        agent_id: str,
        *,
        workspace: str = "default",
        ids: Sequence[int] | None = None,
        up_to: int | None = None,
        epoch: int | None = None,
        via: Via | str = Via.INBOX,
    ) -> int:
        """``POST /v1/agents/{id}/inbox/read``: how many changed (see ``Service.mark_read``)."""
        return self.run(
            calls.mark_read(
                agent_id, workspace=workspace, ids=ids, up_to=up_to, epoch=epoch, via=via
            )
        )

    def mark_delivered(
        self,
        agent_id: str,
        ids: Sequence[int],
        *,
        via: Via | str,
        workspace: str = "default",
        epoch: int | None = None,
    ) -> int:
        """``POST /v1/agents/{id}/inbox/delivered`` (see ``Service.mark_delivered``)."""
        return self.run(
            calls.mark_delivered(agent_id, ids, via=via, workspace=workspace, epoch=epoch)
        )

    def deliveries(self, message_id: int, *, workspace: str = "default") -> list[Delivery]:
        """``GET /v1/messages/{id}/deliveries``: each recipient's receipt. Raises NotFound."""
        return self.run(calls.deliveries(message_id, workspace=workspace))

    def wait_deliveries(
        self,
        message_id: int,
        state: DeliveryState | str,
        timeout: float,
        *,
        workspace: str = "default",
    ) -> list[Delivery]:
        """Long-poll the receipts until every recipient reached ``state`` (see
        ``Service.wait_deliveries``); longer waits take several requests."""
        deadline = time.monotonic() + max(timeout, 0.0)
        while True:
            remaining = deadline - time.monotonic()
            chunk = min(max(remaining, 0.0), LONGPOLL_CHUNK)
            found = self.run(calls.wait_deliveries(message_id, state, chunk, workspace=workspace))
            goal = DeliveryState(state)  # the server refused an unknown one above
            if remaining <= LONGPOLL_CHUNK or all(d.state.reached(goal) for d in found):
                return found

    def unread_count(self, agent_id: str, *, workspace: str = "default") -> int:
        """``GET /v1/agents/{id}/inbox/count``."""
        return self.run(calls.unread_count(agent_id, workspace=workspace))

    def wait(
        self,
        agent_id: str,
        timeout: float,
        *,
        workspace: str = "default",
        since: int | None = None,
        limit: int = 50,
        mark_read: bool = False,
        epoch: int | None = None,
        via: Via | str | None = None,
    ) -> list[Message]:
        """Long-poll the inbox (see ``Service.wait``); waits longer than
        :data:`~relaybus.client.transport.LONGPOLL_CHUNK` take several requests."""
        return self._long_poll(
            lambda chunk: calls.wait(
                agent_id,
                chunk,
                workspace=workspace,
                since=since,
                limit=limit,
                mark_read=mark_read,
                epoch=epoch,
                via=via,
            ),
            timeout,
        )

    # -- tasks -------------------------------------------------------------------------

    def claim(
        self,
        task_id: int,
        agent_id: str,
        *,
        workspace: str = "default",
        epoch: int | None = None,
        lease: float | None = None,
    ) -> Task:
        """``POST /v1/tasks/{id}/claim``. Raises Conflict (``holder`` in details) if taken."""
        return self.run(
            calls.claim(task_id, agent_id, workspace=workspace, epoch=epoch, lease=lease)
        )

    def renew(
        self,
        task_id: int,
        agent_id: str,
        *,
        workspace: str = "default",
        epoch: int | None = None,
        lease: float | None = None,
    ) -> Task:
        """``POST /v1/tasks/{id}/renew`` (see ``Service.renew``)."""
        return self.run(
            calls.renew(task_id, agent_id, workspace=workspace, epoch=epoch, lease=lease)
        )

    def release(
        self, task_id: int, agent_id: str, *, workspace: str = "default", epoch: int | None = None
    ) -> Task:
        """``POST /v1/tasks/{id}/release`` (see ``Service.release``)."""
        return self.run(calls.release(task_id, agent_id, workspace=workspace, epoch=epoch))

    def update_task(
        self,
        task_id: int,
        agent_id: str | None,
        *,
        workspace: str = "default",
        epoch: int | None = None,
        status: str | None = None,
        progress: int | None = None,
        note: str | None = None,
        result: str | None = None,
    ) -> Task:
        """``PATCH /v1/tasks/{id}`` (``agent_id=None``: the operator; see
        ``Service.update_task``)."""
        return self.run(
            calls.update_task(
                task_id,
                agent_id,
                workspace=workspace,
                epoch=epoch,
                status=status,
                progress=progress,
                note=note,
                result=result,
            )
        )

    def get_task(
        self,
        task_id: int,
        *,
        workspace: str = "default",
        sweep: bool = True,
        viewer: str | None = None,
    ) -> Task:
        """``GET /v1/tasks/{id}`` (the server sweeps lapsed leases; ``sweep`` is ignored;
        ``viewer``: read as that agent, see ``Service.get_task``)."""
        return self.run(calls.get_task(task_id, workspace=workspace, sweep=sweep, viewer=viewer))

    def list_tasks(
        self,
        *,
        workspace: str = "default",
        status: str | None = None,
        assignee: str | None = None,
        limit: int = 100,
        viewer: str | None = None,
    ) -> list[Task]:
        """``GET /v1/tasks``, newest first (``viewer``: only that agent's view)."""
        return self.run(
            calls.list_tasks(
                workspace=workspace, status=status, assignee=assignee, limit=limit, viewer=viewer
            )
        )

    def task_history(
        self, task_id: int, *, workspace: str = "default", viewer: str | None = None
    ) -> list[TaskEvent]:
        """``GET /v1/tasks/{id}/history``, oldest first. Raises NotFound."""
        return self.run(calls.task_history(task_id, workspace=workspace, viewer=viewer))

    # -- events and retention ----------------------------------------------------------

    def events(
        self,
        *,
        workspace: str = "default",
        since: int = 0,
        limit: int = 100,
        kinds: Sequence[str] | None = None,
    ) -> list[Event]:
        """``GET /v1/events``: events above ``since``, oldest first."""
        return self.run(calls.events(workspace=workspace, since=since, limit=limit, kinds=kinds))

    def last_event_id(self, *, workspace: str = "default") -> int:
        """``GET /v1/events/last``: the newest event id (0 for none)."""
        return self.run(calls.last_event_id(workspace=workspace))

    def wait_events(
        self,
        timeout: float,
        *,
        workspace: str = "default",
        since: int = 0,
        limit: int = 100,
        kinds: Sequence[str] | None = None,
    ) -> list[Event]:
        """Long-poll the event log (see ``Service.wait_events``)."""
        return self._long_poll(
            lambda chunk: calls.wait_events(
                chunk, workspace=workspace, since=since, limit=limit, kinds=kinds
            ),
            timeout,
        )

    def prune(
        self,
        *,
        workspace: str = "default",
        message_days: float | None = None,
        agent_days: float | None = None,
    ) -> PruneReport:
        """``POST /v1/prune`` (admin; see ``Service.prune``)."""
        return self.run(
            calls.prune(workspace=workspace, message_days=message_days, agent_days=agent_days)
        )

    # -- the live stream ---------------------------------------------------------------

    def iter_events(
        self,
        *,
        since: int | None = None,
        agent: str | None = None,
        kinds: Sequence[str] | None = None,
        workspace: str | None = None,
        max_backoff: float = BACKOFF_CAP,
        give_up_after: float | None = None,
    ) -> Generator[Event, None, None]:
        """The live events the caller may see (``GET /v1/stream``), for ever.

        Reconnects after any disconnect (server restart, network cut, a stream
        silent for :data:`~relaybus.client.streams.STREAM_IDLE_TIMEOUT` s)
        with exponential backoff up to ``max_backoff`` seconds, resuming with
        ``Last-Event-ID``: every event is yielded once, none is skipped. Stop by
        breaking out of the loop (or closing the iterator).

        Args:
            since: resume after this event id; ``None`` starts at "now".
            agent: watch as this agent (only its deliveries, its tasks and
                presence); sends that agent's token when this service has it.
            kinds: only these kinds (``"task."`` matches a family); the cursor
                still advances over the others.
            workspace: default ``settings.workspace``.
            give_up_after: raise StoreError once the server has been unreachable
                for this many seconds; ``None`` retries for ever.

        Raises:
            RelayError: the server refused the stream (401, 403, 404…).
            StoreError: unreachable for longer than ``give_up_after``.
        """
        return follow(
            self._client,
            self.session,
            since=since,
            agent=agent,
            kinds=kinds,
            workspace=workspace or self.settings.workspace,
            max_backoff=max_backoff,
            give_up_after=give_up_after,
        )
