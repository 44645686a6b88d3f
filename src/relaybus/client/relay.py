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
from collections.abc import Generator, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

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
from .transport import BACKOFF_CAP, LONGPOLL_CHUNK, ServiceAPI, delivered_to, matches

if TYPE_CHECKING:
    from ..store import Store

#: Most events one embedded stream read takes from the log.
EVENT_PAGE = 1000


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
    ) -> Relay:
        """Open the relay the arguments or the environment point at.

        A server when ``url`` is given, or when ``RELAYBUS_URL`` is set and
        neither ``dir`` nor ``database`` is: calls then go over HTTP with
        ``token`` (default ``RELAYBUS_TOKEN``) as the bearer; nothing is
        contacted until the first call. Otherwise the embedded store:
        ``database`` (a SQLAlchemy URL) wins over ``dir`` (a relay folder),
        which wins over ``RELAYBUS_DATABASE`` / ``RELAYBUS_DIR`` and then the
        ``.relay/`` folder of the repository around the cwd (created on first
        use, schema migrated).

        Raises:
            StoreError: the database cannot be opened or migrated.
            InvalidInput: both ``url`` and ``dir``/``database``, or a ``url``
                that is not an http(s) address.
        """
        settings = settings or Settings()
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
        settings = settings.model_copy(update=updates)
        if settings.url and not local:
            from .remote import RemoteService

            return cls(RemoteService(settings), workspace=workspace)
        from ..service import Service
        from ..store import open_store

        return cls(Service(open_store(settings)), workspace=workspace)

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


