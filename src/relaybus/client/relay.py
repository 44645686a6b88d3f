# Generated from aio.py by scripts/unasync.py: do not edit. Edit aio.py
# (the async source) and run `python scripts/unasync.py`; CI checks they agree.
"""The Python SDK: :class:`Relay` and the :class:`AgentHandle` an agent acts through.

>>> with Relay.open() as relay:  # .relay/ of this repository
...     me = relay.register("alice", capabilities=["review"])
...     me.send("bob", "I'm refactoring auth, stay out of src/auth")
...     for message in me.messages():  # as they arrive
...         me.reply(message, "on it")

With ``RELAYBUS_URL`` set (or ``Relay.open(url=...)``) the same calls go to a
relay server over one keep-alive ``httpx.Client``
(:class:`~relaybus.client.backends.RemoteBackend`), with the same results and
errors; otherwise they run on the embedded store
(:class:`~relaybus.client.backends.EmbeddedBackend`). Every operation is one
:mod:`~relaybus.client.calls` builder run by the backend. Every method raises
subclasses of :class:`relaybus.errors.RelayError`.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Generator, Mapping, Sequence
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
from .backends import Backend, EmbeddedBackend, RemoteBackend
from .handle import AgentHandle, TasksView
from .integrations import IntegrationsView
from .messages import MessagesView
from .pairs import PairsView
from .runners import EMBEDDED_WAIT_STEP
from .spawn import SpawnView
from .transport import BACKOFF_CAP, Call, StreamQuery
from .workflow_runs import WorkflowRunsView

if TYPE_CHECKING:
    from ..service import Service
    from ..store import Store

T = TypeVar("T")

__all__ = ["EMBEDDED_WAIT_STEP", "AgentHandle", "Relay"]


class Relay(
    SpawnView,
    TasksView,
    IntegrationsView,
    PairsView,
    MessagesView,
    WorkflowRunsView,
):
    """A connection to a relay: the embedded store of this repository by default,
    or a relay server.

    Use as a context manager or call :meth:`close`. Safe to share (between the
    threads, or the tasks of one event loop); one per process is enough.

    Attributes:
        backend: how the calls run (over HTTP, or on the embedded service).
        workspace: the namespace every call of this relay works in.
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
    ) -> Relay:
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
            return cls(RemoteBackend(settings), workspace=workspace)
        from ..service import Service
        from ..store import open_store

        return cls.embedded(Service(open_store(settings, create=create)), workspace=workspace)

    @classmethod
    def embedded(cls, service: Service, *, workspace: str | None = None) -> Relay:
        """A relay over an open embedded service (closing the relay closes its store)."""
        return cls(EmbeddedBackend(service), workspace=workspace)

    # The tasks view (TasksView) acts as the workspace operator: no agent, no epoch.
    _agent = None
    _epoch = None

    def _run(self, call: Call[T]) -> T:
        return self.backend.run(call)

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

    def _long_poll(
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
            found = self.backend.run(make(min(max(remaining, 0.0), step)))
            if remaining <= step or done(found):
                return found

    # -- agents ------------------------------------------------------------------------

    def register(
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
    ) -> AgentHandle:
        """Register this process as an agent and return its handle.

        ``pid`` defaults to this process, so the agent reads as offline once
        the process is gone; ``None`` records no pid (presence then rests on
        heartbeats alone, e.g. for a short-lived CLI call). ``instance_id``
        defaults to a fresh id: each registration is a new instance that
        fences off the previous one. ``cwd`` (default: this process's) is the
        working directory recorded for the agent and used in a derived id.
        ``approval`` is its session's approval mode (open, guarded, read-only;
        none given reads as open). Over HTTP the token the server issues is kept (see
        :attr:`AgentHandle.token`).

        Raises:
            InvalidInput: a malformed id, tag, capability or channel, or an
                unknown approval mode.
        """
        registration = self.backend.run(
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
        return AgentHandle(self, agent.id, agent.epoch)

    def agent(self, agent_id: str, *, epoch: int | None = None) -> AgentHandle:
        """A handle acting as an existing agent (no registration, no fencing
        unless ``epoch`` is given).

        Raises:
            NotFound: no such agent.
        """
        self.get_agent(agent_id)
        return AgentHandle(self, agent_id, epoch)

    def agents(
        self,
        *,
        status: AgentStatus | str | None = None,
        tag: str | None = None,
        capability: str | None = None,
        channel: str | None = None,
        online_only: bool = False,
    ) -> list[Agent]:
        """Registered agents with their effective status, by id."""
        return self.backend.run(
            calls.list_agents(
                workspace=self.workspace,
                status=status,
                tag=tag,
                capability=capability,
                channel=channel,
                online_only=online_only,
            )
        )

    def get_agent(self, agent_id: str) -> Agent:
        """One agent. Raises NotFound."""
        return self.backend.run(calls.get_agent(agent_id, workspace=self.workspace))

    # -- messages, tasks, events -------------------------------------------------------

    def message(self, message_id: int) -> Message:
        """One message with its recipients. Raises NotFound."""
        return self.backend.run(calls.get_message(message_id, workspace=self.workspace))

    def thread(self, message_id: int) -> list[Message]:
        """The whole thread of any of its messages, oldest first. Raises NotFound."""
        return self.backend.run(calls.thread(message_id, workspace=self.workspace))

    def deliveries(
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
            return self.backend.run(calls.deliveries(message_id, workspace=workspace))

        def reached(found: list[Delivery]) -> bool:
            goal = DeliveryState(until)  # the relay refused an unknown one first
            return all(d.state.reached(goal) for d in found)

        return self._long_poll(
            lambda step: calls.wait_deliveries(message_id, until, step, workspace=workspace),
            timeout,
            reached,
        )

    def events(self, *, since: int = 0, limit: int = 100) -> list[Event]:
        """Event log entries above the cursor ``since``, oldest first."""
        return self.backend.run(calls.events(workspace=self.workspace, since=since, limit=limit))

    def last_event_id(self) -> int:
        """The newest event id (0 for none): a cursor for "from now on"."""
        return self.backend.run(calls.last_event_id(workspace=self.workspace))

    def wait_events(
        self,
        timeout: float,
        *,
        since: int = 0,
        limit: int = 100,
        kinds: Sequence[str] | None = None,
    ) -> list[Event]:
        """Wait up to ``timeout`` seconds for events above ``since`` (optionally
        only of ``kinds``; ``"task."`` matches a family); empty on timeout."""
        return self._long_poll(
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
    ) -> Generator[Event, None, None]:
        """Live events of this workspace, oldest first, each once, for ever (break
        to stop, and close it when done: ``contextlib.closing``).

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

    def prune(
        self, *, message_days: float | None = None, agent_days: float | None = None
    ) -> PruneReport:
        """Apply retention (see ``Service.prune``)."""
        return self.backend.run(
            calls.prune(workspace=self.workspace, message_days=message_days, agent_days=agent_days)
        )

    def close(self) -> None:
        """Close the server connections, or the database."""
        self.backend.close()

    def __enter__(self) -> Relay:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
