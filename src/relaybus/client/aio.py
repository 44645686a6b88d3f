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

from ..errors import InvalidInput
from ..models import (
    Agent,
    AgentStatus,
    Delivery,
    DeliveryState,
    Event,
    Message,
    PruneReport,
    Task,
    TaskEvent,
)
from ..settings import Settings
from . import calls
from .aio_handle import AsyncAgentHandle
from .api import ServiceAPI
from .backends import EMBEDDED_WAIT_STEP, Backend, EmbeddedBackend, RemoteBackend
from .transport import BACKOFF_CAP, Call

T = TypeVar("T")

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
        create: bool = True,
    ) -> AsyncRelay:
        """Open the relay the arguments or the environment point at, as
        :meth:`Relay.open <relaybus.client.Relay.open>` does. A server is only
        contacted on the first call; the embedded store is opened (and migrated)
        here, blocking.

        Raises:
            NoRelay: ``create=False`` and there is no embedded relay yet.
            StoreError: the database cannot be opened or migrated, or is damaged.
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
        relay = Relay.open(dir=dir, database=database, settings=settings, create=create)
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
