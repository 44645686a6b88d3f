"""The Python SDK: :class:`AsyncRelay` and the :class:`AsyncAgentHandle` an agent acts through.

>>> async with AsyncRelay.open() as relay:  # .relay/ of this repository
...     me = await relay.register("alice", capabilities=["review"])
...     await me.send("bob", "I'm refactoring auth, stay out of src/auth")
...     async for message in me.messages():  # as they arrive
...         await me.reply(message, "on it")

With ``RELAYBUS_URL`` set (or ``AsyncRelay.open(url=...)``) the same calls go to a
relay server over one keep-alive ``httpx.AsyncClient``
(:class:`~relaybus.client.aio_backends.AsyncRemoteBackend`), with the same results and
errors; otherwise they run on the embedded store
(:class:`~relaybus.client.aio_backends.AsyncEmbeddedBackend`). Every operation is one
:mod:`~relaybus.client.calls` builder run by the backend. Every method raises
subclasses of :class:`relaybus.errors.RelayError`.
"""

# scripts/unasync.py writes the sync twin of this module: edit here, then run it.

from __future__ import annotations

import os
import time
import uuid
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from ..errors import InvalidInput
from ..models import (
    Agent,
    AgentStatus,
    Approval,
    Delivery,
    DeliveryState,
    Event,
    Message,
    PruneReport,
)
from ..settings import Settings
from . import calls
from .aio_backends import AsyncBackend, AsyncEmbeddedBackend, AsyncRemoteBackend
from .aio_handle import AsyncAgentHandle, AsyncTasksView
from .aio_integrations import AsyncIntegrationsView
from .aio_messages import AsyncMessagesView
from .aio_pairs import AsyncPairsView
from .aio_spawn import AsyncSpawnView
from .aio_workflow_runs import AsyncWorkflowRunsView
from .runners import EMBEDDED_WAIT_STEP
from .transport import BACKOFF_CAP, Call, StreamQuery

if TYPE_CHECKING:
    from ..service import Service
    from ..store import Store

T = TypeVar("T")

__all__ = ["EMBEDDED_WAIT_STEP", "AsyncAgentHandle", "AsyncRelay"]


