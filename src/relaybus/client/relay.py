"""The Python SDK: :class:`Relay` and the :class:`AgentHandle` an agent acts through.

>>> relay = Relay.open()                                  # .relay/ of this repository
>>> me = relay.register("alice", capabilities=["review"])
>>> me.send("bob", "I'm refactoring auth, stay out of src/auth")
>>> for msg in me.wait(timeout=30):
...     me.reply(msg, "on it")

With ``RELAYBUS_URL`` set (or ``Relay.open(url=...)``) the same calls go to a
relay server (:class:`~relaybus.client.remote.RemoteService`), with the same
results and errors. Every method raises subclasses of
:class:`relaybus.errors.RelayError`.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Generator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

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
from .api import ServiceAPI
from .handle import EVENT_PAGE, AgentHandle, message_of
from .transport import BACKOFF_CAP, LONGPOLL_CHUNK, matches

if TYPE_CHECKING:
    from ..store import Store


class Relay:
    """A connection to a relay: the embedded store of this repository by default,
    or a relay server.

    Thread-safe; one per process is enough. Use as a context manager or call
    :meth:`close`.

    Attributes:
        service: the operations, embedded (:class:`~relaybus.service.Service`) or
            over HTTP (:class:`~relaybus.client.remote.RemoteService`).
        workspace: the namespace every call of this relay works in.
    """

    def __init__(self, service: ServiceAPI, *, workspace: str | None = None) -> None:
        self.service = service
        self.workspace = workspace or service.settings.workspace

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
        contacted until the first call. Otherwise the embedded store:
        ``database`` (a SQLAlchemy URL) wins over ``dir`` (a relay folder),
        which wins over ``RELAYBUS_DATABASE`` / ``RELAYBUS_DIR`` and then the
        ``.relay/`` folder of the repository around the cwd (schema migrated).

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
            from .remote import RemoteService

            return cls(RemoteService(settings), workspace=workspace)
        from ..service import Service
        from ..store import open_store

        return cls(Service(open_store(settings, create=create)), workspace=workspace)

    @property
    def store(self) -> Store:
        """The embedded database.

        Raises:
            InvalidInput: this relay talks to a server (there is no database here).
        """
        return self.service.store

    # -- agents ------------------------------------------------------------

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
    ) -> AgentHandle:
        """Register this process as an agent and return its handle.

        ``pid`` defaults to this process, so the agent reads as offline once
        the process is gone; ``None`` records no pid (presence then rests on
        heartbeats alone, e.g. for a short-lived CLI call). ``instance_id``
        defaults to a fresh id: each registration is a new instance that
        fences off the previous one. ``cwd`` (default: this process's) is the
        working directory recorded for the agent and used in a derived id.

        Raises:
            InvalidInput: a malformed id, tag, capability or channel.
        """
        agent = self.service.register(
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
        return AgentHandle(self, agent.id, agent.epoch)

    def agent(self, agent_id: str, *, epoch: int | None = None) -> AgentHandle:
        """A handle acting as an existing agent (no registration, no fencing
        unless ``epoch`` is given).

        Raises:
            NotFound: no such agent.
        """
        self.service.get_agent(agent_id, workspace=self.workspace)
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
        return self.service.list_agents(
            workspace=self.workspace,
            status=status,
            tag=tag,
            capability=capability,
            channel=channel,
            online_only=online_only,
        )

    def get_agent(self, agent_id: str) -> Agent:
        """One agent. Raises NotFound."""
        return self.service.get_agent(agent_id, workspace=self.workspace)

    # -- messages, tasks, events ---------------------------------------------

    def message(self, message_id: int) -> Message:
        """One message with its recipients. Raises NotFound."""
        return self.service.get_message(message_id, workspace=self.workspace)

    def thread(self, message_id: int) -> list[Message]:
        """The whole thread of any of its messages, oldest first. Raises NotFound."""
        return self.service.thread(message_id, workspace=self.workspace)

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
        if until is None:
            return self.service.deliveries(message_id, workspace=self.workspace)
        return self.service.wait_deliveries(message_id, until, timeout, workspace=self.workspace)

    def tasks(
        self, *, status: str | None = None, assignee: str | None = None, limit: int = 100
    ) -> list[Task]:
        """Tasks, newest first."""
        return self.service.list_tasks(
            workspace=self.workspace, status=status, assignee=assignee, limit=limit
        )

    def task(self, task_id: int) -> Task:
        """One task. Raises NotFound."""
        return self.service.get_task(task_id, workspace=self.workspace)

    def task_history(self, task_id: int) -> list[TaskEvent]:
        """A task's history, oldest first. Raises NotFound."""
        return self.service.task_history(task_id, workspace=self.workspace)

    def update_task(
        self,
        task_id: int,
        *,
        status: str | None = None,
        progress: int | None = None,
        note: str | None = None,
        result: str | None = None,
    ) -> Task:
        """Change a task as the workspace operator (not as an agent)."""
        return self.service.update_task(
            task_id,
            None,
            workspace=self.workspace,
            status=status,
            progress=progress,
            note=note,
            result=result,
        )

    def events(self, *, since: int = 0, limit: int = 100) -> list[Event]:
        """Event log entries above the cursor ``since``."""
        return self.service.events(workspace=self.workspace, since=since, limit=limit)

    def wait_events(
        self,
        timeout: float,
        *,
        since: int = 0,
        limit: int = 100,
        kinds: Sequence[str] | None = None,
    ) -> list[Event]:
        """Block up to ``timeout`` seconds for events above ``since`` (optionally
        only of ``kinds``; ``"task."`` matches a family)."""
        return self.service.wait_events(
            timeout, workspace=self.workspace, since=since, limit=limit, kinds=kinds
        )

    def prune(
        self, *, message_days: float | None = None, agent_days: float | None = None
    ) -> PruneReport:
        """Apply retention (see :meth:`Service.prune`)."""
        return self.service.prune(
            workspace=self.workspace, message_days=message_days, agent_days=agent_days
        )

    def stream(
        self,
        *,
        since: int | None = None,
        agent: str | None = None,
        kinds: Sequence[str] | None = None,
        max_backoff: float = BACKOFF_CAP,
    ) -> Generator[Event, None, None]:
        """Live events of this workspace, oldest first, for ever (break to stop).

        Over a server this is the SSE stream (reconnecting with backoff, resuming
        with ``Last-Event-ID``, see :meth:`RemoteService.iter_events`); embedded it
        follows the event log with :meth:`wait_events`. Each event comes once.

        Args:
            since: start after this event id; ``None`` starts at "now".
            agent: only what this agent may see (a server only).
            kinds: only these kinds (``"task."`` matches a family).

        Raises:
            InvalidInput: ``agent`` on an embedded relay.
            RelayError: the server refused the stream.
        """
        from .remote import RemoteService

        if isinstance(self.service, RemoteService):
            return self.service.iter_events(
                since=since,
                agent=agent,
                kinds=kinds,
                workspace=self.workspace,
                max_backoff=max_backoff,
            )
        if agent is not None:
            raise InvalidInput(
                "watching as one agent needs a relay server (RELAYBUS_URL); "
                "leave out the agent to see every event"
            )
        return self._follow(since, kinds)

    def _follow(
        self, since: int | None, kinds: Sequence[str] | None
    ) -> Generator[Event, None, None]:
        cursor = self.service.last_event_id(workspace=self.workspace) if since is None else since
        while True:
            found = self.service.wait_events(
                LONGPOLL_CHUNK, workspace=self.workspace, since=cursor, limit=EVENT_PAGE
            )
            for event in found:
                cursor = event.id
                if not kinds or matches(event.kind, kinds):
                    yield event

    def close(self) -> None:
        """Close the database or the server connections."""
        self.service.close()

    def __enter__(self) -> Relay:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["AgentHandle", "Relay", "message_of"]