class AgentHandle:
    """Acting as one agent: send, read, wait, claim. Carries the agent's epoch,
    so a handle fenced off by a newer registration gets Conflict.

    ``cursor`` is the highest message id this handle has returned from
    :meth:`inbox` or :meth:`wait`; :meth:`wait` waits for mail above it.
    """

    def __init__(self, relay: Relay, agent_id: str, epoch: int | None) -> None:
        self.relay = relay
        self.id = agent_id
        self.epoch = epoch
        self.cursor = 0

    @property
    def _kw(self) -> dict[str, Any]:
        return {"workspace": self.relay.workspace, "epoch": self.epoch}

    @property
    def token(self) -> str | None:
        """The bearer token the server issued when this relay registered the agent
        (``None`` embedded, or for an agent registered elsewhere). Whoever holds
        it can act as this agent: ``RELAYBUS_TOKEN=<token>``."""
        from .remote import RemoteService

        service = self.relay.service
        if isinstance(service, RemoteService):
            return service.token_for(self.id, workspace=self.relay.workspace)
        return None

    def info(self) -> Agent:
        """This agent as the relay sees it."""
        return self.relay.service.get_agent(self.id, workspace=self.relay.workspace)

    def send(
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
        """Send a message (see :meth:`Service.send` for targets and errors)."""
        return self.relay.service.send(
            self.id,
            to,
            body,
            subject=subject,
            channel=channel,
            priority=priority,
            meta=meta,
            claimable=claimable,
            reply_to=reply_to,
            **self._kw,
        )

    def reply(self, message: Message | int, body: str, **kwargs: Any) -> Message:
        """Answer ``message`` in its thread, to its sender (or, for one's own
        message, to its target) unless ``to=`` says otherwise; other keywords
        as for :meth:`send`."""
        parent = message.id if isinstance(message, Message) else message
        to = kwargs.pop("to", None)  # a reply may be redirected, e.g. to the whole channel
        return self.relay.service.send(self.id, to, body, reply_to=parent, **kwargs, **self._kw)

    def inbox(
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
        records them delivered (by ``via``) only if given one: pass it when this
        read hands the messages to the agent's session (see ``Service.inbox``)."""
        found = self.relay.service.inbox(
            self.id,
            unread_only=unread_only,
            newest_first=newest_first,
            since=since,
            limit=limit,
            mark_read=mark_read,
            via=via,
            **self._kw,
        )
        self._advance(found)
        return found

    def read(self, **kwargs: Any) -> list[Message]:
        """:meth:`inbox` that marks what it returns read."""
        return self.inbox(mark_read=True, **kwargs)

    def mark_read(
        self,
        ids: Sequence[int] | None = None,
        *,
        up_to: int | None = None,
        via: Via | str = Via.INBOX,
    ) -> int:
        """Mark messages read by id, or all up to a cursor; returns how many changed.
        One still queued is recorded delivered too, by ``via``."""
        return self.relay.service.mark_read(self.id, ids=ids, up_to=up_to, via=via, **self._kw)

    def mark_delivered(self, ids: Sequence[int], *, via: Via | str) -> int:
        """Record that messages ``ids`` reached this agent's session by ``via``
        (typed into its terminal, shown by a hook…); returns how many moved from
        queued to delivered. Raises InvalidInput for an unknown ``via``."""
        return self.relay.service.mark_delivered(self.id, ids, via=via, **self._kw)

    def unread_count(self) -> int:
        """How many messages of this agent are unread."""
        return self.relay.service.unread_count(self.id, workspace=self.relay.workspace)

    def wait(
        self,
        timeout: float = 30.0,
        *,
        since: int | None = None,
        mark_read: bool = False,
        via: Via | str | None = None,
    ) -> list[Message]:
        """Block up to ``timeout`` seconds for unread mail above ``since``
        (default: this handle's :attr:`cursor`); oldest first, empty on timeout.
        ``mark_read`` and ``via`` as for :meth:`inbox`."""
        found = self.relay.service.wait(
            self.id,
            timeout,
            since=self.cursor if since is None else since,
            mark_read=mark_read,
            via=via,
            **self._kw,
        )
        self._advance(found)
        return found

    def claim(self, task_id: int, *, lease: float | None = None) -> Task:
        """Claim a task. Raises Conflict (with ``details["holder"]``) if taken."""
        return self.relay.service.claim(task_id, self.id, lease=lease, **self._kw)

    def renew(self, task_id: int, *, lease: float | None = None) -> Task:
        """Extend the lease of a task this agent holds. Raises Conflict if it does not."""
        return self.relay.service.renew(task_id, self.id, lease=lease, **self._kw)

    def release(self, task_id: int) -> Task:
        """Give a held task back (open again). Raises Conflict if not held."""
        return self.relay.service.release(task_id, self.id, **self._kw)

    def update_task(
        self,
        task_id: int,
        *,
        status: str | None = None,
        progress: int | None = None,
        note: str | None = None,
        result: str | None = None,
    ) -> Task:
        """Report status, progress (0–100, with a note) or a result on a task."""
        return self.relay.service.update_task(
            task_id,
            self.id,
            status=status,
            progress=progress,
            note=note,
            result=result,
            **self._kw,
        )

    def heartbeat(self, status: AgentStatus | str | None = None) -> Agent:
        """Record that the agent is alive, optionally with a new status."""
        return self.relay.service.heartbeat(self.id, status=status, **self._kw)

    def update(self, **changes: Any) -> Agent:
        """Change label, tags, capabilities, channels, status or meta."""
        return self.relay.service.update_agent(self.id, **changes, **self._kw)

    def unregister(self) -> None:
        """Remove the agent (see ``Service.unregister``); its token stops working."""
        self.relay.service.unregister(self.id, **self._kw)

    def messages(
        self, *, since: int | None = None, unread: bool = False, max_backoff: float = BACKOFF_CAP
    ) -> Generator[Message, None, None]:
        """Messages delivered to this agent as they arrive, each once, for ever
        (break to stop). Records each delivered (``via="stream"``) as it is
        handed over; does not mark them read.

        Over a server this follows the SSE stream as this agent (reconnecting,
        see :meth:`Relay.stream`); embedded it follows the event log.

        Args:
            since: an event id (see :meth:`Relay.events`) to resume after;
                ``None`` starts at "now".
            unread: first yield the unread mail already in the inbox (oldest
                first), then what arrives.

        Raises:
            RelayError: the server refused the stream (e.g. 403 for an agent
                whose token this relay does not have).
        """
        relay = self.relay
        if since is None:
            since = relay.service.last_event_id(workspace=relay.workspace)
        seen: set[int] = set()
        if unread:
            for message in self._unread():
                seen.add(message.id)
                self._acknowledge(message)
                yield message
        from .remote import RemoteService

        if isinstance(relay.service, RemoteService):
            events = relay.service.iter_events(
                since=since,
                agent=self.id,
                kinds=["message.sent"],
                workspace=relay.workspace,
                max_backoff=max_backoff,
            )
        else:
            events = relay.stream(since=since, kinds=["message.sent"])
        for event in events:
            if not delivered_to(event, self.id):
                continue
            message = message_of(event, relay)
            if message.id not in seen:
                self._acknowledge(message)
                yield message

    def _acknowledge(self, message: Message) -> None:
        # A fenced-off instance (stale epoch) or a removed agent still sees its
        # stream, but the message did not reach the agent's current session.
        try:
            self.mark_delivered([message.id], via=Via.STREAM)
        except (Conflict, NotFound):
            pass

    def _unread(self) -> Iterator[Message]:
        cursor: int | None = None
        while True:
            page = self.relay.service.inbox(
                self.id,
                workspace=self.relay.workspace,
                newest_first=False,
                since=cursor,
                limit=EVENT_PAGE,
            )
            yield from page
            if len(page) < EVENT_PAGE:
                return
            cursor = page[-1].id

    def _advance(self, found: list[Message]) -> None:
        if found:
            self.cursor = max(self.cursor, max(m.id for m in found))

    def __repr__(self) -> str:
        return f"AgentHandle({self.id!r}, epoch={self.epoch})"


def message_of(event: Event, relay: Relay) -> Message:
    """The message of a ``message.sent`` event: the copy the server put in the event,
    or (from the embedded log) read by id."""
    carried = event.data.get("message")
    if isinstance(carried, dict):
        return Message.model_validate(carried)
    return relay.service.get_message(int(event.data["message_id"]), workspace=relay.workspace)