class AsyncRelay(
    AsyncSpawnView,
    AsyncTasksView,
    AsyncIntegrationsView,
    AsyncPairsView,
    AsyncMessagesView,
    AsyncWorkflowRunsView,
):
    """A connection to a relay: the embedded store of this repository by default,
    or a relay server.

    Use as a context manager or call :meth:`aclose`. Safe to share (between the
    threads, or the tasks of one event loop); one per process is enough.

    Attributes:
        backend: how the calls run (over HTTP, or on the embedded service).
        workspace: the namespace every call of this relay works in.
    """

    def __init__(self, backend: AsyncBackend, *, workspace: str | None = None) -> None:
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
        """Open the relay the arguments or the environment point at.

        A server when ``url`` is given, or when ``RELAYBUS_URL`` is set and
        neither ``dir`` nor ``database`` is: calls then go over HTTP with
        ``token`` (default ``RELAYBUS_TOKEN``) as the bearer; nothing is
        contacted until the first call. Otherwise the embedded store, opened
        (and its schema migrated) here: ``database`` (a SQLAlchemy URL) wins
        over ``dir`` (a relay folder), which wins over ``RELAYBUS_DATABASE`` /
        ``RELAYBUS_DIR`` and then the ``.relay/`` folder of the repository
        around the cwd.

        An embedded relay that does not exist yet is created here (``.relay/``
        0700 with a ``.gitignore``, ``relay.db`` 0600): a program that opens a
        relay means to use it. ``create=False`` raises :class:`NoRelay` instead,
        as the CLI's commands that only read do.

        Raises:
            NoRelay: ``create=False`` and there is no embedded relay yet.
            StoreError: the database cannot be opened or migrated, is not a
                SQLite database, or is damaged.
            InvalidInput: both ``url`` and ``dir``/``database``, or a ``url``
                that is not an http(s) address.
        """
        local = dir is not None or database is not None
        if url is not None and local:
            raise InvalidInput("give a relay server url or a database (dir), not both")
        updates: dict[str, Any] = {}
        if url is not None:
            updates["url"] = url
        if token is not None:
            updates["token"] = token
        if dir is not None:
            updates["dir"] = Path(dir)
            updates["database"] = None  # an explicit folder beats RELAYBUS_DATABASE
        if database is not None:
            updates["database"] = database
        # Arguments read as Settings(dir=...) would: dir also picks the config.toml read.
        settings = Settings(**updates) if settings is None else settings.model_copy(update=updates)
        if settings.url and not local:
            return cls(AsyncRemoteBackend(settings), workspace=workspace)
        from ..service import Service
        from ..store import open_store

        return cls.embedded(Service(open_store(settings, create=create)), workspace=workspace)

    @classmethod
    def embedded(cls, service: Service, *, workspace: str | None = None) -> AsyncRelay:
        """A relay over an open embedded service (closing the relay closes its store)."""
        return cls(AsyncEmbeddedBackend(service), workspace=workspace)

    # The tasks view (AsyncTasksView) acts as the workspace operator: no agent, no epoch.
    _agent = None
    _epoch = None

    async def _run(self, call: Call[T]) -> T:
        return await self.backend.run(call)

    @property
    def _workspace(self) -> str:
        return self.workspace

    @property
    def settings(self) -> Settings:
        """The settings this relay was opened with."""
        return self.backend.settings

    @property
    def url(self) -> str | None:
        """The relay server's base URL, or ``None`` for the embedded store."""
        return self.backend.url

    @property
    def service(self) -> Service:
        """The embedded :class:`~relaybus.service.Service`.

        Raises:
            InvalidInput: this relay talks to a server (there is no database here).
        """
        return self.backend.service

    @property
    def store(self) -> Store:
        """The embedded database.

        Raises:
            InvalidInput: this relay talks to a server (there is no database here).
        """
        return self.backend.service.store

    async def _long_poll(
        self,
        make: Callable[[float], Call[list[T]]],
        timeout: float,
        done: Callable[[list[T]], bool] = bool,
    ) -> list[T]:
        """Chain waits of at most ``backend.wait_step`` seconds (``make(step)`` each)
        until one is ``done`` or ``timeout`` seconds have passed; the last result."""
        deadline = time.monotonic() + max(timeout, 0.0)
        step = self.backend.wait_step
        while True:
            remaining = deadline - time.monotonic()
            found = await self.backend.run(make(min(max(remaining, 0.0), step)))
            if remaining <= step or done(found):
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
        approval: Approval | str | None = None,
    ) -> AsyncAgentHandle:
        """Register this process as an agent and return its handle.

        ``pid`` defaults to this process, so the agent reads as offline once
        the process is gone; ``None`` records no pid (presence then rests on
        heartbeats alone, e.g. for a short-lived CLI call). ``instance_id``
        defaults to a fresh id: each registration is a new instance that
        fences off the previous one. ``cwd`` (default: this process's) is the
        working directory recorded for the agent and used in a derived id.
        ``approval`` is its session's approval mode (open, guarded, read-only;
        none given reads as open). Over HTTP the token the server issues is kept (see
        :attr:`AsyncAgentHandle.token`).

        Raises:
            InvalidInput: a malformed id, tag, capability or channel, or an
                unknown approval mode.
        """
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
                approval=approval,
            )
        )
        self.backend.remember(registration)
        agent = registration.agent
        return AsyncAgentHandle(self, agent.id, agent.epoch)

    async def agent(self, agent_id: str, *, epoch: int | None = None) -> AsyncAgentHandle:
        """A handle acting as an existing agent (no registration, no fencing
        unless ``epoch`` is given).

        Raises:
            NotFound: no such agent.
        """
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
        """Each recipient's receipt for a message (queued, delivered or read, with
        times and the path it took), by agent id.

        Args:
            until: wait up to ``timeout`` seconds for every recipient to reach
                this state (``delivered`` is also reached by a read); the
                receipts are returned as they are when the wait ends.

        Raises:
            NotFound: no such message. InvalidInput: an unknown state.
        """
        workspace = self.workspace
        if until is None:
            return await self.backend.run(calls.deliveries(message_id, workspace=workspace))

        def reached(found: list[Delivery]) -> bool:
            goal = DeliveryState(until)  # the relay refused an unknown one first
            return all(d.state.reached(goal) for d in found)

        return await self._long_poll(
            lambda step: calls.wait_deliveries(message_id, until, step, workspace=workspace),
            timeout,
            reached,
        )

    async def events(self, *, since: int = 0, limit: int = 100) -> list[Event]:
        """Event log entries above the cursor ``since``, oldest first."""
        return await self.backend.run(
            calls.events(workspace=self.workspace, since=since, limit=limit)
        )

    async def last_event_id(self) -> int:
        """The newest event id (0 for none): a cursor for "from now on"."""
        return await self.backend.run(calls.last_event_id(workspace=self.workspace))

    async def wait_events(
        self,
        timeout: float,
        *,
        since: int = 0,
        limit: int = 100,
        kinds: Sequence[str] | None = None,
    ) -> list[Event]:
        """Wait up to ``timeout`` seconds for events above ``since`` (optionally
        only of ``kinds``; ``"task."`` matches a family); empty on timeout."""
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
        give_up_after: float | None = None,
    ) -> AsyncGenerator[Event, None]:
        """Live events of this workspace, oldest first, each once, for ever (break
        to stop, and close it when done: ``contextlib.aclosing``).

        Over a server this is the SSE stream ``GET /v1/stream``: after any
        disconnect it reconnects with exponential backoff (up to ``max_backoff``
        seconds, with jitter) and resumes with ``Last-Event-ID`` (see
        :func:`~relaybus.client.streams.follow`); embedded it follows the event log.

        Args:
            since: start after this event id; ``None`` starts at "now".
            agent: only what this agent may see (a server only; sends that agent's
                token when this relay registered it).
            kinds: only these kinds (``"task."`` matches a family).
            give_up_after: over a server, raise StoreError once it has been
                unreachable for this many seconds; ``None`` retries for ever.

        Raises:
            InvalidInput: ``agent`` on an embedded relay.
            RelayError: the server refused the stream (401, 403, 404…).
            StoreError: unreachable for longer than ``give_up_after``.
        """
        query = StreamQuery(
            workspace=self.workspace,
            since=since,
            agent=agent,
            kinds=kinds,
            max_backoff=max_backoff,
            give_up_after=give_up_after,
        )
        return self.backend.stream(query)

    async def prune(
        self, *, message_days: float | None = None, agent_days: float | None = None
    ) -> PruneReport:
        """Apply retention (see ``Service.prune``)."""
        return await self.backend.run(
            calls.prune(workspace=self.workspace, message_days=message_days, agent_days=agent_days)
        )

    async def aclose(self) -> None:
        """Close the server connections, or the database."""
        await self.backend.aclose()

    async def __aenter__(self) -> AsyncRelay:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
