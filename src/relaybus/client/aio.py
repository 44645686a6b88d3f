"""The asyncio SDK: :class:`AsyncRelay` and :class:`AsyncAgentHandle`.

>>> async with AsyncRelay.open(url="http://127.0.0.1:4850") as relay:
...     me = await relay.register("alice")
...     async for message in me.messages():          # pushed over SSE
...         await me.reply(message, "on it")

The operations, arguments, results and errors are those of the sync
:class:`~relaybus.client.Relay` and :class:`~relaybus.client.AgentHandle`, as
coroutines. Over a server the calls go through one ``httpx.AsyncClient`` and
:meth:`AsyncAgentHandle.messages` follows the live stream, reconnecting with
backoff; on the embedded store each call runs the sync service in a worker
thread (waits in steps of :data:`EMBEDDED_WAIT_STEP` seconds, so a cancelled
wait frees its thread soon).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

from ..errors import Conflict, InvalidInput, NotFound
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
from .backends import EMBEDDED_WAIT_STEP, Backend, EmbeddedBackend, RemoteBackend
from .transport import BACKOFF_CAP, Call, ServiceAPI, delivered_to

T = TypeVar("T")

#: Most messages one page of the unread inbox takes.
PAGE = 1000

__all__ = ["EMBEDDED_WAIT_STEP", "AsyncAgentHandle", "AsyncRelay"]


class AsyncRelay:
    """An asyncio connection to a relay: a server, or the embedded store.

    Use as an async context manager or call :meth:`aclose`. Safe to share
    between tasks of one event loop.
    """

    def __init__(self, backend: Backend, *, workspace: str | None = None) -> None:
        self.backend = backend
        self.workspace = workspace or backend.settings.workspace

    @classmethod
    def open(
        cls,
        *,
        url: str | None = None,
        token: str | None = None,
        dir: str | Path | None = None,
        database: str | None = None,
        workspace: str | None = None,
        settings: Settings | None = None,
    ) -> AsyncRelay:
        """Open the relay the arguments or the environment point at, as
        :meth:`Relay.open <relaybus.client.Relay.open>` does. A server is only
        contacted on the first call; the embedded store is opened (and migrated)
        here, blocking.

        Raises:
            StoreError: the database cannot be opened or migrated.
            InvalidInput: both ``url`` and ``dir``/``database``, or a bad ``url``.
        """
        from .relay import Relay

        if url is not None and (dir is not None or database is not None):
            raise InvalidInput("give a relay server url or a database (dir), not both")
        settings = settings or Settings()
        updates = {k: v for k, v in {"url": url, "token": token}.items() if v is not None}
        settings = settings.model_copy(update=updates)
        if settings.url and dir is None and database is None:
            return cls(RemoteBackend(settings), workspace=workspace)
        relay = Relay.open(dir=dir, database=database, settings=settings)
        return cls(EmbeddedBackend(relay.service), workspace=workspace)

    @classmethod
    def embedded(cls, service: ServiceAPI, *, workspace: str | None = None) -> AsyncRelay:
        """An async relay over an open sync service (its calls run in threads)."""
        return cls(EmbeddedBackend(service), workspace=workspace)

    async def _long_poll(self, make: Callable[[float], Call[list[T]]], timeout: float) -> list[T]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(timeout, 0.0)
        step = self.backend.wait_step
        while True:
            remaining = deadline - loop.time()
            found = await self.backend.run(make(min(max(remaining, 0.0), step)))
            if found or remaining <= step:
                return found

    # -- agents ------------------------------------------------------------------------

    async def register(
        self,
        agent_id: str | None = None,
        *,
        label: str | None = None,
        tags: Sequence[str] = (),
        capabilities: Sequence[str] = (),
        channels: Sequence[str] = (),
        meta: Mapping[str, Any] | None = None,
        pid: int | None | Literal["current"] = "current",
        instance_id: str | None = None,
        tool: str = "python",
        cwd: str | None = None,
    ) -> AsyncAgentHandle:
        """Register this process as an agent (see :meth:`Relay.register`)."""
        registration = await self.backend.run(
            calls.register(
                agent_id,
                workspace=self.workspace,
                label=label,
                tags=tags,
                capabilities=capabilities,
                channels=channels,
                meta=meta,
                pid=os.getpid() if pid == "current" else pid,
                instance_id=instance_id or uuid.uuid4().hex,
                tool=tool,
                cwd=cwd,
            )
        )
        self.backend.remember(registration)
        agent = registration.agent
        return AsyncAgentHandle(self, agent.id, agent.epoch)

    async def agent(self, agent_id: str, *, epoch: int | None = None) -> AsyncAgentHandle:
        """A handle acting as an existing agent. Raises NotFound."""
        await self.get_agent(agent_id)
        return AsyncAgentHandle(self, agent_id, epoch)

    async def agents(
        self,
        *,
        status: AgentStatus | str | None = None,
        tag: str | None = None,
        capability: str | None = None,
        channel: str | None = None,
        online_only: bool = False,
    ) -> list[Agent]:
        """Registered agents with their effective status, by id."""
        return await self.backend.run(
            calls.list_agents(
                workspace=self.workspace,
                status=status,
                tag=tag,
                capability=capability,
                channel=channel,
                online_only=online_only,
            )
        )

    async def get_agent(self, agent_id: str) -> Agent:
        """One agent. Raises NotFound."""
        return await self.backend.run(calls.get_agent(agent_id, workspace=self.workspace))

    # -- messages, tasks, events -------------------------------------------------------

    async def message(self, message_id: int) -> Message:
        """One message with its recipients. Raises NotFound."""
        return await self.backend.run(calls.get_message(message_id, workspace=self.workspace))

    async def thread(self, message_id: int) -> list[Message]:
        """The whole thread of any of its messages, oldest first. Raises NotFound."""
        return await self.backend.run(calls.thread(message_id, workspace=self.workspace))

    async def deliveries(
        self,
        message_id: int,
        *,
        until: DeliveryState | str | None = None,
        timeout: float = 30.0,
    ) -> list[Delivery]:
        """Each recipient's receipt for a message; with ``until``, first wait up to
        ``timeout`` seconds for every recipient to reach that state (see
        :meth:`relaybus.Relay.deliveries`). Raises NotFound, InvalidInput."""
        workspace = self.workspace
        if until is None:
            return await self.backend.run(calls.deliveries(message_id, workspace=workspace))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(timeout, 0.0)
        while True:
            remaining = deadline - loop.time()
            step = min(max(remaining, 0.0), self.backend.wait_step)
            found = await self.backend.run(
                calls.wait_deliveries(message_id, until, step, workspace=workspace)
            )
            goal = DeliveryState(until)  # the relay refused an unknown one above
            if remaining <= step or all(d.state.reached(goal) for d in found):
                return found

    async def tasks(
        self, *, status: str | None = None, assignee: str | None = None, limit: int = 100
    ) -> list[Task]:
        """Tasks, newest first."""
        return await self.backend.run(
            calls.list_tasks(
                workspace=self.workspace, status=status, assignee=assignee, limit=limit
            )
        )

    async def task(self, task_id: int) -> Task:
        """One task. Raises NotFound."""
        return await self.backend.run(calls.get_task(task_id, workspace=self.workspace))

    async def task_history(self, task_id: int) -> list[TaskEvent]:
        """A task's history, oldest first. Raises NotFound."""
        return await self.backend.run(calls.task_history(task_id, workspace=self.workspace))

    async def update_task(
        self,
        task_id: int,
        *,
        status: str | None = None,
        progress: int | None = None,
        note: str | None = None,
        result: str | None = None,
    ) -> Task:
        """Change a task as the workspace operator (not as an agent)."""
        return await self.backend.run(
            calls.update_task(
                task_id,
                None,
                workspace=self.workspace,
                status=status,
                progress=progress,
                note=note,
                result=result,
            )
        )

    async def events(self, *, since: int = 0, limit: int = 100) -> list[Event]:
        """Event log entries above the cursor ``since``."""
        return await self.backend.run(
            calls.events(workspace=self.workspace, since=since, limit=limit)
        )

    async def last_event_id(self) -> int:
        """The newest event id: a cursor for "from now on"."""
        return await self.backend.run(calls.last_event_id(workspace=self.workspace))

    async def wait_events(
        self,
        timeout: float,
        *,
        since: int = 0,
        limit: int = 100,
        kinds: Sequence[str] | None = None,
    ) -> list[Event]:
        """Wait up to ``timeout`` seconds for events above ``since``."""
        return await self._long_poll(
            lambda step: calls.wait_events(
                step, workspace=self.workspace, since=since, limit=limit, kinds=kinds
            ),
            timeout,
        )

    def stream(
        self,
        *,
        since: int | None = None,
        agent: str | None = None,
        kinds: Sequence[str] | None = None,
        max_backoff: float = BACKOFF_CAP,
    ) -> AsyncGenerator[Event, None]:
        """Live events, oldest first, each once, for ever (see :meth:`Relay.stream`).

        Close it when done (``contextlib.aclosing``, or break out of
        ``async for`` and let the loop finalize it).

        Raises:
            InvalidInput: ``agent`` on an embedded relay.
            RelayError: the server refused the stream.
        """
        return self.backend.stream(
            since=since,
            agent=agent,
            kinds=kinds,
            workspace=self.workspace,
            max_backoff=max_backoff,
        )

    async def prune(
        self, *, message_days: float | None = None, agent_days: float | None = None
    ) -> PruneReport:
        """Apply retention (see ``Service.prune``)."""
        return await self.backend.run(
            calls.prune(workspace=self.workspace, message_days=message_days, agent_days=agent_days)
        )

    async def aclose(self) -> None:
        """Close the connections (or the database)."""
        await self.backend.aclose()

    async def __aenter__(self) -> AsyncRelay:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class AsyncAgentHandle:
    """Acting as one agent, asynchronously (see :class:`~relaybus.client.AgentHandle`).

    ``cursor`` is the highest message id returned by :meth:`inbox` or
    :meth:`wait`; :meth:`wait` waits for mail above it.
    """

    def __init__(self, relay: AsyncRelay, agent_id: str, epoch: int | None) -> None:
        self.relay = relay
        self.id = agent_id
        self.epoch = epoch
        self.cursor = 0

    @property
    def _workspace(self) -> str:
        return self.relay.workspace

    @property
    def token(self) -> str | None:
        """The bearer token the server issued when this relay registered the agent."""
        return self.relay.backend.token_for(self.id, workspace=self._workspace)

    async def _run(self, call: Call[T]) -> T:
        return await self.relay.backend.run(call)

    async def info(self) -> Agent:
        """This agent as the relay sees it."""
        return await self._run(calls.get_agent(self.id, workspace=self._workspace))

    async def send(
        self,
        to: str,
        body: str,
        *,
        subject: str | None = None,
        channel: str | None = None,
        priority: Priority | str = Priority.NORMAL,
        meta: Mapping[str, Any] | None = None,
        claimable: bool = False,
        reply_to: int | None = None,
    ) -> Message:
        """Send a message (see ``Service.send`` for targets and errors)."""
        return await self._run(
            calls.send(
                self.id,
                to,
                body,
                workspace=self._workspace,
                epoch=self.epoch,
                subject=subject,
                channel=channel,
                priority=priority,
                meta=meta,
                claimable=claimable,
                reply_to=reply_to,
            )
        )

    async def reply(
        self,
        message: Message | int,
        body: str,
        *,
        to: str | None = None,
        subject: str | None = None,
        channel: str | None = None,
        priority: Priority | str = Priority.NORMAL,
        meta: Mapping[str, Any] | None = None,
        claimable: bool = False,
    ) -> Message:
        """Answer ``message`` in its thread, to its sender unless ``to`` says otherwise."""
        return await self._run(
            calls.send(
                self.id,
                to,
                body,
                workspace=self._workspace,
                epoch=self.epoch,
                reply_to=message.id if isinstance(message, Message) else message,
                subject=subject,
                channel=channel,
                priority=priority,
                meta=meta,
                claimable=claimable,
            )
        )

    async def inbox(
        self,
        *,
        unread_only: bool = True,
        newest_first: bool = True,
        since: int | None = None,
        limit: int = 50,
        mark_read: bool = False,
        via: Via | str | None = None,
    ) -> list[Message]:
        """Messages delivered to this agent; only marks them read if asked, and
        delivered (by ``via``) only if given one (see ``Service.inbox``)."""
        found = await self._run(
            calls.inbox(
                self.id,
                workspace=self._workspace,
                unread_only=unread_only,
                newest_first=newest_first,
                since=since,
                limit=limit,
                mark_read=mark_read,
                epoch=self.epoch,
                via=via,
            )
        )
        self._advance(found)
        return found

    async def read(
        self,
        *,
        unread_only: bool = True,
        newest_first: bool = True,
        since: int | None = None,
        limit: int = 50,
    ) -> list[Message]:
        """:meth:`inbox` that marks what it returns read."""
        return await self.inbox(
            unread_only=unread_only,
            newest_first=newest_first,
            since=since,
            limit=limit,
            mark_read=True,
        )

    async def mark_read(
        self,
        ids: Sequence[int] | None = None,
        *,
        up_to: int | None = None,
        via: Via | str = Via.INBOX,
    ) -> int:
        """Mark messages read by id, or all up to a cursor; returns how many changed.
        One still queued is recorded delivered too, by ``via``."""
        return await self._run(
            calls.mark_read(
                self.id, workspace=self._workspace, ids=ids, up_to=up_to, epoch=self.epoch, via=via
            )
        )

    async def mark_delivered(self, ids: Sequence[int], *, via: Via | str) -> int:
        """Record that messages ``ids`` reached this agent's session by ``via``;
        returns how many moved from queued to delivered."""
        return await self._run(
            calls.mark_delivered(self.id, ids, via=via, workspace=self._workspace, epoch=self.epoch)
        )

    async def unread_count(self) -> int:
        """How many messages of this agent are unread."""
        return await self._run(calls.unread_count(self.id, workspace=self._workspace))

    async def wait(
        self,
        timeout: float = 30.0,
        *,
        since: int | None = None,
        mark_read: bool = False,
        via: Via | str | None = None,
    ) -> list[Message]:
        """Wait up to ``timeout`` seconds for unread mail above ``since`` (default:
        :attr:`cursor`); oldest first, empty on timeout. ``mark_read`` and ``via``
        as for :meth:`inbox`.

        With ``mark_read``, a wait cancelled just as mail arrives may have marked
        it read without returning it (it stays in the inbox, read).
        """
        cursor = self.cursor if since is None else since
        found = await self.relay._long_poll(
            lambda step: calls.wait(
                self.id,
                step,
                workspace=self._workspace,
                since=cursor,
                mark_read=mark_read,
                epoch=self.epoch,
                via=via,
            ),
            timeout,
        )
        self._advance(found)
        return found

    def messages(
        self, *, since: int | None = None, unread: bool = False, max_backoff: float = BACKOFF_CAP
    ) -> AsyncGenerator[Message, None]:
        """Messages delivered to this agent as they arrive, each once, for ever.
        Records each delivered (``via="stream"``) as it is handed over; does not
        mark them read.

        Over a server this follows the SSE stream as this agent: it reconnects
        after a disconnect with exponential backoff (up to ``max_backoff``
        seconds, with jitter) and resumes with ``Last-Event-ID``, so nothing
        sent meanwhile is lost and nothing comes twice. Close it when done
        (``contextlib.aclosing``).

        Args:
            since: an event id to resume after; ``None`` starts at "now".
            unread: first yield the unread mail already in the inbox.

        Raises:
            RelayError: the server refused the stream.
        """
        return self._messages(since, unread, max_backoff)

    async def _messages(
        self, since: int | None, unread: bool, max_backoff: float
    ) -> AsyncGenerator[Message, None]:
        relay = self.relay
        if since is None:
            since = await relay.last_event_id()
        seen: set[int] = set()
        if unread:
            cursor: int | None = None
            while True:
                page = await self._run(
                    calls.inbox(
                        self.id,
                        workspace=self._workspace,
                        newest_first=False,
                        since=cursor,
                        limit=PAGE,
                    )
                )
                for message in page:
                    seen.add(message.id)
                    await self._acknowledge(message)
                    yield message
                if len(page) < PAGE:
                    break
                cursor = page[-1].id
        remote = isinstance(relay.backend, RemoteBackend)
        events = relay.backend.stream(
            since=since,
            agent=self.id if remote else None,
            kinds=["message.sent"],
            workspace=self._workspace,
            max_backoff=max_backoff,
        )
        try:
            async for event in events:
                if not delivered_to(event, self.id):
                    continue
                carried = event.data.get("message")
                if isinstance(carried, dict):
                    message = Message.model_validate(carried)
                else:
                    message = await relay.message(int(event.data["message_id"]))
                if message.id not in seen:
                    await self._acknowledge(message)
                    yield message
        finally:
            await events.aclose()

    async def _acknowledge(self, message: Message) -> None:
        # A fenced-off instance (stale epoch) or a removed agent still sees its
        # stream, but the message did not reach the agent's current session.
        try:
            await self.mark_delivered([message.id], via=Via.STREAM)
        except (Conflict, NotFound):
            pass

    async def claim(self, task_id: int, *, lease: float | None = None) -> Task:
        """Claim a task. Raises Conflict (with ``details["holder"]``) if taken."""
        return await self._run(
            calls.claim(task_id, self.id, workspace=self._workspace, epoch=self.epoch, lease=lease)
        )

    async def renew(self, task_id: int, *, lease: float | None = None) -> Task:
        """Extend the lease of a task this agent holds. Raises Conflict if it does not."""
        return await self._run(
            calls.renew(task_id, self.id, workspace=self._workspace, epoch=self.epoch, lease=lease)
        )

    async def release(self, task_id: int) -> Task:
        """Give a held task back (open again). Raises Conflict if not held."""
        return await self._run(
            calls.release(task_id, self.id, workspace=self._workspace, epoch=self.epoch)
        )

    async def update_task(
        self,
        task_id: int,
        *,
        status: str | None = None,
        progress: int | None = None,
        note: str | None = None,
        result: str | None = None,
    ) -> Task:
        """Report status, progress (0–100, with a note) or a result on a task."""
        return await self._run(
            calls.update_task(
                task_id,
                self.id,
                workspace=self._workspace,
                epoch=self.epoch,
                status=status,
                progress=progress,
                note=note,
                result=result,
            )
        )

    async def heartbeat(self, status: AgentStatus | str | None = None) -> Agent:
        """Record that the agent is alive, optionally with a new status."""
        return await self._run(
            calls.heartbeat(self.id, workspace=self._workspace, epoch=self.epoch, status=status)
        )

    async def update(
        self,
        *,
        label: str | None = None,
        tags: Sequence[str] | None = None,
        capabilities: Sequence[str] | None = None,
        channels: Sequence[str] | None = None,
        status: AgentStatus | str | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> Agent:
        """Change label, tags, capabilities, channels, status or meta."""
        return await self._run(
            calls.update_agent(
                self.id,
                workspace=self._workspace,
                epoch=self.epoch,
                label=label,
                tags=tags,
                capabilities=capabilities,
                channels=channels,
                status=status,
                meta=meta,
            )
        )

    async def unregister(self) -> None:
        """Remove the agent (see ``Service.unregister``); its token stops working."""
        await self._run(calls.unregister(self.id, workspace=self._workspace, epoch=self.epoch))

    def _advance(self, found: list[Message]) -> None:
        if found:
            self.cursor = max(self.cursor, max(m.id for m in found))

    def __repr__(self) -> str:
        return f"AsyncAgentHandle({self.id!r}, epoch={self.epoch})"
